"""Checks for the exercises of 07_graphsurgeon_surgery: Max+Min -> Clip, GELU by pattern, cut out an MLP.

The judges run the learner's models in onnxruntime; the GELU and MLP judges find the answer in the
model they are given (the lesson's Swin-T in the notebook, a small two-block MLP in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper, numpy_helper

from ..exercises import Wrong, exercise, expect_array, expect_sequence, expect_true, expect_type
from .nb06 import _check, _expect_model, _inputs, _run

# --- exercise 1: ReLU6 written with Max and Min ---------------------------------------------------

_RELU6_SHAPE = [4, 5]


def _relu6_model(kind: str = "maxmin") -> onnx.ModelProto:
    """y = Min(Max(x, 0), 6) / 6 ('maxmin'), or the Clip versions used as planted answers."""
    consts = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
              numpy_helper.from_array(np.array(6, np.float32), "six")]
    if kind == "maxmin":
        nodes = [helper.make_node("Max", ["x", "zero"], ["low_cut"], name="max"),
                 helper.make_node("Min", ["low_cut", "six"], ["clipped"], name="min")]
    else:  # "swapped": Clip(x, 6, 0)
        nodes = [helper.make_node("Clip", ["x", "six", "zero"], ["clipped"], name="clip")]
    nodes.append(helper.make_node("Div", ["clipped", "six"], ["y"], name="scale"))
    graph = helper.make_graph(nodes, "relu6", [helper.make_tensor_value_info("x", TensorProto.FLOAT, _RELU6_SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, _RELU6_SHAPE)], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: Exercise 1's model: a hard sigmoid-like y = Min(Max(x, 0), 6) / 6, Max first (the lesson had Min first).
RELU6_MODEL = _relu6_model()


@exercise(
    "07.1",
    answers={"ex1_model": "onnx.ModelProto: RELU6_MODEL with Max+Min replaced by one Clip"},
    hint="Find the Max node whose only reader is a Min (node.o()), take Max's data input and the two constants, "
         "and let one Clip(x, low, high) produce Min's output tensor; then cleanup and export.",
    hint2="Clip's inputs are (input, min, max): the constant of Max is the lower bound, the constant of Min the "
          "upper one. Reuse Min's output tensor so that the Div still reads it.",
    wrong=[
        ({"ex1_model": RELU6_MODEL}, r"still has Max/Min node"),
        ({"ex1_model": _relu6_model("swapped")}, r"elements differ"),
        ({"ex1_model": gs.import_onnx(RELU6_MODEL)}, r"is a gs\.Graph; export it first"),
    ],
)
def _max_min_to_clip(ex1_model: Any) -> str:
    model = _expect_model("ex1_model", ex1_model)
    _check("ex1_model", model)
    ops = [node.op_type for node in model.graph.node]
    left = [op for op in ops if op in ("Max", "Min")]
    expect_true(not left, f"the model still has Max/Min node(s) {left}; replace both by one Clip.")
    expect_true(ops.count("Clip") == 1, f"the model has {ops.count('Clip')} Clip nodes ({ops}); one replaces Max+Min.")
    x = np.linspace(-10, 10, 20, dtype=np.float32).reshape(_RELU6_SHAPE)
    (got,) = _run(model, {"x": x})
    expect_array("ex1_model's output", got, np.clip(x, 0, 6) / 6, rtol=1e-6, atol=1e-7)
    return f"{len(RELU6_MODEL.graph.node)} nodes became {len(ops)}: one Clip instead of Max and Min."


# --- a small two-block MLP model (the tests' stand-in for Swin-T) -----------------------------------

def _mlp_model() -> onnx.ModelProto:
    """tokens (1, 4, 8) -> 2 x [fc1 -> GELU (Div, Erf, Add, Mul, Mul) -> fc2, plus the residual]."""
    rng = np.random.default_rng(70)
    nodes, inits = [], []
    h = "tokens"
    for k in range(2):
        p = f"/blocks.{k}/mlp"
        inits += [numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32) * 0.3, f"{p}/fc1.weight"),
                  numpy_helper.from_array(rng.standard_normal(16).astype(np.float32) * 0.1, f"{p}/fc1.bias"),
                  numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32) * 0.3, f"{p}/fc2.weight"),
                  numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, f"{p}/fc2.bias"),
                  numpy_helper.from_array(np.array(np.sqrt(2), np.float32), f"{p}/sqrt2"),
                  numpy_helper.from_array(np.array(1, np.float32), f"{p}/one"),
                  numpy_helper.from_array(np.array(0.5, np.float32), f"{p}/half")]
        nodes += [
            helper.make_node("MatMul", [h, f"{p}/fc1.weight"], [f"{p}/fc1/MatMul_output_0"], name=f"{p}/fc1/MatMul"),
            helper.make_node("Add", [f"{p}/fc1.bias", f"{p}/fc1/MatMul_output_0"], [f"{p}/fc1/Add_output_0"],
                             name=f"{p}/fc1/Add"),
            helper.make_node("Div", [f"{p}/fc1/Add_output_0", f"{p}/sqrt2"], [f"{p}/act/Div_output_0"],
                             name=f"{p}/act/Div"),
            helper.make_node("Erf", [f"{p}/act/Div_output_0"], [f"{p}/act/Erf_output_0"], name=f"{p}/act/Erf"),
            helper.make_node("Add", [f"{p}/act/Erf_output_0", f"{p}/one"], [f"{p}/act/Add_output_0"],
                             name=f"{p}/act/Add"),
            helper.make_node("Mul", [f"{p}/fc1/Add_output_0", f"{p}/act/Add_output_0"], [f"{p}/act/Mul_output_0"],
                             name=f"{p}/act/Mul"),
            helper.make_node("Mul", [f"{p}/act/Mul_output_0", f"{p}/half"], [f"{p}/act/Mul_1_output_0"],
                             name=f"{p}/act/Mul_1"),
            helper.make_node("MatMul", [f"{p}/act/Mul_1_output_0", f"{p}/fc2.weight"], [f"{p}/fc2/MatMul_output_0"],
                             name=f"{p}/fc2/MatMul"),
            helper.make_node("Add", [f"{p}/fc2.bias", f"{p}/fc2/MatMul_output_0"], [f"{p}/fc2/Add_output_0"],
                             name=f"{p}/fc2/Add"),
            helper.make_node("Add", [h, f"{p}/fc2/Add_output_0"], [f"/blocks.{k}/Add_output_0"],
                             name=f"/blocks.{k}/Add"),
        ]
        h = f"/blocks.{k}/Add_output_0"
    nodes.append(helper.make_node("Identity", [h], ["out"], name="output"))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, 4, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


#: The tests' model for exercises 2 and 3: two MLP blocks with an exported-style GELU each.
MLP_MODEL = _mlp_model()


def _graph_of(model: Any) -> gs.Graph:
    from ..graphs import _as_graph

    return _as_graph(model)


def _constant_value(tensor: gs.Tensor) -> float | None:
    from ..graphs import _static_value

    value = _static_value(tensor)
    return float(np.ravel(value)[0]) if value is not None and value.size == 1 else None


def _gelu_chains(model: Any) -> list[tuple[gs.Tensor, gs.Tensor]]:
    """(input, output) of every GELU written as Div(x, sqrt 2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5)."""
    found = []
    for erf in _graph_of(model).nodes:
        if erf.op != "Erf" or not erf.inputs or len(erf.inputs[0].inputs) != 1:
            continue
        div = erf.inputs[0].inputs[0]
        divisor = _constant_value(div.inputs[1]) if div.op == "Div" else None
        if divisor is None or abs(divisor - np.sqrt(2)) > 1e-4:
            continue
        x = div.inputs[0]
        readers = [n for n in erf.outputs[0].outputs]
        if len(readers) != 1 or readers[0].op != "Add":
            continue
        plus_one = readers[0]
        mul = plus_one.outputs[0].outputs[0] if len(plus_one.outputs[0].outputs) == 1 else None
        if mul is None or mul.op != "Mul" or not any(t is x for t in mul.inputs):
            continue
        half = mul.outputs[0].outputs[0] if len(mul.outputs[0].outputs) == 1 else None
        if half is None or half.op != "Mul" or _constant_value(half.inputs[1]) != 0.5:
            continue
        found.append((x, half.outputs[0]))
    return found


def _model_context() -> dict[str, Any]:
    return {"model": MLP_MODEL}


_MLP_GELUS = [out.name for _, out in _gelu_chains(MLP_MODEL)]


@exercise(
    "07.2",
    answers={"ex2_outputs": "list[str]: the output tensor name of every decomposed GELU, in graph order"},
    hint="Walk graph.nodes; for each Erf, check its neighbours: a Div by sqrt(2) before it, then Add(1), Mul by "
         "the Div's input, Mul by 0.5 (tensor.inputs / tensor.outputs, or node.i() / node.o()).",
    hint2="The GELU's output is the output of the last Mul (by 0.5), not the Erf's; keep the graph's node order.",
    wrong=[
        ({"ex2_outputs": _MLP_GELUS[:1]}, r"missing .* at the end"),
        ({"ex2_outputs": [name.replace("Mul_1", "Erf") for name in _MLP_GELUS]}, r"`ex2_outputs\[0\]` is .*Erf"),
        ({"ex2_outputs": set(_MLP_GELUS)}, r"should be a list"),
        ({"ex2_outputs": [out for _, out in _gelu_chains(MLP_MODEL)]},
         r"holds Variable items \(gs tensors: take tensor\.name\)"),
    ],
    context=_model_context,
)
def _find_gelus(ex2_outputs: Any, model: Any) -> str:
    expect_type("ex2_outputs", ex2_outputs, (list, tuple), "a list")
    kinds = sorted({type(item).__name__ for item in ex2_outputs if not isinstance(item, str)})
    if kinds:
        extra = " (gs tensors: take tensor.name)" if any(isinstance(i, gs.Tensor) for i in ex2_outputs) else ""
        raise Wrong(f"`ex2_outputs` holds {', '.join(kinds)} items{extra}; it should hold tensor names (str).")
    want = [out.name for _, out in _gelu_chains(model)]
    expect_sequence("ex2_outputs", list(ex2_outputs), want)
    return f"{len(want)} GELUs; at opset 20 each could be one `Gelu` node (a replacement like step 5's)."


def _first_mlp(model: Any) -> tuple[str, str]:
    """(input, output) of the first MLP: fc1 (MatMul + Add) -> GELU -> fc2 (MatMul + Add)."""
    chains = _gelu_chains(model)
    if not chains:
        raise Wrong("the model has no decomposed GELU, so it has no MLP block to compare with.")
    x, gelu_out = chains[0]
    fc1_add = x.inputs[0]
    fc1 = next(t.inputs[0] for t in fc1_add.inputs if t.inputs and t.inputs[0].op == "MatMul")
    fc2 = gelu_out.outputs[0]
    fc2_add = fc2.outputs[0].outputs[0]
    return fc1.inputs[0].name, fc2_add.outputs[0].name


def _cut(model: onnx.ModelProto, start: str, end: str) -> onnx.ModelProto:
    graph = gs.import_onnx(model)
    tensors = graph.tensors()
    graph.inputs = [tensors[start]]
    graph.outputs = [tensors[end]]
    tensors[start].inputs.clear()
    graph.cleanup()
    return gs.export_onnx(graph)


_MLP_IN, _MLP_OUT = "tokens", "/blocks.0/mlp/fc2/Add_output_0"


@exercise(
    "07.3",
    answers={"ex3_model": "onnx.ModelProto: the first MLP block (fc1 -> GELU -> fc2) as a standalone model"},
    hint="The first GELU's input comes from fc1's bias Add, whose MatMul reads the MLP's input; the GELU's output "
         "feeds fc2's MatMul and its bias Add, the MLP's output. Then cu.extract_subgraph(model, [input], [output]).",
    hint2="Cut at the input of fc1's MatMul and at the output of fc2's bias Add (not at the GELU), and check your "
          "cut with cu.compare_subgraph(full model, your model).",
    wrong=[
        ({"ex3_model": _cut(MLP_MODEL, "/blocks.0/mlp/fc1/Add_output_0", "/blocks.0/mlp/act/Mul_1_output_0")},
         r"input is \['/blocks.0/mlp/fc1/Add_output_0'\], expected \['tokens'\]"),
        ({"ex3_model": _cut(MLP_MODEL, _MLP_IN, "/blocks.0/Add_output_0")}, r"output is .*expected"),
        ({"ex3_model": "mlp.onnx"}, r"should be an onnx\.ModelProto"),
    ],
    context=_model_context,
)
def _extract_mlp(ex3_model: Any, model: Any) -> str:
    from ..errors import CourseError
    from ..graphs import _as_model, compare_subgraph

    sub = _expect_model("ex3_model", ex3_model)
    start, end = _first_mlp(model)
    names = [v.name for v in _inputs(sub)]
    expect_true(names == [start], f"the model's input is {names}, expected [{start!r}] (fc1's input).")
    outputs = [v.name for v in sub.graph.output]
    expect_true(outputs == [end], f"the model's output is {outputs}, expected [{end!r}] (fc2's bias Add).")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in _inputs(sub)[0].type.tensor_type.shape.dim]
    expect_true(dims and None not in dims, f"the input {start!r} has no static shape ({dims}); extract it with "
                                           "shapes (cu.extract_subgraph infers them).")
    _check("ex3_model", sub)
    ops = [n.op_type for n in sub.graph.node]
    expect_true(ops.count("MatMul") == 2 and ops.count("Erf") == 1,
                f"an MLP block has 2 MatMul and 1 Erf; this model has {ops.count('MatMul')} and {ops.count('Erf')}.")
    try:
        check = compare_subgraph(_as_model(model), sub)
    except CourseError as error:
        raise Wrong(f"comparing it with the full model failed: {error}") from None
    expect_true(check.ok, f"it differs from the full model's values at {end!r} by {check.max_abs_error:.3g}.")
    return f"{len(ops)} nodes, input shape {tuple(dims)}; max difference from the full model {check.max_abs_error:.1e}."
