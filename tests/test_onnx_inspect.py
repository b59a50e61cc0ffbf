"""Tests for course_utils.onnx_inspect: summaries, the printer and tables on varied models."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper
from test_onnx_io import ALL_DTYPES, make_tensor, save_external, tiny_model

import course_utils as cu
from course_utils.onnx_inspect import (
    ModelSummary,
    Table,
    dtype_name,
    format_attribute,
    format_model,
    initializers_table,
    nodes_table,
    print_model,
    summarize_model,
    value_info,
)


def convnet() -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> GlobalAveragePool -> Conv, plus a custom-domain op."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array(rng.random(shape, dtype=np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["n1"],
                         name="bn1", epsilon=1e-5),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["p1"], name="pool"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["y"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("FusedGelu", ["y"], ["z"], name="gelu", domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 16, 1, 1])],
        [init("w1", 32, 3, 3, 3), init("b1", 32), init("s", 32), init("bb", 32), init("m", 32),
         init("v", 32), init("w2", 16, 32, 1, 1), init("b2", 16)],
    )
    return helper.make_model(graph, producer_name="course", opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


def test_summarize_model_fields() -> None:
    summary = summarize_model(convnet())
    assert isinstance(summary, ModelSummary)
    assert summary.inputs == [cu.TensorInfo("x", "float32", ("N", 3, 64, 64))]
    assert str(summary.outputs[0]) == "z: float32[N, 16, 1, 1]"
    assert summary.op_counts == Counter({"Conv": 2, "BatchNormalization": 1, "Relu": 1,
                                         "GlobalAveragePool": 1, "com.microsoft::FusedGelu": 1})
    assert summary.num_nodes == 6 and summary.num_initializers == 8
    assert summary.num_parameters == 32 * 27 + 32 * 5 + 16 * 32 + 16
    assert summary.parameter_bytes == summary.num_parameters * 4
    assert summary.opset == {"ai.onnx": 17, "com.microsoft": 1}
    assert summary.opset[""] == 17 and "" in summary.opset and summary.default_opset == 17
    assert summary.opset.get("nope") is None
    assert summary.producer == "course" and summary.external_data == []


def test_summary_text_and_html() -> None:
    summary = summarize_model(convnet())
    text = str(summary)
    assert "opsets" in text and "ai.onnx 17, com.microsoft 1" in text
    assert "com.microsoft::FusedGelu x1" in text
    html = summary._repr_html_()
    assert html.startswith("<table>")
    assert "<td style='text-align:left'>x: float32[N, 3, 64, 64]" in html
    assert isinstance(summary.to_table(), Table)


def test_summarize_from_path_with_external_data(tmp_path: Path) -> None:
    path = save_external(convnet(), tmp_path / "convnet.onnx", location="convnet.data")
    (tmp_path / "convnet.data").rename(tmp_path / "elsewhere.data")  # weights not needed
    summary = summarize_model(path)
    assert summary.external_data == ["convnet.data"]
    assert summary.num_parameters == summarize_model(convnet()).num_parameters
    assert "external:convnet.data" in format_model(path)


def test_summarize_bad_input(tmp_path: Path) -> None:
    with pytest.raises(cu.CourseError, match="Expected an onnx.ModelProto or the path"):
        summarize_model(42)  # type: ignore[arg-type]
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        summarize_model(tmp_path / "missing.onnx")


class _FakeProgram:
    """Stands in for torch.onnx.ONNXProgram: all the inspectors need is .model_proto."""

    def __init__(self, proto: object) -> None:
        self.model_proto = proto


def test_inspectors_accept_an_onnx_program(capsys: pytest.CaptureFixture[str]) -> None:
    program = _FakeProgram(convnet())
    assert summarize_model(program) == summarize_model(convnet())
    assert format_model(program) == format_model(convnet())
    print_model(program, max_nodes=1)
    assert "... 5 more nodes" in capsys.readouterr().out
    assert len(nodes_table(program)) == 6 and len(initializers_table(program)) == 8
    with pytest.raises(cu.CourseError, match=r"Expected an onnx.ModelProto or the path.*"
                       r"ONNXProgram.*got _FakeProgram"):
        summarize_model(_FakeProgram("not a proto"))


def test_summarize_real_dynamo_export() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    program = torch.onnx.export(torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),),
                                dynamo=True, verbose=False)
    assert isinstance(program, torch.onnx.ONNXProgram)
    summary = summarize_model(program)
    assert summary.num_parameters == 4 * 2 + 2 and summary.num_initializers == 2
    assert summary.inputs[0].dtype == "float32" and summary.outputs[0].dtype == "float32"
    assert "Gemm" in summary.op_counts or "MatMul" in summary.op_counts
    assert "Totals: " in format_model(program)


def test_dtype_names_cover_every_type() -> None:
    assert dtype_name(TensorProto.FLOAT) == "float32"
    assert dtype_name(TensorProto.DOUBLE) == "float64"
    assert dtype_name(TensorProto.FLOAT16) == "float16"
    assert dtype_name(TensorProto.BFLOAT16) == "bfloat16"
    assert dtype_name(TensorProto.FLOAT8E4M3FN) == "float8e4m3fn"
    assert dtype_name(TensorProto.INT4) == "int4"
    assert dtype_name(999) == "unknown(999)"
    assert len({dtype_name(code) for code in ALL_DTYPES}) == len(ALL_DTYPES)


def test_value_info_dims() -> None:
    info = helper.make_tensor_value_info("t", TensorProto.INT64, ["batch", 0, None, 7])
    assert value_info(info) == cu.TensorInfo("t", "int64", ("batch", 0, None, 7))
    assert value_info(info).shape_text == "[batch, 0, ?, 7]"  # 0 stays 0; the seed made it None
    unknown_rank = helper.make_tensor_value_info("u", TensorProto.FLOAT, None)
    assert str(value_info(unknown_rank)) == "u: float32?"
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])
    assert str(value_info(seq)) == "s: seq(float32)"
    opt = helper.make_value_info("o", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.BOOL, [1])))
    assert str(value_info(opt)) == "o: optional(bool)[1]"


def test_format_attribute_every_kind() -> None:
    branch = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "body", [], [])
    big = numpy_helper.from_array(np.zeros((1000, 1000), np.float32), "big")
    node = helper.make_node(
        "Custom", [], [], f=0.5, i=3, s="same", t=big, g=branch, floats=[1.0, 2.5],
        ints=list(range(20)), strings=["a", "b"], tensors=[big], graphs=[branch, branch],
        tp=helper.make_tensor_type_proto(TensorProto.FLOAT, [2]),
    )
    shown = {a.name: format_attribute(a) for a in node.attribute}
    assert shown["f"] == "f=0.5" and shown["i"] == "i=3" and shown["s"] == "s='same'"
    assert shown["t"] == "t=tensor float32[1000, 1000] (1,000,000 values, raw_data)"
    assert shown["g"] == "g=<graph 'body' 1 nodes>"
    assert shown["floats"] == "floats=[1, 2.5]"
    assert shown["ints"] == "ints=[0, 1, 2, 3, 4, 5, 6, 7, ... 12 more]"
    assert shown["strings"] == "strings=['a', 'b']"
    assert shown["graphs"] == "graphs=<2 graphs>" and shown["tp"] == "tp=type float32"
    assert len(shown["tensors"]) < 100  # summarized, never dumped
    ref = AttributeProto(name="alpha", ref_attr_name="alpha_param", type=AttributeProto.FLOAT)
    assert format_attribute(ref) == "alpha=@alpha_param"  # a function's attribute reference


def test_format_model_sections_and_limits() -> None:
    text = format_model(convnet(), max_nodes=2, max_initializers=3)
    assert "Opsets: ai.onnx 17, com.microsoft 1" in text
    assert "  x: float32[N, 3, 64, 64]" in text and "  z: float32[N, 16, 1, 1]" in text
    assert "[0] Conv 'conv1': (x, w1, b1) -> (c1)  {kernel_shape=[3, 3], pads=[1, 1, 1, 1]}" \
        in text
    assert "... 4 more nodes" in text and "... 5 more initializers" in text
    assert "w1: float32[32, 3, 3, 3]  864 values, 3.4 KiB, raw_data" in text
    assert text.splitlines()[-1].startswith("Totals: 6 nodes (Conv x2,")
    assert "more" not in format_model(convnet(), max_nodes=None, max_initializers=None)


def test_print_model(capsys: pytest.CaptureFixture[str]) -> None:
    print_model(convnet(), max_nodes=1)
    assert "... 5 more nodes" in capsys.readouterr().out


def test_large_model_is_summarized_not_flooded() -> None:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(5000)]
    graph = helper.make_graph(
        nodes, "deep", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("t5000", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    text = format_model(model, max_nodes=10)
    assert len(text.splitlines()) < 25 and "... 4990 more nodes" in text
    assert len(nodes_table(model, max_nodes=10)) == 10


def test_subgraphs_printed_and_counted() -> None:
    body = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Neg", ["y"], ["z"])],
        "then_body", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["z"], then_branch=body, else_branch=body)
    graph = helper.make_graph(
        [node], "main", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    summary = summarize_model(model)
    assert summary.num_subgraphs == 2 and summary.num_subgraph_nodes == 4
    text = format_model(model)
    assert "then_branch: graph 'then_body' (2 nodes)" in text and "[1] Neg: (y) -> (z)" in text
    assert "1 nodes + 4 in 2 subgraphs" in text


def test_every_dtype_model_prints(tmp_path: Path) -> None:
    tensors = [make_tensor(code, raw) for code in ALL_DTYPES for raw in (True, False)]
    model = tiny_model(tensors)
    text = format_model(model, max_initializers=None)
    for code in ALL_DTYPES:
        assert f"{dtype_name(code)}[2, 2]" in text
    assert "int4[2, 2]  4 values, 2 B, raw_data" in text  # 4-bit: two values per byte
    assert "string[2, 2]  4 values, 4 B, string_data" in text
    table = initializers_table(model, max_initializers=None)
    assert len(table) == len(tensors) + 1
    path = save_external(model, tmp_path / "all.onnx", location="all.data")
    assert summarize_model(path).num_parameters == summarize_model(model).num_parameters


def test_tables_text_and_html() -> None:
    nodes = nodes_table(convnet(), max_nodes=3)
    assert "... 3 more nodes" in str(nodes) and "<table>" in nodes._repr_html_()
    assert str(nodes).splitlines()[1].split() == ["#", "name", "op", "inputs", "outputs",
                                                  "attributes"]
    inits = initializers_table(convnet())
    assert inits.rows[0] == ["w1", "float32", "[32, 3, 3, 3]", "864", "3.4 KiB", "raw_data"]
    escaped = Table(["a"], [["<b>"]])._repr_html_()
    assert "&lt;b&gt;" in escaped
