"""Checks for the exercises of 08_first_engines: an optimisation profile, build targets, a network by hand.

All three are checked on a CPU: the profile by `engines.check_profile`, the targets from the
runtime's supported compute capabilities, and the hand-built network by building it with
TensorRT-RTX (or TensorRT) and evaluating its layers in numpy against the PyTorch MLP.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engines import TensorDesc, check_profile
from ..errors import CourseError
from ..exercises import Wrong, exercise, expect_array, expect_sequence, expect_set, expect_type
from ..trt import RTX_RUNTIME_CAPABILITIES, import_tensorrt

if TYPE_CHECKING:  # annotations only: the TensorRT name check reads them
    import tensorrt as trt

# ----------------------------------------------------------------------------- 1: a profile
#: The batch sizes of exercise 1's camera pipeline, the most common one, and the CBR input.
EX1_BATCHES, EX1_COMMON = (2, 6, 24), 6
CBR_INPUTS = [TensorDesc("input0", (-1, 3, 32, 32), "FLOAT")]


@exercise(
    "08.1",
    answers={"ex1_profile": "dict[str, tuple[shape, shape, shape]]: {input name: (min, opt, max)}"},
    hint="One entry, for the network input 'input0' (cbr_parsed.inputs lists it): three shapes (N, 3, 32, 32), "
         "with N the smallest, the most common and the largest batch.",
    hint2="min <= opt <= max in every dimension; only the batch dimension (the -1) may change; the smallest profile "
          "that accepts every batch has min = the smallest batch and max = the largest.",
    wrong=[
        ({"ex1_profile": {"input0": ((24, 3, 32, 32), (6, 3, 32, 32), (2, 3, 32, 32))}}, r"min <= opt <= max"),
        ({"ex1_profile": {"input0": ((2, 32, 32, 3), (6, 32, 32, 3), (24, 32, 32, 3))}}, r"changes dimension 1"),
        ({"ex1_profile": {"input0": ((1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32))}}, r"smallest profile"),
        ({"ex1_profile": {"input0": ((1, 3, 32, 32), (6, 3, 32, 32), (64, 3, 32, 32))}},
         r"= \(1, 6, 64\): not the smallest"),
        ({"ex1_profile": {"images": ((2, 3, 32, 32), (6, 3, 32, 32), (24, 3, 32, 32))}}, r"not network inputs"),
    ],
    context=lambda: {"inputs": CBR_INPUTS},
)
def _profile_for_the_camera(ex1_profile: object, inputs: list[TensorDesc]) -> str:
    expect_type("ex1_profile", ex1_profile, dict, "a dict {input name: (min, opt, max)}")
    try:
        checked = check_profile(inputs, ex1_profile)
    except CourseError as error:
        raise Wrong(str(error)) from None
    low, opt, high = checked["input0"]
    batches = (low[0], opt[0], high[0])
    if not (low[0] <= min(EX1_BATCHES) and high[0] >= max(EX1_BATCHES)):
        raise Wrong(f"the batch range {low[0]}..{high[0]} does not accept every batch of {list(EX1_BATCHES)}.")
    if batches != (min(EX1_BATCHES), EX1_COMMON, max(EX1_BATCHES)):
        raise Wrong(f"min/opt/max batch = {batches}: not the smallest profile tuned for the common batch "
                    f"(expected ({min(EX1_BATCHES)}, {EX1_COMMON}, {max(EX1_BATCHES)})). A wider range than needed "
                    "can cost speed: TensorRT picks kernels for opt, valid from min to max.")
    return "TensorRT tunes its kernels for opt and guarantees them from min to max."


# ----------------------------------------------------------------------------- 2: build targets
#: The GPUs of exercise 2 (compute capability of each).
CLASSROOM_GPUS: dict[str, tuple[int, int]] = {
    "RTX 3060 Laptop": (8, 6), "RTX A6000": (8, 6), "RTX 4090": (8, 9), "RTX 5080": (12, 0),
    "A100": (8, 0), "H100": (9, 0), "DGX Spark (GB10)": (12, 1),
}
#: trt.ComputeCapability members of TensorRT-RTX 1.7 (the SM targets).
RTX_TARGETS = ("SM75", "SM80", "SM86", "SM89", "SM120", "SM121")


def _targets_for(gpus: dict[str, tuple[int, int]]) -> tuple[list[str], set[str]]:
    served = sorted({cap for cap in gpus.values() if cap in RTX_RUNTIME_CAPABILITIES})
    return [f"SM{a}{b}" for a, b in served], {name for name, cap in gpus.items() if cap not in RTX_RUNTIME_CAPABILITIES}


@exercise(
    "08.2",
    answers={"ex2_targets": "list[str]: trt.ComputeCapability member names, in increasing order",
             "ex2_unserved": "set[str]: names of the GPUs no TensorRT-RTX plan runs on"},
    hint="cu.trt.RTX_RUNTIME_CAPABILITIES lists the compute capabilities TensorRT-RTX runs engines on; a target "
         "is named 'SM' + major + minor (8.9 -> 'SM89'); step 5 lists the members of trt.ComputeCapability.",
    hint2="One target per distinct compute capability that TensorRT-RTX runs on (two GPUs with 8.6 need one SM86); "
          "a GPU whose compute capability is not in RTX_RUNTIME_CAPABILITIES is unserved.",
    wrong=[
        ({"ex2_targets": ["SM80", "SM86", "SM89", "SM90", "SM120", "SM121"], "ex2_unserved": set()},
         r"'SM90' is not a trt.ComputeCapability target"),
        ({"ex2_targets": ["SM86", "SM89", "SM120"], "ex2_unserved": {"H100"}}, r"ex2_targets\[0\]` is 'SM86'"),
        ({"ex2_targets": ["SM80", "SM86", "SM86", "SM89", "SM120", "SM121"], "ex2_unserved": {"H100"}},
         r"ex2_targets\[2\]` is 'SM86', expected 'SM89'"),
        ({"ex2_targets": ["SM80", "SM86", "SM89", "SM120", "SM121"], "ex2_unserved": {"H100", "A100"}},
         r"unexpected \['A100'\]"),
    ],
)
def _targets_for_the_classroom(ex2_targets: object, ex2_unserved: object) -> str:
    targets, unserved = _targets_for(CLASSROOM_GPUS)
    expect_type("ex2_targets", ex2_targets, (list, tuple), "a list of names like 'SM89'")
    for name in ex2_targets:
        if name not in RTX_TARGETS:
            raise Wrong(f"{name!r} is not a trt.ComputeCapability target of TensorRT-RTX; they are "
                        f"{list(RTX_TARGETS)}.")
    expect_sequence("ex2_targets", list(ex2_targets), targets)
    expect_set("ex2_unserved", ex2_unserved, unserved)
    return ("TensorRT-RTX has no SM90 target: on an H100, build with TensorRT 11, which targets the GPU it runs on "
            "(or hardware_compatibility_level for a plan that also runs on newer GPUs).")


# ----------------------------------------------------------------------------- 3: a network by hand
EX3_SHAPES = {"w1": (8, 4), "b1": (8,), "w2": (3, 8), "b2": (3,)}  # nn.Linear(4, 8), ReLU, nn.Linear(8, 3)


def mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of exercise 3's MLP in PyTorch's layout (Linear: weight (out, in), bias (out,)). Plumbing: nb08."""
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1, 1, shape).astype(np.float32) for name, shape in EX3_SHAPES.items()}


def mlp_reference(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """What nn.Sequential(Linear(4, 8), ReLU(), Linear(8, 3)) computes. Plumbing: nb08."""
    hidden = np.maximum(x @ weights["w1"].T + weights["b1"], 0.0)
    return hidden @ weights["w2"].T + weights["b2"]


_LAYER_CLASSES = {"CONSTANT": "IConstantLayer", "MATRIX_MULTIPLY": "IMatrixMultiplyLayer",
                  "ELEMENTWISE": "IElementWiseLayer", "ACTIVATION": "IActivationLayer", "SHUFFLE": "IShuffleLayer"}
_ELEMENTWISE = {"SUM": np.add, "PROD": np.multiply, "SUB": np.subtract, "MAX": np.maximum, "MIN": np.minimum}


def _shuffle(layer: trt.IShuffleLayer, value: np.ndarray) -> np.ndarray:
    """What an IShuffleLayer computes: first transpose, then reshape (0 copies a dimension), then second transpose."""
    value = np.transpose(value, list(layer.first_transpose)[:value.ndim])
    dims = layer.reshape_dims
    if dims is not None:
        target = [value.shape[i] if d == 0 and layer.zero_is_placeholder else d for i, d in enumerate(dims)]
        value = value.reshape(target)
    return np.transpose(value, list(layer.second_transpose)[:value.ndim])


def evaluate_network(trt: Any, network: trt.INetworkDefinition, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate a small network definition in numpy, layer by layer (CONSTANT, MATRIX_MULTIPLY, ELEMENTWISE,
    ACTIVATION RELU, SHUFFLE). Raises Wrong for other layers and for an elementwise layer whose inputs differ in
    rank (TensorRT broadcasts only between tensors of the same rank). Plumbing: the judge of exercise 08.3."""
    values = dict(feeds)
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        kind = layer.type.name
        if kind not in _LAYER_CLASSES:
            raise Wrong(f"layer {index} ({layer.name}) is a {kind} layer; this exercise needs only CONSTANT, "
                        "MATRIX_MULTIPLY, ELEMENTWISE and ACTIVATION layers.")
        inputs = [values[layer.get_input(i).name] for i in range(layer.num_inputs) if layer.get_input(i) is not None]
        layer.__class__ = getattr(trt, _LAYER_CLASSES[kind])  # the Python API's way to reach a layer's parameters
        if kind == "CONSTANT":
            out = np.asarray(layer.weights.numpy() if hasattr(layer.weights, "numpy") else layer.weights)
            out = out.reshape(tuple(layer.shape))
        elif kind == "MATRIX_MULTIPLY":
            a, b = (m if op.name == "NONE" else np.swapaxes(m, -1, -2)
                    for m, op in zip(inputs, (layer.op0, layer.op1), strict=True))
            if a.shape[-1] != b.shape[-2]:
                raise Wrong(f"layer {index} ({layer.name}) multiplies {a.shape} by {b.shape} (after its "
                            f"MatrixOperations {layer.op0.name}, {layer.op1.name}): the inner sizes {a.shape[-1]} and "
                            f"{b.shape[-2]} differ. PyTorch stores a Linear weight as (out, in): multiply by its "
                            "transpose (MatrixOperation.TRANSPOSE).")
            out = a @ b
        elif kind == "ELEMENTWISE":
            if len({np.ndim(value) for value in inputs}) > 1:
                shapes = [tuple(np.shape(value)) for value in inputs]
                raise Wrong(f"layer {index} ({layer.name}): elementwise inputs of shapes {shapes}. TensorRT broadcasts "
                            "only between tensors of the same rank: make the bias constant (1, n), not (n,).")
            if layer.op.name not in _ELEMENTWISE:
                raise Wrong(f"layer {index}: elementwise {layer.op.name} is not needed here (use SUM for a bias).")
            out = _ELEMENTWISE[layer.op.name](*inputs)
        elif kind == "ACTIVATION":
            if layer.type.name != "RELU":
                raise Wrong(f"layer {index}: activation {layer.type.name}; the MLP uses RELU.")
            out = np.maximum(inputs[0], 0.0)
        else:
            if layer.num_inputs > 1 and layer.get_input(1) is not None:
                raise Wrong(f"layer {index}: a shuffle with a second (shape) input is not needed here.")
            out = _shuffle(layer, inputs[0])
        values[layer.get_output(0).name] = out
    return {network.get_output(i).name: values[network.get_output(i).name] for i in range(network.num_outputs)}


def _mlp_wrong_no_relu(trt: Any, network: trt.INetworkDefinition, weights: dict[str, np.ndarray]) -> None:
    x = network.add_input("x", trt.float32, (1, 4))
    hidden = x
    for w, b in (("w1", "b1"), ("w2", "b2")):
        weight = network.add_constant(weights[w].shape, trt.Weights(weights[w]))
        bias = network.add_constant((1, weights[b].size), trt.Weights(weights[b]))
        product = network.add_matrix_multiply(hidden, trt.MatrixOperation.NONE, weight.get_output(0),
                                              trt.MatrixOperation.TRANSPOSE)
        hidden = network.add_elementwise(product.get_output(0), bias.get_output(0),
                                         trt.ElementWiseOperation.SUM).get_output(0)
    network.mark_output(hidden)


def _mlp_wrong_no_bias(trt: Any, network: trt.INetworkDefinition, weights: dict[str, np.ndarray]) -> None:
    x = network.add_input("x", trt.float32, (1, 4))
    w1 = network.add_constant(weights["w1"].shape, trt.Weights(weights["w1"]))
    w2 = network.add_constant(weights["w2"].shape, trt.Weights(weights["w2"]))
    h = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, w1.get_output(0), trt.MatrixOperation.TRANSPOSE)
    r = network.add_activation(h.get_output(0), trt.ActivationType.RELU)
    y = network.add_matrix_multiply(r.get_output(0), trt.MatrixOperation.NONE, w2.get_output(0),
                                    trt.MatrixOperation.TRANSPOSE)
    network.mark_output(y.get_output(0))


def _mlp_wrong_rank_one_bias(trt: Any, network: trt.INetworkDefinition, weights: dict[str, np.ndarray]) -> None:
    hidden = network.add_input("x", trt.float32, (1, 4))
    for index, (w, b) in enumerate((("w1", "b1"), ("w2", "b2"))):
        weight = network.add_constant(weights[w].shape, trt.Weights(weights[w]))
        bias = network.add_constant(weights[b].shape, trt.Weights(weights[b]))  # (n,): rank 1
        product = network.add_matrix_multiply(hidden, trt.MatrixOperation.NONE, weight.get_output(0),
                                              trt.MatrixOperation.TRANSPOSE)
        hidden = network.add_elementwise(product.get_output(0), bias.get_output(0),
                                         trt.ElementWiseOperation.SUM).get_output(0)
        if index == 0:
            hidden = network.add_activation(hidden, trt.ActivationType.RELU).get_output(0)
    network.mark_output(hidden)


def _mlp_wrong_untransposed(trt: Any, network: trt.INetworkDefinition, weights: dict[str, np.ndarray]) -> None:
    hidden = network.add_input("x", trt.float32, (1, 4))
    for index, (w, b) in enumerate((("w1", "b1"), ("w2", "b2"))):
        weight = network.add_constant(weights[w].shape, trt.Weights(weights[w]))
        bias = network.add_constant((1, weights[b].size), trt.Weights(weights[b]))
        product = network.add_matrix_multiply(hidden, trt.MatrixOperation.NONE, weight.get_output(0),
                                              trt.MatrixOperation.NONE)  # (1, 4) @ (8, 4): PyTorch's layout
        hidden = network.add_elementwise(product.get_output(0), bias.get_output(0),
                                         trt.ElementWiseOperation.SUM).get_output(0)
        if index == 0:
            hidden = network.add_activation(hidden, trt.ActivationType.RELU).get_output(0)
    network.mark_output(hidden)


def _mlp_wrong_nothing_marked(trt: Any, network: trt.INetworkDefinition, weights: dict[str, np.ndarray]) -> None:
    network.add_input("x", trt.float32, (1, 4))


@exercise(
    "08.3",
    answers={"ex3_build": "a function build(trt, network, weights) that adds the MLP's layers to `network`"},
    hint="Follow step 6's Linear model: add_input('x', trt.float32, (1, 4)); per Linear a constant for the weight "
         "(add_constant + trt.Weights), add_matrix_multiply with MatrixOperation.TRANSPOSE, a (1, out) bias constant "
         "and add_elementwise(..., ElementWiseOperation.SUM); add_activation(..., ActivationType.RELU) in between; "
         "mark_output.",
    hint2="The check runs your function on a fresh network with other weights, evaluates every layer in numpy and "
          "compares with the MLP: weights['w1'] is (8, 4), 'b1' (8,), 'w2' (3, 8), 'b2' (3,), PyTorch's layout.",
    wrong=[
        ({"ex3_build": _mlp_wrong_no_relu}, r"of 3 elements differ"),
        ({"ex3_build": _mlp_wrong_no_bias}, r"elements differ"),
        ({"ex3_build": _mlp_wrong_nothing_marked}, r"marks 0 outputs"),
        ({"ex3_build": _mlp_wrong_untransposed}, r"multiplies \(1, 4\) by \(8, 4\) .* inner sizes 4 and 8 differ"),
        ({"ex3_build": _mlp_wrong_rank_one_bias}, r"same rank: make the bias constant \(1, n\)"),
        ({"ex3_build": "add_input, add_constant, add_matrix_multiply"}, r"should be a function"),
    ],
)
def _mlp_by_hand(ex3_build: object) -> str:
    if not callable(ex3_build):
        raise Wrong(f"`ex3_build` should be a function build(trt, network, weights), but it is "
                    f"{type(ex3_build).__name__}.")
    trt = import_tensorrt()
    from ..engines import EngineBuildError, build_engine, collecting_logger

    builder = trt.Builder(collecting_logger(trt))
    network = builder.create_network(0)
    weights = mlp_weights(seed=1)  # other weights than the notebook's: the network must use its argument
    keep = {name: value.copy() for name, value in weights.items()}  # trt.Weights points at this memory
    ex3_build(trt, network, keep)
    if network.num_inputs != 1 or network.get_input(0).name != "x" or tuple(network.get_input(0).shape) != (1, 4):
        shapes = [(network.get_input(i).name, tuple(network.get_input(i).shape)) for i in range(network.num_inputs)]
        raise Wrong(f"the network should have one input 'x' of shape (1, 4); it has {shapes}.")
    if network.num_outputs != 1:
        raise Wrong(f"the network marks {network.num_outputs} outputs; mark the last layer's output with "
                    "network.mark_output(...).")
    kinds = Counter(network.get_layer(i).type.name for i in range(network.num_layers))
    if kinds["MATRIX_MULTIPLY"] != 2:
        raise Wrong(f"the MLP has two Linear layers, so two MATRIX_MULTIPLY layers; the network has "
                    f"{kinds['MATRIX_MULTIPLY']} ({dict(kinds)}).")
    x = np.random.default_rng(2).uniform(-2, 2, (1, 4)).astype(np.float32)
    (got,) = evaluate_network(trt, network, {"x": x}).values()
    expect_array("your network's output", got, mlp_reference(weights, x), rtol=1e-5, atol=1e-5)
    try:
        built = build_engine(network, builder=builder)
    except EngineBuildError as error:
        raise Wrong(f"the layers compute the right numbers, but TensorRT cannot build the network: {error}") from None
    return f"It also builds: {built.network_layers} network layers, a {built.plan_bytes / 1e3:.0f} kB plan."
