"""Checks for the exercises of 04_onnx_protobuf_anatomy: build a graph, make a batch dynamic, fold a
BatchNormalization into a Conv - each by writing protobuf messages, each judged by running the result."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..exercises import Wrong, exercise, expect_array, expect_sequence, expect_true, expect_type


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], what: str) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the check says what is wrong, not onnxruntime's log
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = str(error).splitlines()[0][:300]
        raise Wrong(f"onnxruntime cannot run {what}: {first}") from None


def _checked(name: str, model: object) -> onnx.ModelProto:
    expect_type(name, model, onnx.ModelProto, "an onnx.ModelProto")
    assert isinstance(model, onnx.ModelProto)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        first = str(error).strip().splitlines()[0][:300]
        raise Wrong(f"`{name}` fails onnx.checker.check_model(full_check=True): {first}") from None
    return model


def _ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


# --- exercise 1: y = Relu(x) * 2 --------------------------------------------------------------

def _relu_times(factor_type: int = TensorProto.FLOAT, with_mul: bool = True) -> onnx.ModelProto:
    """Planted answers: Relu only, or the constant stored as DOUBLE."""
    nodes = [helper.make_node("Relu", ["x"], ["r" if with_mul else "y"])]
    initializers = []
    if with_mul:
        nodes.append(helper.make_node("Mul", ["r", "two"], ["y"]))
        initializers.append(helper.make_tensor("two", factor_type, [1], [2.0]))
    graph = helper.make_graph(nodes, "relu-times-two",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@exercise(
    "04.1",
    answers={"ex1_model": "onnx.ModelProto computing y = Relu(x) * 2"},
    hint="The helper calls of step 2 (make_tensor_value_info, make_node, make_graph, make_model); the constant "
         "is an initializer, a TensorProto made from a float32 array and passed to make_graph.",
    hint2="Input 'x' and output 'y' are float[2, 3]; Relu's output feeds Mul, whose second input is the "
          "initializer 'two' (FLOAT, shape [1]); pin the opset with opset_imports=[helper.make_opsetid('', 17)].",
    wrong=[
        ({"ex1_model": "y = relu(x) * 2"}, r"should be an onnx\.ModelProto, but it is str"),
        ({"ex1_model": _relu_times(with_mul=False)}, r"elements differ; the worst is `y\["),
        ({"ex1_model": _relu_times(TensorProto.DOUBLE)}, r"fails onnx\.checker\.check_model\(full_check=True\)"),
    ],
)
def _relu_times_two(ex1_model: object) -> str:
    model = _checked("ex1_model", ex1_model)
    expect_sequence("the graph's input names", [i.name for i in model.graph.input
                                                if i.name not in {t.name for t in model.graph.initializer}], ["x"])
    expect_sequence("the graph's output names", [o.name for o in model.graph.output], ["y"])
    rng = np.random.default_rng(4)
    for x in (np.array([[-1, 0, 1], [2, -3, 4]], np.float32), rng.standard_normal((2, 3)).astype(np.float32)):
        (y,) = _run(model, {"x": x}, "`ex1_model`")
        expect_array("y", y, 2 * np.maximum(x, 0))
    expect_true("Relu" in _ops(model), f"`ex1_model` computes the right numbers but has no Relu node "
                                       f"(its nodes: {_ops(model)}); the task asks for Relu(x) * 2.")
    return "A model is just nested messages: nodes joined by tensor names, the constant an initializer."


# --- exercises 2 and 3 use the lesson's ConvNet --------------------------------------------------

def _convnet(seed: int = 0) -> onnx.ModelProto:
    """A ConvNet shaped like the lesson's (names and layers as in step 5), for the checks' own tests."""
    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array(rng.random(shape, dtype=np.float32), name)

    names = ["batchNorm1.scale", "batchNorm1.bias", "batchNorm1.mean", "batchNorm1.var"]
    nodes = [
        helper.make_node("Conv", ["input0", "conv2d_1.weight", "conv2d_1.bias"], ["conv2d_1.output"],
                         name="conv2d_1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv2d_1.output", *names], ["batchNorm1.output"], name="batchNorm1"),
        helper.make_node("Relu", ["batchNorm1.output"], ["relu1.output"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["relu1.output"], ["avg_pool1.output"], name="avg_pool1"),
        helper.make_node("Conv", ["avg_pool1.output", "conv2d_2.weight", "conv2d_2.bias"], ["output0"],
                         name="conv2d_2", kernel_shape=[1, 1], pads=[0, 0, 0, 0]),
    ]
    graph = helper.make_graph(
        nodes, "sample-convnet", [helper.make_tensor_value_info("input0", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 16, 1, 1])],
        [init("conv2d_1.weight", 32, 3, 3, 3), init("conv2d_1.bias", 32), *(init(n, 32) for n in names),
         init("conv2d_2.weight", 16, 32, 1, 1), init("conv2d_2.bias", 16)])
    model = helper.make_model(graph, producer_name="onnx-sample", opset_imports=[helper.make_opsetid("", 12)])
    return onnx.shape_inference.infer_shapes(model)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    return twin


def _only_input_dynamic() -> onnx.ModelProto:
    model = _copy(_convnet())
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return model


def _context() -> dict[str, Any]:
    return {"convnet": _convnet()}


def _batch_dim(info: onnx.ValueInfoProto) -> str | int | None:
    dim = info.type.tensor_type.shape.dim[0]
    which = dim.WhichOneof("value")
    return dim.dim_param if which == "dim_param" else dim.dim_value if which == "dim_value" else None


@exercise(
    "04.2",
    answers={"ex2_model": "onnx.ModelProto, a copy of convnet whose batch dimension is the symbolic name 'N'"},
    hint="Copy first (onnx.ModelProto() + CopyFrom, as in step 8); then, on the graph's input and output, set "
         "type.tensor_type.shape.dim[0].dim_param = 'N' (setting one side of the oneof clears dim_value).",
    hint2="The input and the output both need dim_param 'N'; the value_info entries that shape inference added "
          "still say batch 1, so remove them (del model.graph.value_info[:]) or infer shapes again.",
    wrong=[
        ({"ex2_model": _convnet()}, r"`ex2_model`'s input `input0` has batch dimension 1, expected the symbolic "
                                    r"name 'N'"),
        ({"ex2_model": _only_input_dynamic()}, r"output `output0` has batch dimension 1"),
        ({"ex2_model": [_convnet()]}, r"should be an onnx\.ModelProto, but it is list"),
    ],
    context=_context,
)
def _dynamic_batch(ex2_model: object, convnet: onnx.ModelProto) -> str:
    expect_type("ex2_model", ex2_model, onnx.ModelProto, "an onnx.ModelProto")
    assert isinstance(ex2_model, onnx.ModelProto)
    for kind, infos in (("input", ex2_model.graph.input), ("output", ex2_model.graph.output)):
        for info in infos:
            batch = _batch_dim(info)
            if batch != "N":
                raise Wrong(f"`ex2_model`'s {kind} `{info.name}` has batch dimension {batch!r}, expected the "
                            "symbolic name 'N' (dim_param).")
    model = _checked("ex2_model", ex2_model)
    batch = np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32)
    (together,) = _run(model, {"input0": batch}, "`ex2_model` on a batch of 3")
    singles = np.concatenate([_run(convnet, {"input0": batch[i:i + 1]}, "the lesson's convnet")[0]
                              for i in range(3)])
    expect_array("the batch-of-3 output", together, singles, rtol=1e-4, atol=1e-5)
    return "One symbolic name in two places, and the same file serves any batch size."


# --- exercise 3: fold BatchNormalization into the Conv before it ----------------------------------

def _bn_removed(fold: bool) -> onnx.ModelProto:
    """The BN node cut out and the graph rewired; with `fold`, the weights absorb it (the answer)."""
    model = _copy(_convnet())
    graph = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    conv = next(n for n in graph.node if n.output[0] == bn.input[0])
    if fold:
        scale = weights[bn.input[1]] / np.sqrt(weights[bn.input[4]] + eps)
        new_w = weights[conv.input[1]] * scale[:, None, None, None]
        new_b = (weights[conv.input[2]] - weights[bn.input[3]]) * scale + weights[bn.input[2]]
        for tensor in graph.initializer:
            if tensor.name in (conv.input[1], conv.input[2]):
                value = new_w if tensor.name == conv.input[1] else new_b
                tensor.CopyFrom(numpy_helper.from_array(value.astype(np.float32), tensor.name))
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == bn.output[0]:
                node.input[i] = conv.output[0]
    graph.node.remove(bn)
    keep = [t for t in graph.initializer if t.name not in bn.input[1:]]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.value_info[:]
    return model


@exercise(
    "04.3",
    answers={"ex3_model": "onnx.ModelProto, convnet without its BatchNormalization node, same output"},
    hint="Per output channel c: s = scale[c] / sqrt(var[c] + eps); W'[c] = W[c] * s; b'[c] = (b[c] - mean[c]) * s "
         "+ bias[c] (eps = 1e-5 when the node has no epsilon attribute). Replace conv2d_1's two initializers "
         "with CopyFrom, as in step 8.",
    hint2="Then remove the BatchNormalization node (graph.node.remove), make Relu read conv2d_1.output, drop the "
          "four BN initializers and the stale value_info, and check: the output must match convnet's.",
    wrong=[
        ({"ex3_model": _convnet()}, r"still has a BatchNormalization node"),
        ({"ex3_model": _bn_removed(fold=False)}, r"the output .* elements differ"),
        ({"ex3_model": None}, r"should be an onnx\.ModelProto, but it is NoneType"),
    ],
    context=_context,
)
def _fold_batchnorm(ex3_model: object, convnet: onnx.ModelProto) -> str:
    model = _checked("ex3_model", ex3_model)
    ops = _ops(model)
    if "BatchNormalization" in ops:
        raise Wrong(f"`ex3_model` still has a BatchNormalization node (its nodes: {ops}); fold it into conv2d_1's "
                    "weight and bias, then remove the node.")
    expect_sequence("`ex3_model`'s op types", ops, ["Conv", "Relu", "GlobalAveragePool", "Conv"])
    x = np.random.default_rng(3).standard_normal((1, 3, 64, 64)).astype(np.float32)
    (want,) = _run(convnet, {"input0": x}, "the lesson's convnet")
    (got,) = _run(model, {"input0": x}, "`ex3_model`")
    scale = float(np.abs(want).max())
    try:
        expect_array("output0", got, want, rtol=1e-4, atol=1e-5 * scale)
    except Wrong as problem:
        raise Wrong(f"the output of `ex3_model` is not convnet's: {problem}") from None
    return "One node fewer and the same numbers: what TensorRT's layer fusion does to every Conv+BN."
