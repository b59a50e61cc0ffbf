"""Checks for the exercises of 06_graphsurgeon_building: build a graph, keep one head, clean up a graph.

Every judge runs the learner's ONNX model in onnxruntime and compares it with numpy, and says
which rule of the lesson it breaks (float64 weights, dead nodes, unsorted nodes, unfolded constants).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..exercises import Wrong, exercise, expect_array, expect_true, expect_type

# --- exercise 1: a folded BatchNorm, y = Relu(x * scale + shift) ---------------------------------

EX1_SHAPE = (1, 4, 8, 8)
EX1_SCALE = np.array([0.5, 1.0, 1.5, 2.0], dtype=np.float32).reshape(1, 4, 1, 1)
EX1_SHIFT = np.array([-1.0, 0.0, 0.5, 1.0], dtype=np.float32).reshape(1, 4, 1, 1)


def _scale_shift_model(dtype: Any = np.float32, relu: bool = True) -> onnx.ModelProto:
    """The answer to exercise 1 built with onnx.helper (used for the planted wrong answers)."""
    nodes = [helper.make_node("Mul", ["x", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "shift"], ["y" if not relu else "shifted"])]
    if relu:
        nodes.append(helper.make_node("Relu", ["shifted"], ["y"]))
    graph = helper.make_graph(
        nodes, "scale_shift", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(EX1_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(EX1_SHAPE))],
        [numpy_helper.from_array(EX1_SCALE.astype(dtype), "scale"),
         numpy_helper.from_array(EX1_SHIFT.astype(dtype), "shift")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feed)
    except Exception as error:
        raise Wrong(f"onnxruntime cannot run it: {str(error).splitlines()[0][:300]}") from None


def _expect_model(name: str, value: Any) -> onnx.ModelProto:
    if type(value).__name__ == "Graph" and hasattr(value, "nodes"):
        raise Wrong(f"`{name}` is a gs.Graph; export it first: `{name} = gs.export_onnx(graph)`.")
    expect_type(name, value, onnx.ModelProto, "an onnx.ModelProto (gs.export_onnx(graph))")
    return value


def _float64_initializers(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in model.graph.initializer if t.data_type == TensorProto.DOUBLE]


def _check(name: str, model: onnx.ModelProto) -> None:
    doubles = _float64_initializers(model)
    if doubles:
        raise Wrong(f"the constant(s) {doubles} of `{name}` are float64 (numpy's default); TensorRT and "
                    "onnxruntime want float32 like the input: use .astype(np.float32).")
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:
        first_line = str(error).splitlines()[0][:200]
        raise Wrong(f"the ONNX checker (full_check=True) rejects `{name}`: {first_line}") from None


def _inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initializers]


def _dims(value: onnx.ValueInfoProto) -> tuple[Any, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or None
                 for d in value.type.tensor_type.shape.dim)


@exercise(
    "06.1",
    answers={"ex1_model": "onnx.ModelProto: y = Relu(x * EX1_SCALE + EX1_SHIFT), input 'x' float32 (1, 4, 8, 8)"},
    hint="Three gs.Node objects (Mul, Add, Relu) joined by gs.Variable tensors; the scale and shift are "
         "gs.Constant tensors; then gs.Graph(nodes=..., inputs=..., outputs=..., opset=17) and gs.export_onnx.",
    hint2="Give every Variable a dtype (np.float32) and the output a shape too; keep the constants float32; "
          "check with onnx.checker.check_model(model, full_check=True) before you run it.",
    wrong=[
        ({"ex1_model": _scale_shift_model(np.float64)}, r"float64"),
        ({"ex1_model": _scale_shift_model(relu=False)}, r"elements differ"),
        ({"ex1_model": "model.onnx"}, r"should be an onnx\.ModelProto"),
        ({"ex1_model": onnx.compose.add_prefix(_scale_shift_model(), "p_")}, r"inputs are \['p_x'\]; .* named 'x'"),
    ],
)
def _scale_shift(ex1_model: Any) -> str:
    model = _expect_model("ex1_model", ex1_model)
    _check("ex1_model", model)
    inputs = _inputs(model)
    names = [v.name for v in inputs]
    expect_true(names == ["x"], f"the model's inputs are {names}; the task asks for one input named 'x'.")
    expect_true(inputs[0].type.tensor_type.elem_type == TensorProto.FLOAT,
                "the input 'x' must be float32 (dtype=np.float32).")
    expect_true(_dims(inputs[0]) == EX1_SHAPE, f"the input 'x' has shape {_dims(inputs[0])}, expected {EX1_SHAPE}.")
    expect_true(len(model.graph.output) == 1, f"the model has {len(model.graph.output)} outputs; it needs one.")
    x = np.random.default_rng(6).standard_normal(EX1_SHAPE).astype(np.float32) * 2
    (got,) = _run(model, {"x": x})
    expect_array("ex1_model's output", got, np.maximum(x * EX1_SCALE + EX1_SHIFT, 0), rtol=1e-5, atol=1e-6)
    return "An inference-mode BatchNorm is exactly this per-channel scale and shift."


# --- exercise 2: keep one head of a three-head model --------------------------------------------

def _three_heads() -> onnx.ModelProto:
    rng = np.random.default_rng(62)

    def weight(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("MatMul", ["features", "trunk.weight"], ["trunk.mm"], name="trunk/MatMul"),
        helper.make_node("Relu", ["trunk.mm"], ["trunk"], name="trunk/Relu"),
        helper.make_node("MatMul", ["trunk", "boxes.weight"], ["boxes"], name="boxes/MatMul"),
        helper.make_node("MatMul", ["trunk", "scores.weight"], ["scores.logits"], name="scores/MatMul"),
        helper.make_node("Softmax", ["scores.logits"], ["scores"], name="scores/Softmax", axis=-1),
        helper.make_node("MatMul", ["trunk", "embedding.weight"], ["embedding.raw"], name="embedding/MatMul"),
        helper.make_node("LpNormalization", ["embedding.raw"], ["embedding"], name="embedding/Normalize", axis=-1),
    ]
    initializers = [weight("trunk.weight", (8, 8)), weight("boxes.weight", (8, 4)), weight("scores.weight", (8, 3)),
                    weight("embedding.weight", (8, 6))]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, size])
               for name, size in (("boxes", 4), ("scores", 3), ("embedding", 6))]
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph(nodes, "three_heads", [features], outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: Exercise 2's model: a trunk and three heads, 'boxes', 'scores' and 'embedding'.
THREE_HEADS = _three_heads()


def _only_outputs(names: list[str], cleanup: bool) -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(THREE_HEADS)
    tensors = graph.tensors()
    graph.outputs = [tensors[name] for name in names]
    if cleanup:
        graph.cleanup()
    return gs.export_onnx(graph)


def _unused_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes that contribute to no graph output (what gs's cleanup would remove)."""
    needed = {o.name for o in model.graph.output}
    used: list[str] = []
    for node in reversed(model.graph.node):
        if any(out in needed for out in node.output):
            used.append(node.name or node.op_type)
            needed.update(node.input)
    return [node.name or node.op_type for node in model.graph.node if (node.name or node.op_type) not in used]


@exercise(
    "06.2",
    answers={"ex2_model": "onnx.ModelProto: THREE_HEADS with only the output 'scores' and nothing it does not need"},
    hint="gs.import_onnx(THREE_HEADS); graph.tensors() maps names to tensors; set graph.outputs to the one "
         "tensor you keep, then graph.cleanup() and gs.export_onnx(graph).",
    hint2="Changing graph.outputs alone leaves the other heads' nodes and weights in the file: cleanup() "
          "removes everything that no output needs.",
    wrong=[
        ({"ex2_model": _only_outputs(["scores"], cleanup=False)}, r"compute nothing that 'scores' needs"),
        ({"ex2_model": _only_outputs(["boxes"], cleanup=True)}, r"outputs are \['boxes'\]; keep only"),
        ({"ex2_model": THREE_HEADS}, r"outputs are \['boxes', 'scores', 'embedding'\]"),
    ],
)
def _keep_one_head(ex2_model: Any) -> str:
    model = _expect_model("ex2_model", ex2_model)
    names = [o.name for o in model.graph.output]
    expect_true(names == ["scores"], f"the model's outputs are {names}; keep only ['scores'] (set graph.outputs).")
    dead = _unused_nodes(model)
    if dead:
        raise Wrong(f"{len(dead)} node(s) {dead} compute nothing that 'scores' needs; run graph.cleanup().")
    read = {name for node in model.graph.node for name in node.input}
    unused = [t.name for t in model.graph.initializer if t.name not in read]
    expect_true(not unused, f"the weight(s) {unused} are still in the file but nothing reads them; "
                            "run graph.cleanup().")
    _check("ex2_model", model)
    features = np.random.default_rng(7).standard_normal((1, 8)).astype(np.float32)
    (want,) = _run(_only_outputs(["scores"], cleanup=True), {"features": features})
    (got,) = _run(model, {"features": features})
    expect_array("ex2_model's 'scores'", got, want, rtol=1e-5, atol=1e-6)
    return f"{len(model.graph.node)} of {len(THREE_HEADS.graph.node)} nodes and " \
           f"{len(model.graph.initializer)} of {len(THREE_HEADS.graph.initializer)} weights are left."


# --- exercise 3: toposort, fold constants, clean up ------------------------------------------------

_EX3_RNG = np.random.default_rng(63)
EX3_WEIGHT_T = _EX3_RNG.standard_normal((4, 6)).astype(np.float32)  # stored transposed
EX3_BIAS = _EX3_RNG.standard_normal(4).astype(np.float32)
EX3_BIAS_SCALE = np.float32(0.5)


def _ex3_model(order: tuple[int, ...] = (4, 2, 0, 3, 1)) -> onnx.ModelProto:
    """y = Relu(x @ Transpose(W_t) + bias * 0.5): the weight and bias are computed at run time
    from constants, and the nodes are stored in the order `order` (not topological)."""
    nodes = [
        helper.make_node("Transpose", ["weight_t"], ["weight"], name="transpose_weight", perm=[1, 0]),
        helper.make_node("Mul", ["bias", "bias_scale"], ["scaled_bias"], name="scale_bias"),
        helper.make_node("MatMul", ["x", "weight"], ["mm"], name="matmul"),
        helper.make_node("Add", ["mm", "scaled_bias"], ["pre"], name="add_bias"),
        helper.make_node("Relu", ["pre"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        [nodes[i] for i in order], "unsorted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(EX3_WEIGHT_T, "weight_t"), numpy_helper.from_array(EX3_BIAS, "bias"),
         numpy_helper.from_array(np.array(EX3_BIAS_SCALE), "bias_scale")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


#: Exercise 3's model: nodes out of order, and a weight and a bias computed from constants at run time.
EX3_MODEL = _ex3_model()


def _ex3_sorted_only() -> onnx.ModelProto:
    return _ex3_model(order=(0, 1, 2, 3, 4))


def _ex3_wrong_transpose() -> onnx.ModelProto:
    model = _ex3_model(order=(0, 1, 2, 3, 4))
    folded = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["mm"]), helper.make_node("Add", ["mm", "scaled_bias"], ["pre"]),
         helper.make_node("Relu", ["pre"], ["y"])], "folded", list(model.graph.input), list(model.graph.output),
        [numpy_helper.from_array(EX3_WEIGHT_T.reshape(6, 4), "weight"),  # reshaped, not transposed
         numpy_helper.from_array(EX3_BIAS * EX3_BIAS_SCALE, "scaled_bias")])
    return helper.make_model(folded, opset_imports=[helper.make_opsetid("", 17)])


def _ex3_folded_not_cleaned() -> onnx.ModelProto:
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(EX3_MODEL)
    graph.toposort().fold_constants()  # no cleanup: the folded nodes stay, without outputs
    return gs.export_onnx(graph)


def _constant_only_nodes(model: onnx.ModelProto) -> list[str]:
    constant = {t.name for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type == "Constant" or (node.input and all(name in constant or not name for name in node.input)):
            found.append(node.name or node.op_type)
            constant.update(node.output)
    return found


@exercise(
    "06.3",
    answers={"ex3_model": "onnx.ModelProto: EX3_MODEL, sorted, with its constants folded and cleaned up"},
    hint="gs.import_onnx(EX3_MODEL), then graph.toposort() (fold_constants needs a sorted graph), "
         "graph.fold_constants() and graph.cleanup(), then gs.export_onnx(graph).",
    hint2="The checker wants the nodes in topological order; a node whose inputs are all constants "
          "(Transpose of a weight, Mul of two constants) should be folded into a constant.",
    wrong=[
        ({"ex3_model": EX3_MODEL}, r"checker .*topologically sorted"),
        ({"ex3_model": _ex3_sorted_only()}, r"compute from constants only"),
        ({"ex3_model": _ex3_wrong_transpose()}, r"elements differ"),
        ({"ex3_model": _ex3_folded_not_cleaned()}, r"have no outputs left .* graph\.cleanup\(\)"),
    ],
)
def _sort_fold_clean(ex3_model: Any) -> str:
    model = _expect_model("ex3_model", ex3_model)
    leftover = [node.name or node.op_type for node in model.graph.node if not any(node.output)]
    if leftover:  # fold_constants replaced their outputs by constants; the nodes themselves stay until cleanup
        raise Wrong(f"the node(s) {leftover} have no outputs left (fold_constants took them over); "
                    "graph.cleanup() removes them.")
    _check("ex3_model", model)
    foldable = _constant_only_nodes(model)
    if foldable:
        raise Wrong(f"the node(s) {foldable} compute from constants only; graph.fold_constants() turns them into "
                    "constants, and graph.cleanup() removes what is left over.")
    x = np.random.default_rng(8).standard_normal((2, 6)).astype(np.float32)
    (got,) = _run(model, {"x": x})
    expect_array("ex3_model's output", got, np.maximum(x @ EX3_WEIGHT_T.T + EX3_BIAS * EX3_BIAS_SCALE, 0),
                 rtol=1e-5, atol=1e-5)
    return f"{len(EX3_MODEL.graph.node)} nodes became {len(model.graph.node)}: what `polygraphy surgeon sanitize " \
           "--fold-constants` does on the command line."
