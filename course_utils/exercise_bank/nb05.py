"""Checks for the exercises of 05_unsupported_operators: register acosh (rung 3), give a DeformConv node
what a plugin needs (rung 4), rewrite Det for TensorRT (rung 2) - each judged from the exported file."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import CourseError
from ..exercises import Wrong, exercise, expect_array, expect_equal, expect_true

_ANSWER = "pathlib.Path of the exported .onnx file, or the loaded onnx.ModelProto"


def _model(name: str, value: object) -> onnx.ModelProto:
    """The learner's export, from a path or a ModelProto, with a precise message otherwise."""
    from ..onnx_io import load_model

    if isinstance(value, onnx.ModelProto):
        return value
    if isinstance(value, str):
        raise Wrong(f"`{name}` is the str {value!r}; pass a pathlib.Path (e.g. cu.model_path(...)) or a ModelProto.")
    if not isinstance(value, os.PathLike):
        raise Wrong(f"`{name}` should be a pathlib.Path or an onnx.ModelProto, but it is {type(value).__name__}.")
    try:
        return load_model(value)
    except CourseError as error:
        raise Wrong(f"`{name}` does not lead to a readable ONNX model: {error}") from None


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], what: str) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feeds)[0]
    except Exception as error:
        raise Wrong(f"onnxruntime cannot run {what}: {str(error).splitlines()[0][:300]}") from None


def _ops(model: onnx.ModelProto) -> list[str]:
    from ..operators import op_types

    return op_types(model)


def _one_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    expect_true(len(inputs) == 1, f"the model should have one input, it has {len(inputs)}.")
    return inputs[0]


def _single_op(op_type: str, opset: int, shape: list[int | str], domain: str = "",
               elem: int = TensorProto.FLOAT, **attributes: Any) -> onnx.ModelProto:
    """A one-node model (the planted answers): x -> op_type -> y."""
    node = helper.make_node(op_type, ["x"], ["y"], domain=domain, **attributes)
    graph = helper.make_graph([node], "planted", [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", elem, None)])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports)


def _log_rewrite() -> onnx.ModelProto:
    """acosh(x) = log(x + sqrt(x*x - 1)) written out: right numbers, but not the registered Acosh op."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["xx"]), helper.make_node("Sub", ["xx", "one"], ["d"]),
             helper.make_node("Sqrt", ["d"], ["s"]), helper.make_node("Add", ["x", "s"], ["a"]),
             helper.make_node("Log", ["a"], ["y"])]
    graph = helper.make_graph(nodes, "planted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])


# --- exercise 1: register acosh (method 1) ------------------------------------------------------

@exercise(
    "05.1",
    answers={"ex1_path": _ANSWER},
    hint="Step 4, method 1, with acosh: a symbolic `g.op('Acosh', input)`, "
         "torch.onnx.register_custom_op_symbolic('aten::acosh', ..., 9), export with dynamo=False and "
         "opset_version=9, then unregister.",
    hint2="The exported graph must be the single ONNX op Acosh at opset 9 (not a rewrite with Log/Sqrt), and "
          "the registration removed afterwards with torch.onnx.unregister_custom_op_symbolic('aten::acosh', 9).",
    wrong=[
        ({"ex1_path": _log_rewrite()}, r"op types are \['Mul', 'Sub', 'Sqrt', 'Add', 'Log'\], expected \['Acosh'\]"),
        ({"ex1_path": _single_op("Acosh", 12, [2, 3])}, r"declares opset 12, expected 9"),
        ({"ex1_path": "models/05/acosh.onnx"}, r"is the str 'models/05/acosh\.onnx'; pass a pathlib\.Path"),
        ({"ex1_path": Path("no-such-dir/acosh.onnx")}, r"does not lead to a readable ONNX model: No ONNX file"),
    ],
)
def _register_acosh(ex1_path: object) -> str:
    model = _model("ex1_path", ex1_path)
    ops = _ops(model)
    if ops != ["Acosh"]:
        raise Wrong(f"the exported op types are {ops}, expected ['Acosh']: register a symbolic that emits "
                    "g.op('Acosh', input).")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    expect_true(opset == 9, f"the model declares opset {opset}, expected 9 (export with opset_version=9).")
    info = _one_input(model)
    # The learner chose the example input: use the file's own input shape (3 for a dynamic axis).
    shape = [d.dim_value if d.WhichOneof("value") == "dim_value" and d.dim_value > 0 else 3
             for d in info.type.tensor_type.shape.dim]
    x = (1 + 5 * np.random.default_rng(5).random(shape)).astype(np.float32)  # acosh needs x >= 1
    expect_array("onnxruntime's acosh", _run(model, {info.name: x}, "the exported model"), np.arccosh(x))
    from torch.onnx._internal.torchscript_exporter import registration

    if registration.registry.is_registered_op("aten::acosh", 9):
        raise Wrong("the file is right, but aten::acosh is still registered: call "
                    "torch.onnx.unregister_custom_op_symbolic('aten::acosh', 9) to leave the exporter as it was.")
    return "ONNX had Acosh since opset 9; only the exporter's table was missing it."


# --- exercise 2: a DeformConv node a plugin could use --------------------------------------------

def _dcn_node(inputs: list[str], **attributes: Any) -> onnx.ModelProto:
    """Planted answers: a custom::deform_conv2d node with the given inputs and attributes."""
    node = helper.make_node("deform_conv2d", inputs, ["out"], domain="custom", **attributes)
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "planted", values, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12), helper.make_opsetid("custom", 1)])


_FIVE = ["input", "conv2.weight", "offset", "mask", "conv2.bias"]
_SCALARS = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": 1, "offset_groups": 1, "use_mask": 0}


def _dcn_stand_in() -> dict[str, Any]:
    """What the judge reads from the lesson's dcn_model, without torch (for the checks' own tests)."""
    conv2 = SimpleNamespace(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                            weight=SimpleNamespace(shape=(1, 1, 3, 3)), bias=SimpleNamespace(shape=(1,)))
    conv1 = SimpleNamespace(out_channels=18)
    return {"dcn_model": SimpleNamespace(conv1=conv1, conv2=conv2)}


@exercise(
    "05.2",
    answers={"ex2_path": _ANSWER},
    hint="Keep the seed's @parse_args line but turn use_mask into 'b', and pass all five tensors to g.op: "
         "g.op('custom::deform_conv2d', input, weight, offset, mask, bias, stride_i=[stride_h, stride_w], ...).",
    hint2="A legacy g.op attribute's type is a suffix on its name: `_i` int or int list, `_s` string. The node "
          "needs stride, padding, dilation (int lists), groups, offset_groups, use_mask (ints), plugin_version_s='1' "
          "and plugin_namespace_s='custom'.",
    wrong=[
        ({"ex2_path": _dcn_node(["input", "offset"])}, r"has 2 inputs, expected 5"),
        ({"ex2_path": _dcn_node(_FIVE, plugin_version="1", **_SCALARS)}, r"no attribute 'plugin_namespace'"),
        ({"ex2_path": _dcn_node(_FIVE, plugin_version="1", plugin_namespace="custom",
                                **{**_SCALARS, "stride": [2, 2]})}, r"`stride` is \[2, 2\], expected \[1, 1\]"),
        ({"ex2_path": 12}, r"should be a pathlib\.Path or an onnx\.ModelProto, but it is int"),
    ],
    context=_dcn_stand_in,
)
def _dcn_for_a_plugin(ex2_path: object, dcn_model: Any) -> str:
    from ..operators import node_attributes

    model = _model("ex2_path", ex2_path)
    node = next((n for n in model.graph.node if (n.domain, n.op_type) == ("custom", "deform_conv2d")), None)
    if node is None:
        raise Wrong(f"no custom::deform_conv2d node in the export (its op types: {_ops(model)}).")
    if len(node.input) != 5:
        raise Wrong(f"the custom::deform_conv2d node has {len(node.input)} inputs, expected 5: input, weight, "
                    "offset, mask, bias (a plugin computes the convolution from them).")
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    conv2 = dcn_model.conv2
    if node.input[1] in dims:
        expect_equal("the weight input's shape", dims[node.input[1]], tuple(conv2.weight.shape))
    attributes = node_attributes(model, "custom::deform_conv2d")
    offset_groups = dcn_model.conv1.out_channels // (2 * conv2.weight.shape[2] * conv2.weight.shape[3])
    want = {"stride": list(conv2.stride), "padding": list(conv2.padding), "dilation": list(conv2.dilation),
            "groups": conv2.groups, "offset_groups": offset_groups, "use_mask": 0,
            "plugin_version": "1", "plugin_namespace": "custom"}
    for name, value in want.items():
        if name not in attributes:
            raise Wrong(f"the node has no attribute '{name}' (it has {sorted(attributes)}).")
        if attributes[name] != value:
            raise Wrong(f"attribute `{name}` is {attributes[name]!r}, expected {value!r}.")
    return "Now the node carries everything a ModulatedDeformConv-style plugin needs."


# --- exercise 3: Det without Det, for TensorRT ---------------------------------------------------

@exercise(
    "05.3",
    answers={"ex3_path": _ANSWER},
    hint="Rung 2: write the 3x3 determinant with ops every exporter and TensorRT know, e.g. the cofactor "
         "expansion along the first row: a[..., 0, 0] * (a[..., 1, 1] * a[..., 2, 2] - a[..., 1, 2] * "
         "a[..., 2, 1]) - ...",
    hint2="Export a module whose forward uses only indexing, * and - (no torch.linalg.det), with an input of shape "
          "(batch, 3, 3); the graph must have no Det node and give np.linalg.det's values.",
    wrong=[
        ({"ex3_path": _single_op("Det", 11, ["N", 3, 3])}, r"still has a Det node"),
        ({"ex3_path": _single_op("ReduceSum", 11, ["N", 3, 3], keepdims=0, axes=[1, 2])},
         r"elements differ; the worst is `the determinants\["),
        ({"ex3_path": _single_op("Det", 11, [3, 3])}, r"input should have shape \(batch, 3, 3\)"),
        ({"ex3_path": 3.0}, r"should be a pathlib\.Path or an onnx\.ModelProto, but it is float"),
    ],
)
def _det_without_det(ex3_path: object) -> str:
    from ..operators import unknown_ops

    model = _model("ex3_path", ex3_path)
    info = _one_input(model)
    dims = [d.dim_value if d.WhichOneof("value") == "dim_value" else None for d in info.type.tensor_type.shape.dim]
    if len(dims) != 3 or dims[1:] != [3, 3]:
        raise Wrong(f"the model's input should have shape (batch, 3, 3), it has {dims}.")
    ops = _ops(model)
    if "Det" in ops:
        raise Wrong(f"the export still has a Det node (its op types: {sorted(set(ops))}); TensorRT's parser "
                    "rejects Det, so compute the determinant with other ops.")
    unknown = unknown_ops(model)
    expect_true(not unknown, f"ONNX does not know {unknown} at the model's opset.")
    batch = dims[0] or 4
    rng = np.random.default_rng(6)
    a = rng.standard_normal((batch, 3, 3)).astype(np.float32)
    a[0] = np.eye(3, dtype=np.float32)
    if batch > 1:
        a[1] = [[1, 2, 3], [2, 4, 6], [0, 1, 1]]  # singular: det 0
    expect_array("the determinants", _run(model, {info.name: a}, "the exported model"),
                 np.linalg.det(a.astype(np.float64)), rtol=1e-4, atol=1e-5)
    return "Rung 2 for the runtime: the same numbers from ops TensorRT's parser imports."
