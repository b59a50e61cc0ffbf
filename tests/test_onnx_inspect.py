"""Tests for course_utils.onnx_inspect: the summary and the initializer table on varied models,
and that they agree with the field's printers (onnx.printer.to_text, polygraphy inspect model)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_onnx_io import ALL_DTYPES, make_tensor, save_external, tiny_model

import course_utils as cu
from course_utils.onnx_inspect import (
    ModelSummary,
    Table,
    dtype_name,
    initializers_table,
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
    assert summary.parameter_bytes == summary.num_parameters * 4  # from each weight's 'length'
    assert {row[-1] for row in initializers_table(path).rows} == {"external:convnet.data"}


def test_summarize_bad_input(tmp_path: Path) -> None:
    with pytest.raises(cu.CourseError, match="Expected an onnx.ModelProto or the path"):
        summarize_model(42)  # type: ignore[arg-type]
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        summarize_model(tmp_path / "missing.onnx")


class _FakeProgram:
    """Stands in for torch.onnx.ONNXProgram: all the inspectors need is .model_proto."""

    def __init__(self, proto: object) -> None:
        self.model_proto = proto


def test_inspectors_accept_an_onnx_program() -> None:
    program = _FakeProgram(convnet())
    assert summarize_model(program) == summarize_model(convnet())
    assert len(initializers_table(program)) == 8
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


def test_large_model_summary_is_one_screen() -> None:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(5000)]
    graph = helper.make_graph(
        nodes, "deep", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("t5000", TensorProto.FLOAT, [1])])
    summary = summarize_model(helper.make_model(graph))
    assert summary.num_nodes == 5000 and summary.op_counts == Counter({"Relu": 5000})
    assert len(str(summary).splitlines()) < 15


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


def test_every_dtype_model_summarizes(tmp_path: Path) -> None:
    tensors = [make_tensor(code, raw) for code in ALL_DTYPES for raw in (True, False)]
    model = tiny_model(tensors)
    table = initializers_table(model, max_initializers=None)
    assert len(table) == len(tensors) + 1
    rows = {row[0]: row for row in table.rows}
    assert rows["int4_raw"][1:] == ["int4", "[2, 2]", "4", "2 B", "raw_data"]  # two values per byte
    assert rows["string_typed"][1:] == ["string", "[2, 2]", "4", "4 B", "string_data"]
    assert rows["float_typed"][-2:] == ["16 B", "float_data"]
    path = save_external(model, tmp_path / "all.onnx", location="all.data")
    assert summarize_model(path).num_parameters == summarize_model(model).num_parameters


def test_tables_text_and_html() -> None:
    inits = initializers_table(convnet(), max_initializers=3)
    assert inits.rows[0] == ["w1", "float32", "[32, 3, 3, 3]", "864", "3.4 KiB", "raw_data"]
    assert len(inits) == 3 and inits.note == "... 5 more initializers"
    assert str(inits).splitlines()[1].split() == ["name", "dtype", "shape", "elements", "size", "storage"]
    assert "<table>" in inits._repr_html_() and len(initializers_table(convnet(), -1)) == 0
    escaped = Table(["a"], [["<b>"]])._repr_html_()
    assert "&lt;b&gt;" in escaped


# --- the field's printers: the summary must agree with them -------------------------------


def test_summary_agrees_with_onnx_printer() -> None:
    model = convnet()
    text = onnx.printer.to_text(model)
    printed_ops = re.findall(r"= (?:([\w.]+)\.)?(\w+) ?[<(]", text)
    ops = [f"{domain}::{op}" if domain else op for domain, op in printed_ops]
    assert Counter(ops) == summarize_model(model).op_counts
    assert "float[N,3,64,64] x" in text  # the printer's input signature, the summary's input
    assert str(summarize_model(model).inputs[0]) == "x: float32[N, 3, 64, 64]"


def test_summary_agrees_with_polygraphy_inspect(tmp_path: Path) -> None:
    polygraphy = Path(sys.executable).with_name("polygraphy")
    if not polygraphy.exists():
        pytest.skip("polygraphy is not installed in this environment")
    model = convnet()
    del model.graph.node[-1]  # polygraphy's ONNX loader needs every op to be known to ONNX
    model.graph.output[0].name = "y"
    del model.opset_import[1]
    onnx.save(model, tmp_path / "convnet.onnx")
    shown = subprocess.run([str(polygraphy), "inspect", "model", "convnet.onnx", "--show", "layers"],
                           cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60).stdout
    summary = summarize_model(model)
    assert int(re.search(r"---- (\d+) Node\(s\) ----", shown).group(1)) == summary.num_nodes == 5
    assert int(re.search(r"---- (\d+) Initializer\(s\) ----", shown).group(1)) == summary.num_initializers
    assert int(re.search(r"ONNX Opset: (\d+)", shown).group(1)) == summary.default_opset == 17
    assert Counter(re.findall(r"\[Op: (\w+)\]", shown)) == summary.op_counts


def test_packed_types_round_bytes_up() -> None:
    """Known answers: 3 int4 values need 12 bits = 2 bytes (not 1); 5 uint4 need 3 bytes; 3 float32 12 bytes."""
    tensors = [helper.make_tensor("i4", TensorProto.INT4, [3], [1, -2, 3]),
               helper.make_tensor("u4", TensorProto.UINT4, [5], [1, 2, 3, 4, 5]),
               helper.make_tensor("f", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])]
    sizes = {row[0]: row[4] for row in initializers_table(tiny_model(tensors)).rows}
    assert (sizes["i4"], sizes["u4"], sizes["f"]) == ("2 B", "3 B", "12 B")
    assert summarize_model(tiny_model(tensors)).parameter_bytes == 64 + 2 + 3 + 12
