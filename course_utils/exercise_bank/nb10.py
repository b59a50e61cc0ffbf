"""Checks for the exercises of 10_plugins: a launch grid, the ONNX node that selects an AOT plugin, a Triton kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper

from ..exercises import Wrong, exercise, expect_equal, expect_set, expect_type
from ..plugins import BLOCK_SIZES, interpreted, kernel_error, launch_grid, masked_lanes, triton

#: The input of exercise 1: a batch of 8 AlexNet-sized images (227 x 227 is not a multiple of a block).
EX1_SHAPE = (8, 3, 227, 227)


def _elements(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _expect_block_dict(name: str, value: Any, want: dict[int, int]) -> None:
    expect_type(name, value, dict, "a dict {block size: int}")
    expect_set(f"{name}.keys()", list(value), list(want))
    for block, expected in want.items():
        got = value[block]
        if isinstance(got, float | np.floating):  # 1024 / 128 is the float 8.0: counts are ints
            raise Wrong(f"`{name}[{block}]` is the float {float(got)!r}; a count is an int: use // or "
                        "math.ceil, which return ints.")
        if isinstance(got, np.integer):  # np.ceil / np.prod give numpy ints: the same number
            got = int(got)
        expect_equal(f"{name}[{block}]", got, expected)


@exercise(
    "10.1",
    answers={"ex1_grid_x": "dict[int, int]: block size -> number of programs",
             "ex1_masked": "dict[int, int]: block size -> lanes the mask switches off",
             "ex1_per_thread": "dict[int, int]: block size -> elements each thread computes"},
    hint="The kernel sees n = 8 * 3 * 227 * 227 elements, whatever the shape. Step 2 gives the grid: "
         "ceil(n / block) programs (cu.launch_grid), and the lanes past n are switched off.",
    hint2="Round up, not down: a partial block still needs a program. Masked lanes = programs * block - n. "
          "Each program has num_warps * 32 threads, which share its block of elements.",
    wrong=[
        ({"ex1_grid_x": {256: 4830, 1024: 1207}, "ex1_masked": {256: 40, 1024: 296},
          "ex1_per_thread": {256: 2, 1024: 8}}, r"`ex1_grid_x\[256\]` is 4830, expected 4831"),
        ({"ex1_grid_x": {256: 4831, 1024: 1208}, "ex1_masked": {256: 216, 1024: 728},
          "ex1_per_thread": {256: 2, 1024: 8}}, r"`ex1_masked\[256\]` is 216, expected 40"),
        ({"ex1_grid_x": {256: 4831, 1024: 1208}, "ex1_masked": {256: 40, 1024: 296},
          "ex1_per_thread": {256: 8, 1024: 32}}, r"`ex1_per_thread\[256\]` is 8, expected 2"),
        ({"ex1_grid_x": {256: 4831}, "ex1_masked": {256: 40, 1024: 296}, "ex1_per_thread": {256: 2, 1024: 8}},
         r"missing \[1024\]"),
        ({"ex1_grid_x": {256: 4831, 1024: 1208}, "ex1_masked": {256: 40, 1024: 296},
          "ex1_per_thread": {256: 256 / 128, 1024: 1024 / 128}}, r"`ex1_per_thread\[256\]` is the float 2\.0"),
    ],
    context=lambda: {"num_warps": 4},
)
def _launch_grid_of_a_real_input(ex1_grid_x: Any, ex1_masked: Any, ex1_per_thread: Any, num_warps: int) -> str:
    n = _elements(EX1_SHAPE)
    _expect_block_dict("ex1_grid_x", ex1_grid_x, {b: launch_grid(n, b)[0] for b in BLOCK_SIZES})
    _expect_block_dict("ex1_masked", ex1_masked, {b: masked_lanes(n, b) for b in BLOCK_SIZES})
    _expect_block_dict("ex1_per_thread", ex1_per_thread, {b: b // (num_warps * 32) for b in BLOCK_SIZES})
    return (f"{n} elements: BLOCK_SIZE is elements per program, not threads per block; each of the "
            f"{num_warps * 32} threads of a program computes several.")


def _attribute(node: Any, name: str) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute
    return None


@exercise(
    "10.2",
    answers={"ex2_node": "onnx.NodeProto (from onnx.helper.make_node)"},
    hint="Step 5: the op type is the plugin's name (without the namespace), plugin_namespace names the "
         "namespace, and the int attribute aot selects the implementation. Other attributes go to the plugin.",
    hint2="helper.make_node(op_type, inputs, outputs, name=..., **attributes): a str value becomes a STRING "
          "attribute, an int an INT attribute. aot must be the int 1, not a string.",
    wrong=[
        ({"ex2_node": "fast_gelu"}, r"should be an onnx.NodeProto"),
        ({"ex2_node": helper.make_node("vision::fast_gelu", ["features"], ["activated"], plugin_namespace="vision",
                                       aot=1, approximate="tanh")}, r"the op type is the plugin's name alone"),
        ({"ex2_node": helper.make_node("fast_gelu", ["features"], ["activated"], domain="vision", aot=1,
                                       approximate="tanh")}, r"no plugin_namespace attribute \(the domain 'vision'"),
        ({"ex2_node": helper.make_node("fast_gelu", ["features"], ["activated"], plugin_namespace="vision",
                                       aot="True", approximate="tanh")}, r"aot is an attribute of type STRING"),
        ({"ex2_node": helper.make_node("fast_gelu", ["features"], ["activated"], plugin_namespace="vision",
                                       aot=0, approximate="tanh")}, r"aot is 0: that asks for the JIT"),
        ({"ex2_node": helper.make_node("fast_gelu", ["features"], ["activated"], plugin_namespace="vision",
                                       aot=2, approximate="tanh")}, r"aot is 2; write aot=1"),
        ({"ex2_node": helper.make_node("fast_gelu", ["features"], ["activated"], plugin_namespace="vision",
                                       aot=1)}, r"no approximate attribute"),
    ],
)
def _node_selecting_an_aot_plugin(ex2_node: Any) -> str:
    import onnx
    from onnx import AttributeProto, helper

    expect_type("ex2_node", ex2_node, onnx.NodeProto, "an onnx.NodeProto (onnx.helper.make_node)")
    if "::" in ex2_node.op_type:
        raise Wrong(f"`ex2_node.op_type` is {ex2_node.op_type!r}: the op type is the plugin's name alone; the "
                    "namespace goes into the plugin_namespace attribute.")
    expect_equal("ex2_node.op_type", ex2_node.op_type, "fast_gelu")
    expect_equal("ex2_node.input", list(ex2_node.input), ["features"])
    expect_equal("ex2_node.output", list(ex2_node.output), ["activated"])
    namespace = _attribute(ex2_node, "plugin_namespace")
    if namespace is None:
        where = f" (the domain {ex2_node.domain!r} is only tried by parsers >= 10.10)" if ex2_node.domain else ""
        raise Wrong(f"the node has no plugin_namespace attribute{where}: the parser looks for namespace ''.")
    if namespace.type != AttributeProto.STRING:
        raise Wrong(f"plugin_namespace is an attribute of type {AttributeProto.AttributeType.Name(namespace.type)}; "
                    "the parser reads a STRING.")
    expect_equal("the plugin_namespace attribute", helper.get_attribute_value(namespace).decode(), "vision")
    version = _attribute(ex2_node, "plugin_version")
    if version is not None and (version.type != AttributeProto.STRING or version.s != b"1"):
        raise Wrong(f"plugin_version is {helper.get_attribute_value(version)!r}; tensorrt.plugin creators are "
                    "version '1' (a STRING), or leave the attribute out.")
    aot = _attribute(ex2_node, "aot")
    if aot is None:
        raise Wrong("the node has no aot attribute: with both implementations defined and no network flag, "
                    "the plugin cannot choose.")
    if aot.type != AttributeProto.INT:
        raise Wrong(f"aot is an attribute of type {AttributeProto.AttributeType.Name(aot.type)} "
                    f"({helper.get_attribute_value(aot)!r}); the parser reads an INT: aot=1.")
    if aot.i == 0:
        raise Wrong("aot is 0: that asks for the JIT implementation; the AOT one is aot=1.")
    if aot.i != 1:
        raise Wrong(f"aot is {aot.i}; write aot=1 (or True, which ONNX stores as the int 1) for the AOT "
                    "implementation.")
    approximate = _attribute(ex2_node, "approximate")
    if approximate is None:
        raise Wrong("the node has no approximate attribute: the plugin's field is read from the attribute "
                    "of the same name.")
    if approximate.type != AttributeProto.STRING:
        raise Wrong(f"approximate is an attribute of type {AttributeProto.AttributeType.Name(approximate.type)}; "
                    "the plugin registered it as a str (STRING).")
    expect_equal("the approximate attribute", helper.get_attribute_value(approximate).decode(), "tanh")
    return "TensorRT's parser would find vision::fast_gelu (version 1) and ask for its AOT implementation."


# --------------------------------------------------------------------------- exercise 3: a kernel
EX3_BETAS = (1.0, 2.5)
EX3_BLOCK = 256
EX3_N = 1037  # not a multiple of EX3_BLOCK: the last program has 243 lanes switched off
EX3_ARGUMENTS = ["x_ptr", "n_elements", "y_ptr", "BETA", "BLOCK_SIZE"]
_SENTINEL = -7.0  # what the check fills the output with: g(x) >= 0, so no correct kernel writes it


def sharp_reference(beta: float) -> Any:
    """g(x) = m / (1 + exp(-beta m)), m = max(x, 0), on a float64 array (NaN stays NaN)."""
    import numpy as np

    def g(x: Any) -> Any:
        m = np.maximum(x, 0)
        return m / (1 + np.exp(-beta * m))

    return g


def _ex3_inputs(dtype: Any) -> Any:
    import torch

    specials = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.0, -3.0, 1.0, 30.0, -30.0])
    body = torch.randn(EX3_N - len(specials), generator=torch.Generator().manual_seed(3)) * 4
    padding = torch.full((launch_grid(EX3_N, EX3_BLOCK)[0] * EX3_BLOCK - EX3_N,), 5.0)  # read only if unmasked
    return torch.cat([specials, body, padding]).to(dtype)


def _run_ex3(kernel: Any) -> str:
    import torch

    names = list(getattr(kernel, "arg_names", []))
    if names != EX3_ARGUMENTS:
        raise Wrong(f"`ex3_kernel`'s arguments are {names}, expected {EX3_ARGUMENTS} (inputs, int32 scalars, "
                    "outputs, then the constexprs).")
    cpu_kernel = interpreted(kernel)
    grid = launch_grid(EX3_N, EX3_BLOCK)
    for dtype in (torch.float32, torch.float16):
        x = _ex3_inputs(dtype)
        for beta in EX3_BETAS:
            y = torch.full_like(x, _SENTINEL)
            cpu_kernel[grid](x, EX3_N, y, BETA=beta, BLOCK_SIZE=EX3_BLOCK)
            label = f"with BETA = {beta}, {str(dtype).removeprefix('torch.')}"
            if not bool((y[EX3_N:] == _SENTINEL).all()):
                raise Wrong(f"{label}: the kernel wrote past n_elements ({int((y[EX3_N:] != _SENTINEL).sum())} of "
                            "the masked lanes changed); use the mask in tl.store (and tl.load).")
            unwritten = int((y[:EX3_N] == _SENTINEL).sum())
            if unwritten:
                first = int((y[:EX3_N] == _SENTINEL).nonzero()[0])
                raise Wrong(f"{label}: {unwritten} of the {EX3_N} outputs were never written (output[{first}] "
                            f"still holds the {_SENTINEL} the check filled in): each program must cover its "
                            "BLOCK_SIZE elements, offsets = program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE).")
            check = kernel_error(y[:EX3_N], x[:EX3_N], reference=sharp_reference(beta))
            if check.nan_mismatches:
                raise Wrong(f"{label}: {check.nan_mismatches} NaN mismatch(es): a NaN input must give NaN "
                            "(tl.maximum drops NaN unless propagate_nan=tl.PropagateNan.ALL).")
            if not check.ok:
                index = check.worst_index
                want = sharp_reference(beta)(x[index:index + 1].double().numpy())[0]
                raise Wrong(f"{label}: output[{index}] = {float(y[index]):.6g} for x = {float(x[index]):.6g}, "
                            f"expected {want:.6g} (max relative error {check.max_rel_error:.2e}, tolerance "
                            f"{check.rtol:.2e}; inf mismatches {check.inf_mismatches}).")
    return (f"Your kernel matches g in float32 and float16 for BETA in {EX3_BETAS}; in an AOT plugin, "
            "aot_impl would compile it with constexprs={'BETA': beta, 'BLOCK_SIZE': tactic}.")


if triton is not None:
    import triton.language as tl

    @triton.jit
    def _ex3_no_mask(x_ptr, n_elements, y_ptr, BETA: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        m = tl.maximum(tl.load(x_ptr + offsets).to(tl.float32), 0.0, propagate_nan=tl.PropagateNan.ALL)
        tl.store(y_ptr + offsets, (m / (1 + tl.exp(-BETA * m))).to(y_ptr.dtype.element_ty))

    @triton.jit
    def _ex3_drops_nan(x_ptr, n_elements, y_ptr, BETA: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = offsets < n_elements
        m = tl.maximum(tl.load(x_ptr + offsets, mask=mask).to(tl.float32), 0.0)
        tl.store(y_ptr + offsets, (m / (1 + tl.exp(-BETA * m))).to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _ex3_ignores_beta(x_ptr, n_elements, y_ptr, BETA: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = offsets < n_elements
        m = tl.maximum(tl.load(x_ptr + offsets, mask=mask).to(tl.float32), 0.0, propagate_nan=tl.PropagateNan.ALL)
        tl.store(y_ptr + offsets, (m / (1 + tl.exp(-m))).to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _ex3_fixed_block(x_ptr, n_elements, y_ptr, BETA: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        offsets = tl.program_id(0) * 128 + tl.arange(0, 128)  # ignores BLOCK_SIZE: half of each block
        mask = offsets < n_elements
        m = tl.maximum(tl.load(x_ptr + offsets, mask=mask).to(tl.float32), 0.0, propagate_nan=tl.PropagateNan.ALL)
        tl.store(y_ptr + offsets, (m / (1 + tl.exp(-BETA * m))).to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _ex3_outputs_first(x_ptr, y_ptr, n_elements, BETA: tl.constexpr, BLOCK_SIZE: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = offsets < n_elements
        m = tl.maximum(tl.load(x_ptr + offsets, mask=mask).to(tl.float32), 0.0, propagate_nan=tl.PropagateNan.ALL)
        tl.store(y_ptr + offsets, (m / (1 + tl.exp(-BETA * m))).to(y_ptr.dtype.element_ty), mask=mask)

    _EX3_WRONG = [
        ({"ex3_kernel": _ex3_no_mask}, r"wrote past n_elements"),
        ({"ex3_kernel": _ex3_drops_nan}, r"NaN mismatch"),
        ({"ex3_kernel": _ex3_ignores_beta}, r"with BETA = 2\.5, float32: output\[\d+\]"),
        ({"ex3_kernel": _ex3_outputs_first}, r"arguments are \['x_ptr', 'y_ptr', 'n_elements'"),
        ({"ex3_kernel": _ex3_fixed_block}, r"float32: \d+ of the 1037 outputs were never written"),
        ({"ex3_kernel": lambda x: x}, r"should be a @triton\.jit kernel"),
    ]
else:  # pragma: no cover - every course machine has Triton
    _EX3_WRONG = [({"ex3_kernel": lambda x: x}, r"should be a @triton\.jit kernel")]


@exercise(
    "10.3",
    answers={"ex3_kernel": "a @triton.jit kernel (x_ptr, n_elements, y_ptr, BETA: tl.constexpr, "
                           "BLOCK_SIZE: tl.constexpr)"},
    hint="Start from step 2's clamp_silu_kernel: same offsets and mask, same NaN-keeping maximum; multiply "
         "the exponent by BETA. BETA and BLOCK_SIZE are both tl.constexpr.",
    hint2="The check launches ex3_kernel[grid](x, n, y, BETA=beta, BLOCK_SIZE=256) in Triton's interpreter: "
          "keep the argument order, mask both the load and the store, and convert to float32 before computing.",
    wrong=_EX3_WRONG,
)
def _kernel_for_a_variant(ex3_kernel: Any) -> str:
    if not callable(getattr(ex3_kernel, "fn", None)):
        raise Wrong(f"`ex3_kernel` should be a @triton.jit kernel, but it is {type(ex3_kernel).__name__}.")
    return _run_ex3(ex3_kernel)
