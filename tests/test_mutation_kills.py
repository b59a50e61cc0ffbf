"""Known-answer tests written to kill the mutants that survived `make mutation` (mutmut 3.8.1).

Each test names the mutants it kills (see tests/mutation/SURVIVORS.md for the full list,
and the ones explained as equivalent). The numbers are derived by hand in the comments.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import course_utils as cu
from course_utils import onnx_io
from course_utils import quantization as qz
from course_utils import roofline as rl

# -- quantization ----------------------------------------------------------------------------


def test_describe_names_the_scheme_and_the_scales() -> None:
    # kills QuantParams.describe 3, 6, 7, 9, 10, 11, 13, 14
    assert qz.make_qparams(0.5).describe() == "INT8 symmetric per-tensor, scale 0.5, levels [-127, 127]"
    assert qz.make_qparams(0.25, 3, bits=4, symmetric=False).describe() == (
        "INT4 asymmetric per-tensor, scale 0.25, levels [0, 15]")
    assert qz.make_qparams([0.5, 2.0], axis=0).describe() == (
        "INT8 symmetric per-channel (axis 0), 2 scales 0.5..2, levels [-127, 127]")
    assert repr(qz.make_qparams(0.5)).startswith("QuantParams(INT8 symmetric")


def test_make_qparams_stores_float32_scales_and_int32_zero_points() -> None:
    # kills make_qparams 9, 11 (float64 scale), 13 (float64 zero point)
    params = qz.make_qparams(0.1, 7, symmetric=False)
    assert params.scale.dtype == np.float32 and params.scale.shape == (1,)
    assert params.zero_point.dtype == np.int32 and params.zero_point.tolist() == [7]


def test_make_qparams_broadcasts_one_zero_point_over_the_channels() -> None:
    # kills make_qparams 44-50: one zero point for three per-channel scales
    params = qz.make_qparams([0.1, 0.2, 0.4], 3, symmetric=False, axis=0)
    assert params.zero_point.dtype == np.int32
    assert params.zero_point.shape == (3,) and params.zero_point.tolist() == [3, 3, 3]


def test_make_qparams_accepts_the_whole_level_range_and_nothing_beyond() -> None:
    # kills make_qparams 33 (lower bound not checked) and 36 (qmax itself refused)
    assert qz.make_qparams(0.1, 255, symmetric=False).zero_point.tolist() == [255]
    assert qz.make_qparams(0.1, 0, symmetric=False).zero_point.tolist() == [0]
    for bad in (-1, 256):
        with pytest.raises(cu.CourseError, match=r"zero_point must lie in \[0, 255\] for INT8"):
            qz.make_qparams(0.1, bad, symmetric=False)


def test_calibration_keeps_zero_in_range_for_data_on_one_side() -> None:
    # All-positive data, asymmetric: the range widens to [0, 0.5], so 0 is exact:
    # scale = 0.5 / 255, zero point 0 (kills compute_qparams 35: low clipped at 1.0 instead of 0).
    params = qz.compute_qparams(np.array([0.2, 0.5], np.float32), symmetric=False)
    assert params.scale[0] == pytest.approx(0.5 / 255, rel=1e-6)
    assert params.zero_point.tolist() == [0]
    # Data below 1 in magnitude, symmetric: scale = max|x| / 127 = 0.5 / 127
    # (kills compute_qparams 42: high clipped at 1.0 instead of 0).
    params = qz.compute_qparams(np.array([-0.5, 0.25], np.float32))
    assert params.scale[0] == pytest.approx(0.5 / 127, rel=1e-6)


def test_calibration_keeps_the_bit_width() -> None:
    # kills compute_qparams 93 (bits not passed on) and fake_quantize 1 (default bits 9)
    params = qz.compute_qparams(np.array([-7.0, 3.5], np.float32), bits=4)
    assert (params.bits, params.qmin, params.qmax) == (4, -7, 7) and params.scale[0] == pytest.approx(1.0)
    x_hat, params = qz.fake_quantize(np.array([-1.0, 0.5], np.float32))
    assert params.bits == 8 and params.scale[0] == pytest.approx(1 / 127)


@pytest.mark.parametrize("call, name", [
    (lambda: qz.compute_qparams([]), "x"),
    (lambda: qz.quantize([], qz.make_qparams(0.1)), "x"),
    (lambda: qz.cast_fp16([]), "x"),
    (lambda: qz.quantization_error([], [1.0]), "reference"),
    (lambda: qz.quantization_error([1.0], []), "approx"),
])
def test_empty_input_errors_name_the_argument(call, name) -> None:
    # kills compute_qparams 6, 10, 11; quantize 3, 7, 8; cast_fp16 2, 6, 7; quantization_error 3, 7, 8, 11, 15, 16
    with pytest.raises(cu.CourseError, match=rf"^{name} is empty: there is nothing to quantize\.$"):
        call()


def test_per_channel_params_on_a_tensor_without_that_axis_raise_a_course_error() -> None:
    # kills _shaped 3 (axis == ndim slipped through to an IndexError)
    params = qz.make_qparams([0.1, 0.2], axis=1)
    with pytest.raises(cu.CourseError, match=r"2 scales on axis 1, but the tensor has shape \(2,\)"):
        qz.quantize(np.ones(2, np.float32), params)


def test_the_round_trip_keeps_its_dtypes() -> None:
    # kills quantize 18 (float64 levels), dequantize 13 (float64 output), cast_fp16 11 (float64 output)
    params = qz.make_qparams(0.5)
    q = qz.quantize(np.array([1.0, -1.25], np.float32), params)
    assert q.dtype == np.int32 and q.tolist() == [2, -2]  # -2.5 rounds half to even
    x_hat = qz.dequantize(q, params)
    assert x_hat.dtype == np.float32 and x_hat.tolist() == [1.0, -1.0]
    assert qz.cast_fp16(np.ones(2, np.float32)).dtype == np.float32


def test_cast_fp16_rounds_to_half_precision() -> None:
    # 0.1 in FP16 is 1638/16384 = 0.0999755859375 (kills cast_fp16 12: no FP16 step at all)
    assert qz.cast_fp16([0.1]).tolist() == [0.0999755859375]


def test_quantization_error_known_answers() -> None:
    # noise [1, -1]: max 1, MSE 1, SQNR 10 log10((9 + 16) / 2) = 10.969 dB (kills quantization_error 54)
    error = qz.quantization_error([3.0, 4.0], [2.0, 5.0])
    assert error.max_abs == 1.0 and error.mse == 1.0
    assert error.sqnr_db == pytest.approx(10 * math.log10(12.5))
    # a silent reference with noise: -inf dB (kills quantization_error 34, 35, 36)
    assert qz.quantization_error([0.0, 0.0], [1.0, -1.0]).sqnr_db == -math.inf
    assert qz.quantization_error([1.0, 0.0], [0.0, 0.0]).sqnr_db == 0.0


# -- onnx_io ---------------------------------------------------------------------------------


def _tiny_model(ir_version: int | None = 8, graph: bool = True, opset: bool = True) -> onnx.ModelProto:
    model = onnx.ModelProto()
    if ir_version is not None:
        model.ir_version = ir_version
    if graph:
        model.graph.CopyFrom(helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    if opset:
        model.opset_import.append(helper.make_opsetid("", 13))
    return model


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("content, what", [
    (b"  \n<html><body>404</body></html>",
     r"a text file \(HTML/XML/JSON\?\), e\.g\. an error page saved instead of the model"),
    (b"[1, 2, 3]", r"a text file \(HTML/XML/JSON\?\)"),
    (b"version https://git-lfs.github.com/spec/v1\n",
     r"a Git LFS pointer \(run `git lfs pull` to fetch the real file\)"),
    (b"hello, this is a note\n", r"a text file\. Pass"),
    (b"a" * 64 + b"\x00" * 8, r"a text file\. Pass"),  # only the first 64 bytes are looked at
])
def test_files_of_another_kind_are_named(tmp_path, content, what) -> None:
    # kills _describe_bytes 3, 7, 8, 10, 14, 26 and _parse 4
    path = _write(tmp_path / "model.onnx", content)
    with pytest.raises(cu.CourseError, match=rf"is not an ONNX model: it looks like {what}"):
        onnx_io.load_model(path)


def test_a_small_model_whose_first_bytes_are_ascii_still_loads(tmp_path) -> None:
    # 61 bytes, all < 0x80: valid UTF-8 but with control characters, so not "a text file"
    # (kills _describe_bytes 21: `text or all(...)`)
    data = _tiny_model(14).SerializeToString()
    data[:64].decode("utf-8")
    assert onnx_io.load_model(_write(tmp_path / "m.onnx", data)).graph.node[0].op_type == "Relu"


@pytest.mark.parametrize("name", ["weights.bin", ".data"])
def test_weight_files_are_named(tmp_path, name) -> None:
    # kills _parse 5, 7, 8, 10, 14, 15, 18
    path = _write(tmp_path / name, bytes([0x80, 0x81, 0x82, 0x90]) * 4)
    with pytest.raises(cu.CourseError, match=r"it looks like an external-data file \(weights only\)\. Pass"):
        onnx_io.load_model(path)


def test_a_truncated_file_says_the_file_is_truncated(tmp_path) -> None:
    # kills _diagnose 9-13
    data = _tiny_model().SerializeToString()
    path = _write(tmp_path / "cut.onnx", data[:10])
    with pytest.raises(cu.CourseError) as caught:
        onnx_io.load_model(path)
    assert "needs 51 bytes but only 6 remain: the file is truncated. Export" in str(caught.value)


def test_bytes_that_only_protobuf_rejects_name_the_decoder_error(tmp_path) -> None:
    # The top level decodes (ir_version, then a 2-byte graph) but the graph inside is cut:
    # _diagnose finds nothing, so the error type is named (kills _diagnose 14).
    path = _write(tmp_path / "bad.onnx", b"\x08\x07\x3a\x02\x0a\x05")
    with pytest.raises(cu.CourseError, match=r"is not a readable ONNX protobuf: DecodeError\. Export"):
        onnx_io.load_model(path)


@pytest.mark.parametrize("model, missing", [
    (_tiny_model(ir_version=None), "IR version"),
    (_tiny_model(graph=False), "graph"),
    (_tiny_model(ir_version=3, opset=False), "opset import"),
])
def test_an_incomplete_model_names_what_it_lacks(tmp_path, model, missing) -> None:
    # kills _parse 24, 26-29, 31, 33, 34, 44, 45
    path = _write(tmp_path / "m.onnx", model.SerializeToString())
    with pytest.raises(cu.CourseError, match=rf"is not a complete ONNX model \(it has no {missing}\)"):
        onnx_io.load_model(path)


def test_old_ir_versions_are_complete_models(tmp_path) -> None:
    # IR version 1 and 2 need no opset import (kills _parse 30: `ir_version <= 1`)
    for version in (1, 2):
        path = _write(tmp_path / f"v{version}.onnx", _tiny_model(ir_version=version, opset=False).SerializeToString())
        assert onnx_io.load_model(path).ir_version == version


def test_missing_paths_list_at_most_eight_neighbours(tmp_path) -> None:
    # kills _check_path 2, 3, 9, 12, 18, 21, 23-26
    with pytest.raises(cu.CourseError) as caught:
        onnx_io.load_model(tmp_path / "no_such_folder" / "x.onnx")
    assert str(caught.value).endswith("(models are written with cu.model_path(...)).")
    for i in range(9):
        _write(tmp_path / f"m{i}.onnx", b"x")
    with pytest.raises(cu.CourseError) as caught:
        onnx_io.load_model(tmp_path / "x.onnx")
    assert str(caught.value).endswith(" ONNX files in that folder: "
                                      + ", ".join(f"m{i}.onnx" for i in range(8)) + ".")
    with pytest.raises(cu.CourseError) as caught:
        onnx_io.load_model(tmp_path)
    assert str(caught.value).endswith("Pass the .onnx file. It contains: "
                                      + ", ".join(f"m{i}.onnx" for i in range(8)) + ".")
    (tmp_path / "empty").mkdir()
    with pytest.raises(cu.CourseError) as caught:
        onnx_io.load_model(tmp_path / "empty")
    assert str(caught.value).endswith("is a folder, not an ONNX file. Pass the .onnx file. It has no .onnx file.")


def test_iter_graphs_walks_graph_lists() -> None:
    # A node with a GRAPHS attribute (a list of bodies) (kills iter_graphs 3, 4)
    inner = [helper.make_graph([], f"body{i}", [], []) for i in range(2)]
    outer = helper.make_graph([helper.make_node("Custom", [], [], bodies=inner, flag=1)], "main", [], [])
    assert [g.name for g in onnx_io.iter_graphs(outer)] == ["main", "body0", "body1"]


def _external(name: str, location: str | None, **entries: str) -> TensorProto:
    tensor = helper.make_tensor(name, TensorProto.FLOAT, [4], np.zeros(4, np.float32))
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    if location is not None:
        tensor.external_data.add(key="location", value=location)
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    return tensor


def _model_with(*tensors: TensorProto) -> onnx.ModelProto:
    model = _tiny_model()
    model.graph.initializer.extend(tensors)
    return model


def test_external_data_files_lists_each_file_once_and_only_real_names() -> None:
    # kills external_data_files 11 ("XXXX" for a tensor without location) and 12 (duplicates)
    model = _model_with(_external("a", "w.data", offset="0", length="16"),
                        _external("b", "w.data", offset="16", length="16"), _external("c", None))
    assert onnx_io.external_data_files(model) == ["w.data"]


def test_a_weight_without_a_location_is_reported_as_such(tmp_path) -> None:
    # kills _check_external_data 7, 9, 12 and read_initializer 5, 7, 11
    path = _write(tmp_path / "m.onnx", _model_with(_external("c", None)).SerializeToString())
    with pytest.raises(cu.CourseError, match=r"keeps its weights in an external data file '', which is missing"):
        onnx_io.load_model(path)
    with pytest.raises(cu.CourseError, match=r"Weight 'c' is stored in the external file '\?'\. Pass base_dir="):
        onnx_io.read_initializer(_external("c", None))


def test_offset_and_length_default_to_the_whole_file(tmp_path) -> None:
    # No offset: the weight starts at byte 0, so a 16-byte file holds its 16 bytes
    # (kills _check_external_data 30, 31: a default offset of 1).
    values = np.arange(4, dtype=np.float32)
    _write(tmp_path / "w.data", values.tobytes())
    path = _write(tmp_path / "m.onnx", _model_with(_external("a", "w.data", length="16")).SerializeToString())
    np.testing.assert_array_equal(onnx_io.read_initializers(onnx_io.load_model(path))["a"], values)
    # No length: the weight runs to the end of the file, here 0 bytes from offset 4
    # (kills _check_external_data 40, 41: a default length of 1).
    empty = helper.make_tensor("e", TensorProto.FLOAT, [0], [])
    empty.data_location = TensorProto.EXTERNAL
    empty.external_data.add(key="location", value="e.data")
    empty.external_data.add(key="offset", value="4")
    _write(tmp_path / "e.data", bytes(4))
    path = _write(tmp_path / "e.onnx", _model_with(empty).SerializeToString())
    assert onnx_io.read_initializers(onnx_io.load_model(path))["e"].shape == (0,)


def test_as_model_reads_paths_graph_only_and_onnx_programs(tmp_path) -> None:
    # kills _as_model 1, 2, 4, 5 (a path loads without its external data) and 6-13 (model_proto)
    path = _write(tmp_path / "m.onnx", _model_with(_external("a", "missing.data", length="16")).SerializeToString())
    assert onnx_io._as_model(path).graph.initializer[0].name == "a"
    assert onnx_io._as_model(str(path)).graph.node[0].op_type == "Relu"
    proto = _tiny_model()
    assert onnx_io._as_model(SimpleNamespace(model_proto=proto)) is proto
    with pytest.raises(cu.CourseError, match="got int"):
        onnx_io._as_model(42)


def test_a_weight_of_an_unknown_type_names_its_type_number() -> None:
    # kills read_initializer 26, 29
    tensor = TensorProto(name="odd", data_type=999, dims=[2], raw_data=b"\x00")
    with pytest.raises(cu.CourseError, match=r"Cannot read weight 'odd' \(999, dims \[2\]\)"):
        onnx_io.read_initializer(tensor)


def test_unknown_initializer_names_list_ten_known_ones() -> None:
    # kills read_initializers 13, 15-21
    def model(count: int) -> onnx.ModelProto:
        return _model_with(*(helper.make_tensor(f"w{i}", TensorProto.FLOAT, [1], [0.0]) for i in range(count)))

    with pytest.raises(cu.CourseError) as caught:
        onnx_io.read_initializers(model(11), ["nope"])
    assert str(caught.value) == ("No initializer named ['nope']. Known initializers: "
                                 + ", ".join(f"w{i}" for i in range(10)) + " ....")
    with pytest.raises(cu.CourseError) as caught:
        onnx_io.read_initializers(model(10), ["nope"])
    assert str(caught.value).endswith("Known initializers: " + ", ".join(f"w{i}" for i in range(10)) + ".")


def test_hex_dump_known_answers() -> None:
    # kills hex_dump 1, 34-38, 44, 46
    assert onnx_io.hex_dump(bytes([31, 32, 65, 126, 127, 128])) == (
        "00000000  1f 20 41 7e 7f 80" + " " * 30 + "  |. A~..|")
    lines = onnx_io.hex_dump(bytes(100)).splitlines()
    assert len(lines) == 5 and lines[-1] == "... 36 more bytes (100 in total)"
    assert lines[3].startswith("00000030  00")
    assert "more bytes" not in onnx_io.hex_dump(bytes(64))


def test_wire_field_text_for_every_wire_type() -> None:
    # kills WireField.__str__ 2-17, 20-24
    def text(wire_type: int, value: int | None, size: int = 3) -> str:
        return str(onnx_io.WireField(0, b"\x08", 1, wire_type, "ir_version", size, value))

    assert text(0, 7) == "@0      tag 08     -> field  1 (ir_version), wire type 0 = varint: value=7"
    assert text(1, 9).endswith("wire type 1 = fixed64: value=9")
    assert text(2, None, 1234).endswith("wire type 2 = length-delimited: 1,234 bytes")
    assert text(5, 0).endswith("wire type 5 = fixed32: value=0")
    assert text(3, None).endswith("wire type 3 = ?: 3 bytes")


def test_wire_fields_decodes_every_wire_type() -> None:
    # field 1 as a 3-byte varint (300000), fixed64, fixed32, then a length-delimited field 99
    # (kills _read_varint 18, wire_fields 25, 37-58, 90, 91, 93)
    raw = (b"\x08\xe0\xa7\x12" + b"\x09" + (2**40 + 5).to_bytes(8, "little")
           + b"\x0d" + (70000).to_bytes(4, "little") + b"\x9a\x06\x02hi")
    fields = onnx_io.wire_fields(raw)
    assert [(f.offset, f.field_number, f.wire_type, f.size, f.value, f.name) for f in fields] == [
        (0, 1, 0, 3, 300000, "ir_version"), (4, 1, 1, 8, 2**40 + 5, "ir_version"),
        (13, 1, 5, 4, 70000, "ir_version"), (18, 99, 2, 2, None, "?")]
    assert fields[3].tag_bytes == b"\x9a\x06"


def test_a_truncated_unknown_field_is_named_by_its_number() -> None:
    # kills wire_fields 72, 73
    with pytest.raises(cu.CourseError, match=r"^field 99 at byte 0 needs 5 bytes but only 1 remain"):
        onnx_io.wire_fields(b"\x9a\x06\x05x")
    with pytest.raises(cu.CourseError, match=r"^field 'graph' at byte 0 needs 5 bytes"):
        onnx_io.wire_fields(b"\x3a\x05x")


# -- roofline (the cost model and the reports' text; the measurements themselves are not mutated) ----


def test_cost_reprs_and_names_known_answers() -> None:
    # 2 * 1000^3 FLOPs over 3 * 1000^2 * 4 bytes: 2 GFLOP, 12 MB, 166.7 FLOP/byte
    # (kills OpCost.__repr__ 1-4, matmul_cost 19, conv2d_cost 81, 82)
    assert repr(cu.matmul_cost(1000, 1000, 1000)) == (
        "matmul 1000x1000 @ 1000x1000: 2 GFLOP, 12 MB, intensity 167 FLOP/byte")
    assert cu.conv2d_cost(2, 3, 4, 8, 6, 3).name == "conv3x3 3->4 @8x6 b2"
    timing = cu.BenchmarkResult("copy", (1e-3,))
    # kills Measurement.__repr__ 1, 2
    assert repr(rl.Measurement("copy bandwidth", 2.5e9, "B/s", timing)) == f"copy bandwidth: 2.5 GB/s ({timing})"
    # kills ModelCost.__repr__ 1-6
    assert repr(rl.ModelCost("net", 2_500_000, 3e9, 4e6)) == (
        "net: 2.5 M parameters, 3 GFLOP, 4 MB moved, intensity 750 FLOP/byte")


@pytest.mark.parametrize("argument", ["batch", "in_channels", "out_channels", "height", "width", "kernel_size",
                                      "stride", "groups"])
def test_conv2d_cost_checks_every_size(argument) -> None:
    # kills conv2d_cost 14-20 (an argument left out of the check)
    sizes = dict(batch=1, in_channels=4, out_channels=4, height=8, width=8, kernel_size=3)
    extra = {argument: 0} if argument in ("stride", "groups") else {}
    if not extra:
        sizes[argument] = 0
    with pytest.raises(cu.CourseError, match=rf"^{argument} must be a positive integer, got 0\."):
        cu.conv2d_cost(*sizes.values(), **extra)


@pytest.mark.parametrize("bad", [True, 2.5])
def test_sizes_must_be_true_integers(bad) -> None:
    # kills _positive_ints 2 (`and` for `or`: True and 2.5 slipped through)
    with pytest.raises(cu.CourseError, match="in_channels must be a positive integer"):
        cu.conv2d_cost(1, bad, 4, 8, 8, 3)


@pytest.mark.parametrize("argument", ["m", "n", "k"])
def test_matmul_cost_checks_every_size(argument) -> None:
    # kills matmul_cost 6-8
    sizes = {"m": 2, "n": 2, "k": 2, argument: 0}
    with pytest.raises(cu.CourseError, match=rf"^{argument} must be a positive integer"):
        cu.matmul_cost(**sizes)


def test_conv2d_cost_geometry_edges() -> None:
    # Same padding of a 5x5 is 2: the 8x8 output keeps its size (kills conv2d_cost 28: padding 5 // 3 = 1)
    assert cu.conv2d_cost(1, 1, 1, 8, 8, 5).flops == 2 * 8 * 8 * 25
    # A kernel exactly as large as the input gives a 1x1 output (kills conv2d_cost 51-54)
    assert cu.conv2d_cost(1, 1, 1, 3, 3, 3, padding=0).flops == 2 * 9
    assert cu.conv2d_cost(1, 1, 1, 3, 5, 3, padding=0).flops == 2 * 3 * 9
    # An empty output in one direction only is still empty (kills conv2d_cost 50: `and` for `or`)
    for height, width in ((2, 8), (8, 2)):
        with pytest.raises(cu.CourseError, match="the output would be empty"):
            cu.conv2d_cost(1, 1, 1, height, width, 3, padding=0)


def test_bytes_per_element_accepts_any_positive_size() -> None:
    # kills _bytes_per_element 4 (0 bytes accepted) and 5 (1 byte refused)
    assert cu.matmul_cost(2, 2, 2, dtype=1).bytes == 12
    with pytest.raises(cu.CourseError, match="Unknown dtype 0"):
        cu.matmul_cost(2, 2, 2, dtype=0)


def test_roof_checks_name_the_roof_and_refuse_zero_and_infinite_intensity() -> None:
    # kills _check_roofs 1, 3; roofline_bound 8; bound_by 6, 9, 10
    with pytest.raises(cu.CourseError, match=r"^peak_flops must be a positive number, got 0"):
        cu.roofline_bound(1.0, 0, 1.0)
    with pytest.raises(cu.CourseError, match=r"^bandwidth must be a positive number, got 0"):
        cu.roofline_bound(1.0, 1.0, 0)
    for intensity in (0.0, math.inf):
        with pytest.raises(cu.CourseError, match="intensity must be a positive number"):
            cu.bound_by(intensity, 100.0, 10.0)
    with pytest.raises(cu.CourseError, match="intensity must be a positive number"):
        cu.roofline_bound(0.0, 100.0, 10.0)
    assert cu.bound_by(0.5, 100.0, 10.0) == "memory"


def _conv_report(spec: bool) -> dict:
    report = {
        "device_name": "TestGPU", "device": "cuda", "torch": "2.14.1", "date": "2026-12-01 09:00 UTC",
        "bandwidth_Bps": 2e12, "peaks_flops": {"float32": 50e12},
        "convs": [
            {"kernel": 1, "precision": "float32", "intensity": 64.0, "timing": {"median_s": 0.002},
             "achieved_flops": 25e12, "fraction_of_measured_peak": 0.5, "fraction_of_bound": 0.5,
             "fraction_of_spec_peak": 0.4},
            {"kernel": 7, "precision": "float32", "intensity": 10.0, "timing": {"median_s": 0.0001},
             "achieved_flops": 2e12, "fraction_of_measured_peak": 0.04, "fraction_of_bound": 0.1,
             "fraction_of_spec_peak": 0.033},
        ],
    }
    if spec:
        report |= {"spec_sheet": {"float32": 60e12, "bandwidth": 3e12}, "peak_sources": {"float32": "conv 7x7"}}
    return report


def test_format_roofline_report_known_answers() -> None:
    # ridge 50e12 / 2e12 = 25 FLOP/byte: the 1x1 (64) is compute-bound, the 7x7 row (10) memory-bound
    # (kills format_roofline_report 10, 14, 23, 24, 26, 28-34, 37-60, 98, 103, 104, 107-119)
    lines = cu.format_roofline_report(_conv_report(spec=True)).splitlines()
    assert lines[:3] == ["TestGPU (cuda, torch 2.14.1, 2026-12-01 09:00 UTC)",
                         "copy bandwidth: 2000.0 GB/s (read + write)", "peak float32: 50 TFLOP/s (conv 7x7)"]
    assert lines[3].split() == ["conv", "precision", "FLOP/B", "ridge", "bound", "by", "median", "TFLOP/s",
                                "%", "peak", "%", "roof", "%", "spec"]
    assert lines[4].split() == ["1x1", "float32", "64", "25", "compute", "2.000ms", "25", "50%", "50%", "40%"]
    assert lines[5].split() == ["7x7", "float32", "10", "25", "memory", "0.100ms", "2", "4%", "10%", "3%"]
    lines = cu.format_roofline_report(_conv_report(spec=False)).splitlines()
    assert lines[2] == "peak float32: 50 TFLOP/s (matmul)"
    assert lines[3].endswith("% roof") and lines[4].endswith("50%     50%")


def _matmul_report() -> dict:
    return {
        "device_name": "TestGPU", "device": "cuda", "torch": "2.14.1", "date": "2026-12-01 09:00 UTC",
        "cases": [
            {"n": 32, "alignment": 16, "achieved_flops": 4e12, "kernels": ["Memset (Device)", "sm90_gemm"]},
            {"n": 33, "alignment": 1, "achieved_flops": 1e12, "kernels": []},
        ],
        "reference": {"n": 32, "dtype": "float32", "alignment": 16, "achieved_flops": 2e12,
                      "kernels": ["aten::mm", "a" * 70]},
    }


def test_format_matmul_alignment_report_known_answers() -> None:
    # kills format_matmul_alignment_report 1, 5, 17-25, 31, 44-64
    lines = cu.format_matmul_alignment_report(_matmul_report()).splitlines()
    assert lines[0] == "TestGPU (cuda, torch 2.14.1, 2026-12-01 09:00 UTC)"
    assert lines[1] == " n = m = k  multiple of  TFLOP/s  vs first   kernel(s) that ran"
    assert lines[2].split() == ["32", "16", "4", "1.00x", "sm90_gemm"]  # Memset left out
    assert lines[3].split() == ["33", "1", "1", "0.25x", "(none", "recorded)"]
    # the reference row: its dtype in the label, and the kernels cut to 60 characters
    assert lines[4].split()[:5] == ["32", "float32", "16", "2", "0.50x"]
    assert lines[4].endswith("x   aten::mm, " + "a" * 47 + "...")
    assert cu.format_matmul_alignment_report(_matmul_report(), kernel_width=70).endswith(
        "aten::mm, " + "a" * 57 + "...")


def test_model_cost_counts_what_its_layers_move() -> None:
    import torch
    from torch import nn

    class TwoInputs(nn.Module):  # a leaf that takes a tuple of inputs and returns a dict
        def forward(self, a, b):
            return {"y": a @ b}

    # inputs 2 x (2x2 float32) = 32 bytes, output 16 bytes (kills model_cost 29, _tensor_bytes 4, 5)
    cost = cu.model_cost(TwoInputs(), (torch.ones(2, 2), torch.ones(2, 2)))
    assert (cost.flops, cost.bytes, cost.parameters) == (16.0, 48.0, 0)

    class Tiny(nn.Module):  # one byte in: a uint8 scalar is a real input (kills model_cost 4)
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(1, 1, bias=False)

        def forward(self, x):
            return self.linear(x.float())

    # the Linear leaf: its float input, its output and its weight, 4 bytes each
    assert cu.model_cost(Tiny(), torch.ones(1, 1, dtype=torch.uint8)).bytes == 12
    with pytest.raises(cu.CourseError, match="needs an example input tensor"):
        cu.model_cost(Tiny(), [None, "x"])  # nothing with bytes (kills _tensor_bytes 6: 1 for non-tensors)

    class Probe(nn.Module):
        def forward(self, x):
            return None

    class Outside(nn.Module):  # the matmul happens in a non-leaf; the only leaf moves 1 byte
        def __init__(self, call_probe: bool):
            super().__init__()
            self.probe, self.call_probe = Probe(), call_probe

        def forward(self, x):
            if self.call_probe:
                self.probe(torch.ones(1, dtype=torch.uint8))
            return x @ x

    # kills model_cost 39 (moved <= 1) and 38 (moved < 0: nothing charged at all)
    assert cu.model_cost(Outside(True), torch.ones(2, 2)).bytes == 1.0
    with pytest.raises(cu.CourseError, match="no convolution or matrix product ran"):
        cu.model_cost(Outside(False), torch.ones(2, 2))


# -- fusion ----------------------------------------------------------------------------------


def _bn_stats(channels: int = 2) -> dict:
    return {"mean": np.zeros(channels), "var": np.ones(channels), "gamma": np.ones(channels),
            "beta": np.zeros(channels)}


def test_fold_batchnorm_default_eps_and_dtypes() -> None:
    from course_utils import fusion

    # var = 1 - 1e-5 with the default eps 1e-5: s = gamma / sqrt(1) = 2 exactly (kills fold_batchnorm 1)
    stats = _bn_stats() | {"var": np.full(2, 1 - 1e-5), "gamma": np.full(2, 2.0), "beta": np.array([1.0, -1.0])}
    w, b = fusion.fold_batchnorm(np.ones((2, 1, 1, 1)), np.array([0.5, 0.5]), **stats)
    np.testing.assert_allclose(w.ravel(), [2.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(b, [2.0, 0.0], rtol=1e-6)  # (0.5 - 0) * 2 + (+-1)
    assert w.dtype == np.float32 and b.dtype == np.float32  # kills fold_batchnorm 79
    # eps = 0 is allowed when every variance is positive (kills fold_batchnorm 42: eps > 0)
    w, _ = fusion.fold_batchnorm(np.ones((2, 1)), None, **_bn_stats() | {"var": np.full(2, 4.0)}, eps=0.0)
    np.testing.assert_allclose(w.ravel(), [0.5, 0.5])
    # var + eps exactly 0 would divide by zero (kills fold_batchnorm 48: `< 0`)
    with pytest.raises(cu.CourseError, match="var \\+ eps must be > 0"):
        fusion.fold_batchnorm(np.ones((2, 1)), None, **_bn_stats() | {"var": np.full(2, -0.5)}, eps=0.5)


@pytest.mark.parametrize("argument", ["weight", "bias", "mean", "var", "gamma", "beta"])
def test_fold_batchnorm_names_the_array_with_nan(argument) -> None:
    # kills fold_batchnorm 3, 7, 8, 18, 22, 23, 36
    from course_utils import fusion

    arrays = {"weight": np.ones((2, 1)), "bias": np.zeros(2), **_bn_stats()}
    arrays[argument] = np.full(arrays[argument].shape, np.nan)
    with pytest.raises(cu.CourseError, match=rf"^{argument} contains NaN or infinity"):
        fusion.fold_batchnorm(**arrays)


def test_fuse_conv_bn_keeps_eps_and_padding_mode() -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect").eval()
    bn = nn.BatchNorm2d(3, eps=0.5).eval()  # a large eps: dropping it changes the numbers (kills fuse_conv_bn 30)
    bn.running_var.fill_(0.25)
    x = torch.randn(1, 2, 5, 5)
    fused = cu.fuse_conv_bn(conv, bn)
    assert fused.padding_mode == "reflect"  # kills fuse_conv_bn 49
    torch.testing.assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    half = nn.BatchNorm2d(3).eval()
    half.running_var = None  # only one statistic missing (kills fuse_conv_bn 5: `and` for `or`)
    with pytest.raises(cu.CourseError, match="no running statistics"):
        cu.fuse_conv_bn(conv, half)


def test_merge_conv_weights_known_answers() -> None:
    from course_utils import fusion

    # no biases: zeros, float32 (kills merge_conv_weights 20, 23, 48, 51)
    w, b, sizes = fusion.merge_conv_weights([np.ones((1, 2, 1, 1)), np.full((2, 2, 1, 1), 3.0)])
    assert (w.dtype, b.dtype, sizes, b.tolist()) == (np.float32, np.float32, [1, 2], [0.0, 0.0, 0.0])
    assert w[:, 0, 0, 0].tolist() == [1.0, 3.0, 3.0]
    # the first weight is the reference shape (kills merge_conv_weights 10)
    with pytest.raises(cu.CourseError, match=r"^weights\[1\] has shape \(1, 3, 1, 1\)"):
        fusion.merge_conv_weights([np.ones((1, 2, 1, 1)), np.ones((1, 3, 1, 1))])
    # bad values are named by their index (kills merge_conv_weights 2, 40)
    with pytest.raises(cu.CourseError, match=r"^weights\[1\] contains NaN"):
        fusion.merge_conv_weights([np.ones((1, 2)), np.full((1, 2), np.nan)])
    with pytest.raises(cu.CourseError, match=r"^biases\[1\] contains NaN"):
        fusion.merge_conv_weights([np.ones((1, 2)), np.ones((1, 2))], [None, [np.nan]])


def test_merge_parallel_convs_keeps_dilation_and_padding_mode() -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    convs = [nn.Conv2d(2, c, 3, padding=2, dilation=2, padding_mode="reflect") for c in (1, 2)]
    merged = cu.merge_parallel_convs(convs)  # kills merge_parallel_convs 62, 65
    x = torch.randn(1, 2, 6, 6)
    for got, conv in zip(merged(x), convs, strict=True):
        torch.testing.assert_close(got, conv(x))
    with pytest.raises(cu.CourseError, match="^merge_parallel_convs needs a list of at least two"):
        cu.merge_parallel_convs([convs[0]])  # kills merge_parallel_convs 3


# -- timing ----------------------------------------------------------------------------------


class _Calls:
    """A function to time that counts its calls and can return what a CUDA tensor looks like."""

    def __init__(self, result=None) -> None:
        self.calls, self.result = 0, result

    def __call__(self):
        self.calls += 1
        return self.result


class _CudaLike:
    is_cuda = True


def test_benchmark_defaults_and_labels() -> None:
    from course_utils import timing

    fn = _Calls()
    result = timing.benchmark(fn)  # a callable without __name__
    assert fn.calls == 3 + 20 and result.n == 20 and result.number == 1  # kills benchmark 1, 2
    assert result.name == "fn" and result.device == "cpu"  # kills benchmark 48, 50, 53-57

    def work():
        return None

    assert timing.benchmark(work, repeats=1).name == "work"
    fn = _Calls()
    timing.benchmark(fn, repeats=2, warmup=0)
    assert fn.calls == 1 + 2  # one untimed call even without warmup (kills benchmark 31)
    for label, kwargs in (("warmup", {"warmup": -1}), ("number", {"number": 0})):
        with pytest.raises(cu.CourseError, match=rf"^benchmark\(\): {label} must be an integer"):
            timing.benchmark(fn, **kwargs)  # kills benchmark 12, 15


def test_benchmark_synchronises_cuda_work(monkeypatch) -> None:
    from course_utils import timing

    syncs = []
    monkeypatch.setattr(timing, "_synchronize", lambda: syncs.append(1))
    # a CUDA device named up front (kills benchmark 24, 25, 69, 71, 72)
    assert timing.benchmark(_Calls(), repeats=3, warmup=1, device="cuda").device == "cuda"
    assert len(syncs) == 2 * 3
    # ... or learnt from what the function returns, with or without warmup (kills benchmark 32-34)
    for warmup in (0, 2):
        assert timing.benchmark(_Calls(_CudaLike()), repeats=1, warmup=warmup).device == "cuda"
    assert timing.benchmark(_Calls(), repeats=1).device == "cpu" and len(syncs) == 6 + 2 + 2


def test_is_cuda_knows_a_cuda_device_object() -> None:
    # kills _is_cuda 8-22: an object named "device" whose type is "cuda"
    from course_utils import timing

    def device(kind: str):
        return type("device", (), {"type": kind})()

    assert timing._is_cuda(device("cuda")) and not timing._is_cuda(device("cpu"))
    assert not timing._is_cuda(type("other", (), {"type": "cuda"})())
    assert not timing._is_cuda(type("device", (), {})())  # a "device" without a type
    assert timing._is_cuda({"out": [device("cuda")]})


def test_a_thread_clock_exactly_fine_enough_is_used(monkeypatch) -> None:
    # kills _clock 9: a resolution of exactly 1 µs is fine enough
    from course_utils import timing

    real = timing.time.get_clock_info
    monkeypatch.setattr(timing.time, "get_clock_info", lambda name: SimpleNamespace(
        resolution=timing._FINE_ENOUGH_S) if name == "thread_time" else real(name))
    assert timing._clock("thread")[0] == "thread"


def test_benchmark_result_text_in_every_unit() -> None:
    # kills BenchmarkResult.__str__ 6-17: the IQR is printed in the median's unit
    def result(*times: float):
        return cu.BenchmarkResult("x", times)

    assert str(result(1.0, 2.0, 3.0, 4.0, 5.0)) == "median 3 s ± 2 (IQR), n=5"
    assert str(result(1e-6, 2e-6, 3e-6, 4e-6, 5e-6)) == "median 3 µs ± 2 (IQR), n=5"
    assert str(result(1e-9, 2e-9, 3e-9, 4e-9, 5e-9)) == "median 3 ns ± 2 (IQR), n=5"


def test_comparison_table_header_and_summary_spread() -> None:
    # kills Comparison.table 5-11 and Comparison.summary 7
    slow = cu.BenchmarkResult("slow", (2e-3, 2e-3, 4e-3, 4e-3))  # IQR 2 ms on a 3 ms median: 67%
    fast = cu.BenchmarkResult("fast", (1e-3, 1e-3, 1e-3, 1e-3))
    table = cu.compare([slow, fast])
    assert table.table().splitlines()[0] == "          median        IQR     n  time vs slow  speed-up"
    assert "IQR up to 67%" in table.summary("fast")
    wobbly = cu.BenchmarkResult("wobbly", (1e-3, 1e-3, 3e-3, 3e-3))  # IQR 2 ms on a 2 ms median
    steady = cu.BenchmarkResult("steady", (4e-3,) * 4)
    assert "IQR up to 100%" in cu.compare([steady, wobbly]).summary("wobbly")


def test_all_finite_and_max_abs_diff_on_odd_outputs() -> None:
    from course_utils import timing

    # text outputs are "finite" (nothing to check), NaN is not (kills _all_finite 4, 8, 9, 12)
    assert timing._all_finite(np.array(["a", "b"])) is True
    assert timing._all_finite(np.array([1.0, np.nan])) is False
    assert timing._all_finite(np.array([1.0, np.nan], np.float32)) is False
    # two empty outputs agree exactly (kills _max_abs_diff 6, 13)
    assert timing._max_abs_diff(np.zeros(0), np.zeros(0)) == 0.0


def test_autotune_defaults_arguments_and_flags(monkeypatch) -> None:
    from course_utils import timing

    a, b = _Calls(np.zeros(2)), _Calls(np.zeros(2))
    result = timing.autotune({"a": a, "b": b})
    assert (a.calls, b.calls) == (1 + 5, 1 + 5)  # kills autotune 1-3
    assert result.outputs_agree is True  # kills autotune 52, 58
    a, b = _Calls(np.zeros(2)), _Calls(np.zeros(2))
    timing.autotune({"a": a, "b": b}, repeats=2, warmup=0, number=3, atol=0.0)
    assert (a.calls, b.calls) == (1 + 1 + 2 * 3, 1 + 1 + 2 * 3)  # check + untimed + samples (kills 42-44)
    monkeypatch.setattr(timing, "_synchronize", lambda: None)
    tuned = timing.autotune({"a": _Calls(), "b": _Calls()}, repeats=1, device="cuda")
    assert {r.device for r in tuned.comparison.results} == {"cuda"}  # kills autotune 39, 46
    # atol=inf accepts any finite difference, never an infinite output (kills autotune 31)
    with pytest.raises(cu.CourseError, match="NaN/inf in its output"):
        timing.autotune({"a": _Calls(np.zeros(1)), "b": _Calls(np.full(1, np.inf))}, atol=math.inf)


def test_numbers_just_above_a_rounding_boundary_are_printed_from_the_exact_unit() -> None:
    # 1_005_000_001 / 1e9 = 1.005000001 prints "1.01"; divided by 1e9 + 1 it would print "1".
    # (kills OpCost/Measurement/ModelCost.__repr__ 2, 4, 6; format_roofline_report 27, 37, 120;
    # format_matmul_alignment_report 72; and, with fractions of 0.6, format_roofline_report 122, 126, 132)
    timing = cu.BenchmarkResult("t", (1e-3,))
    assert repr(rl.OpCost("op", 1_005_000_001, 1_005_001)).startswith("op: 1.01 GFLOP, 1.01 MB,")
    assert repr(rl.Measurement("peak", 1_005_000_001, "FLOP/s", timing)).startswith("peak: 1.01 GFLOP/s")
    assert repr(rl.ModelCost("m", 1_005_001, 1_005_000_001, 1_005_001)).startswith(
        "m: 1.01 M parameters, 1.01 GFLOP, 1.01 MB moved")
    report = _conv_report(spec=True)
    report["bandwidth_Bps"] = 2_050_000_001  # 2.050000001 GB/s prints 2.1
    report["peaks_flops"] = {"float32": 1_005_000_000_001}
    report["convs"] = [dict(report["convs"][0], achieved_flops=1_005_000_000_001, fraction_of_measured_peak=0.6,
                            fraction_of_bound=0.6, fraction_of_spec_peak=0.6)]
    lines = cu.format_roofline_report(report).splitlines()
    assert lines[1] == "copy bandwidth: 2.1 GB/s (read + write)"
    assert lines[2] == "peak float32: 1.01 TFLOP/s (conv 7x7)"
    assert lines[4].split()[-4:] == ["1.01", "60%", "60%", "60%"]
    matmul = _matmul_report()
    matmul["cases"][0]["achieved_flops"] = 1_005_000_000_001
    assert cu.format_matmul_alignment_report(matmul).splitlines()[2].split()[2] == "1.01"


def test_kernel_label_known_answers_beyond_the_notebook_cases() -> None:
    # kills kernel_label 1, 6, 8, 9, 11, 12, 14, 27, 28, 39, 40, 44, 46, 52
    assert cu.kernel_label("x" * 60) == "x" * 60  # exactly the width: kept
    assert cu.kernel_label("x" * 61) == "x" * 57 + "..."  # the default width is 60
    assert cu.kernel_label("x" * 10, width=8) == "xxxxx..."  # 8 is the narrowest width allowed
    with pytest.raises(cu.CourseError, match="width must be an integer >= 8"):
        cu.kernel_label("x", width=8.5)
    assert cu.kernel_label("void foo_kernel(int, float)") == "foo_kernel"  # a signature without a template
    assert cu.kernel_label("cutlass::Kernel2<cutlass_80_tensorop_gemm>") == "cutlass_80_tensorop_gemm"  # no "("
    assert cu.kernel_label("void cutlass::Kernel2<GemmA, 4>(Params)") == "GemmA"
    assert cu.kernel_label("void cutlass::Kernel2<gemm_b(int)>(Params)") == "gemm_b"


def test_matmul_table_cuts_kernels_at_its_own_width() -> None:
    # kills format_matmul_alignment_report 50 (kernel_label's default width) and 60 (`>=`)
    report = _matmul_report()
    report["cases"][0]["kernels"] = ["y" * 65]
    assert cu.format_matmul_alignment_report(report, kernel_width=70).splitlines()[2].endswith("x   " + "y" * 65)
    report["cases"][0]["kernels"] = ["z" * 60]
    assert cu.format_matmul_alignment_report(report).splitlines()[2].endswith("x   " + "z" * 60)


def test_varints_are_at_most_ten_bytes() -> None:
    # kills _read_varint 21, 22: ten continuation bytes are one too many; nine are fine
    with pytest.raises(cu.CourseError, match="a varint longer than 10 bytes"):
        onnx_io.wire_fields(b"\x08" + b"\x80" * 10 + b"\x01")
    [field] = onnx_io.wire_fields(b"\x08" + b"\x80" * 9 + b"\x01")
    assert field.value == 2**63 and field.size == 10


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs an NVIDIA GPU (the GPU lane runs it)")
def test_fused_and_merged_convs_stay_on_the_gpu() -> None:
    # kills fuse_conv_bn 55 and merge_parallel_convs 77 (`.to(None)` leaves the new conv on the CPU)
    from torch import nn

    conv, bn = nn.Conv2d(2, 3, 3).cuda().eval(), nn.BatchNorm2d(3).cuda().eval()
    assert cu.fuse_conv_bn(conv, bn).weight.is_cuda
    convs = [nn.Conv2d(2, 1, 1).cuda(), nn.Conv2d(2, 2, 1).cuda()]
    assert next(cu.merge_parallel_convs(convs).parameters()).is_cuda


# -- calibration -----------------------------------------------------------------------------


def _graph_model(nodes, inputs, outputs, inits=(), opset: int = 17, name: str = "g") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _value(name: str, elem_type: int = TensorProto.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem_type, shape)


def test_calibration_reads_torch_tensors_that_require_grad() -> None:
    # kills _magnitudes 2, 6, 7, 8 and plot_ranges' `hasattr(x, "detach")` mutants and `isinstance(...) or True`:
    # activations caught by a hook require grad, and numpy refuses those without .detach()
    import torch

    x = torch.tensor([1.0, -3.0, 2.0], requires_grad=True)
    assert cu.amax_minmax(x) == 3.0
    fig = cu.plot_ranges(x, {"minmax": 3.0}, bins=3)
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, 0.0, 2.0]  # -3 | 1, 2 on [-3, 2] in 3 bins


def test_calibration_errors_count_the_bad_values_and_name_the_method() -> None:
    # kills _magnitudes 31, 33 (the count), amax_percentile 13, 19, 20 and entropy_search 17, 23, 24 (the method),
    # plot_ranges' `_magnitudes(None / "XXxXX" / "X", x)` (the argument's name)
    with pytest.raises(cu.CourseError, match=r"^x holds 1 NaN or infinite value\(s\) out of 3"):
        cu.amax_minmax([1.0, np.nan, 2.0])
    with pytest.raises(cu.CourseError, match=r"^x holds 1 NaN"):
        cu.plot_ranges(np.array([np.inf, 1.0, 2.0]), {"minmax": 1.0})
    with pytest.raises(cu.CourseError, match="same magnitude 2: percentile calibration needs a spread"):
        cu.amax_percentile([2.0, -2.0])
    with pytest.raises(cu.CourseError, match="same magnitude 2: entropy calibration needs a spread"):
        cu.entropy_search([2.0, -2.0])


def test_entropy_search_defaults_are_2048_bins_and_128_levels() -> None:
    # kills entropy_search 1, 2 and amax_entropy 1: candidates keep 128..2048 of 2048 bins, so the first
    # threshold is max/16 and the chosen one is a whole number of 2048ths of the max (never of 2049ths)
    x = np.concatenate([np.random.default_rng(5).standard_normal(20_000), [30.0]])
    search = cu.entropy_search(x)
    assert search.thresholds.size == 2048 - 128 + 1
    assert search.thresholds[0] == pytest.approx(30.0 / 16, rel=1e-12)
    amax = cu.amax_entropy(x)
    assert amax == search.amax < 10.0
    kept = amax / 30.0 * 2048
    assert abs(kept - round(kept)) < 1e-9


def test_entropy_search_small_known_answers() -> None:
    # kills entropy_search 5 and 13 (two bins and two levels is allowed) and 91 (a group with one filled bin
    # gives that bin the group's whole count)
    two = cu.entropy_search([0.1, 1.0], bins=2, levels=2)
    assert two.thresholds.tolist() == [1.0] and two.divergences.tolist() == [0.0] and two.amax == 1.0
    # |x| = 0.1, 0.3, 1.0 in 4 bins on [0, 1]: hist [1, 1, 0, 1] (bin 0 := bin 1 = 1). Candidates keep 2, 3, 4 bins:
    #   2: P = [1, 2] / 3, Q = [1, 1] / 2                -> KL = 1/3 ln(2/3) + 2/3 ln(4/3)
    #   3: groups [0, 0, 1]; bin 2 is empty but P[2] = 1 (the folded tail)  -> infinite
    #   4: groups [0, 0, 1, 1]; Q = [1, 1, 0, 1] / 3 = P                      -> 0
    search = cu.entropy_search([0.1, -0.3, 1.0], bins=4, levels=2)
    assert search.thresholds.tolist() == [0.5, 0.75, 1.0]
    assert search.divergences[0] == pytest.approx(math.log(2 / 3) / 3 + 2 * math.log(4 / 3) / 3, rel=1e-12)
    assert search.divergences[1] == math.inf and search.divergences[2] == 0.0 and search.amax == 1.0


def test_symmetric_qparams_below_one_from_fp16_and_at_four_bits() -> None:
    # kills symmetric_qparams 17 (amax < 1 is fine), 5 and 7 (an FP16 amax is divided in float64, not in FP16:
    # 1/127 in FP16 is 0.0078735, 6e-5 off) and 31 (the bit width reaches make_qparams)
    assert cu.symmetric_qparams(0.635).scale.item() == pytest.approx(0.005)
    assert cu.symmetric_qparams(np.float16(1.0)).scale.item() == pytest.approx(1 / 127, rel=1e-6)
    assert cu.symmetric_qparams(7.0, bits=4).describe() == "INT4 symmetric per-tensor, scale 1, levels [-7, 7]"


def test_plot_ranges_figure_known_properties() -> None:
    # kills plot_ranges' figsize, hist (bins, colour, alpha), line (x, colour, width), label and font-size mutants
    from matplotlib.colors import to_rgba

    x = np.array([-2.0, -1.0, 0.5, 1.0, 3.0])
    fig = cu.plot_ranges(x, {"minmax": 3.0, "entropy (2048 bins)": 1.5, "mine": 0.5}, title="t", bins=4)
    assert fig.get_size_inches().tolist() == [7.5, 3.2]
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [2.0, 0.0, 2.0, 1.0]  # [-2, 3] in bins of 1.25
    assert ax.patches[0].get_facecolor() == to_rgba("#4c72b0", 0.85) and ax.patches[0].get_alpha() == 0.85
    lines = [(line.get_xdata()[0], line.get_color(), line.get_linewidth()) for line in ax.lines]
    assert lines == [(3.0, "#c44e52", 1.6), (-3.0, "#c44e52", 1.6), (1.5, "#55a868", 1.6), (-1.5, "#55a868", 1.6),
                     (0.5, "#8172b3", 1.6), (-0.5, "#8172b3", 1.6)]  # signed data: a line at -amax too
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.title.get_fontsize()) == ("value", "count (log)",
                                                                                            "t", 9.0)
    assert {text.get_fontsize() for text in ax.get_legend().get_texts()} == {8.0}
    assert len(cu.plot_ranges(np.arange(5.0), {"minmax": 4.0}).axes[0].lines) == 1  # min 0: no line at -amax
    assert len(cu.plot_ranges(np.arange(5.0), {"minmax": 4.0}).axes[0].patches) == 100  # the default bins
    assert cu.plot_ranges(np.arange(5.0), {"minmax": 4.0}).axes[0].get_title() == ""  # kills plot_ranges 1
    with pytest.raises(cu.CourseError, match="must be a positive number"):
        cu.plot_ranges(x, {"minmax": 0.0})


def test_plot_ranges_histograms_batches_and_fp16_values_in_float64() -> None:
    # kills plot_ranges' `isinstance(x, list | tuple) and False`, `np.concatenate(None)`, `np.asarray(None)` (batches
    # of different lengths) and `dtype=None` (FP16 values would get FP16 bin edges: 2/7 becomes 0.28564)
    fig = cu.plot_ranges([np.array([1.0, -2.0]), np.array([4.0])], {"minmax": 4.0}, bins=3)
    assert [p.get_height() for p in fig.axes[0].patches] == [1.0, 1.0, 1.0]
    fig = cu.plot_ranges(np.linspace(-1, 1, 201).astype(np.float16), {"minmax": 1.0}, bins=7)
    assert [p.get_width() for p in fig.axes[0].patches] == pytest.approx([2 / 7] * 7, rel=1e-12)


def _summary() -> cu.QdqSummary:
    both, dq = ("QuantizeLinear", "DequantizeLinear"), ("DequantizeLinear",)
    return cu.QdqSummary("m", [cu.QdqTensor("x", "activation", "uint8", 1, None, (128,), both),
                               cu.QdqTensor("w", "weight", "int8", 3, 0, (0,), dq),
                               cu.QdqTensor("b", "bias", "int32", 3, 0, (0,), dq)],
                         {"QuantizeLinear": 1, "DequantizeLinear": 3})


def test_qdq_summary_text_known_answers() -> None:
    # kills QdqSummary.__str__ and QdqSummary.table mutants: the exact text of a small summary
    header = "tensor  role        type   zero pt  granularity"
    rows = ["x       activation  uint8  128      per-tensor",
            "w       weight      int8   0        per-channel (axis 0, 3)",
            "b       bias        int32  0        per-channel (axis 0, 3)"]
    summary = _summary()
    assert str(summary) == "\n".join(["m: 1 QuantizeLinear, 3 DequantizeLinear; 1 weights, 1 activations, 1 biases "
                                      "quantized", header, *rows])
    assert summary.table(limit=None) == summary.table(limit=3) == "\n".join([header, *rows])
    assert summary.table(limit=1) == "\n".join([header, rows[0], "... 2 more"])
    assert str(cu.QdqSummary("e", [], {})) == ("e: 0 QuantizeLinear, 0 DequantizeLinear; 0 weights, 0 activations, "
                                               "0 biases quantized")
    only_bias = cu.QdqSummary("b", summary.tensors[2:], {"DequantizeLinear": 1})
    assert str(only_bias).splitlines()[0].endswith("0 weights, 0 activations, 1 biases quantized")
    many = cu.QdqSummary("n", [summary.tensors[1]] * 31, {"DequantizeLinear": 31})
    assert many.table().splitlines()[-1] == "... 1 more" and len(many.table().splitlines()) == 32  # 30 rows shown
    long = cu.QdqTensor("n" * 50, "activation", "int8", 1, None, (1, 2, 3, 4), ("DequantizeLinear",))
    assert cu.QdqSummary("l", [long], {}).table().splitlines() == [
        "tensor" + " " * 38 + "  role        type   zero pt  granularity",
        "n" * 44 + "  activation  int8   1,2,3    per-tensor"]  # names cut at 44, three zero points shown


def test_problems_for_tensorrt_known_answers() -> None:
    # kills problems_for_tensorrt 4, 7-9, 14, 20-23, 25-27, 31, 32: the exact advice, and fp8/int4 are accepted
    assert _summary().problems_for_tensorrt() == [
        "x: uint8 Q/DQ; TensorRT's INT8 is signed int8 (quantize_static: activation_type=weight_type=QuantType.QInt8)",
        "x: zero point(s) [128]; TensorRT needs 0 (symmetric: extra_options={'ActivationSymmetric': True})",
        "b: INT32 through DequantizeLinear (a quantized bias); TensorRT-RTX rejects it "
        "(quantize_static: extra_options={'QuantizeBias': False})"]
    assert cu.QdqSummary("e", [], {}).problems_for_tensorrt() == [
        "no QuantizeLinear/DequantizeLinear nodes: TensorRT 11 builds this model in the precision of its tensors "
        "(FP32 or FP16 casts); INT8 needs Q/DQ nodes in the file"]
    dq = ("DequantizeLinear",)
    fine = [cu.QdqTensor("f", "weight", "float8e4m3fn", 1, None, (0,), dq),
            cu.QdqTensor("i", "weight", "int4", 1, None, (0,), dq)]
    assert cu.QdqSummary("ok", fine, {}).problems_for_tensorrt() == []
    five = cu.QdqTensor("z", "activation", "int8", 1, None, (1, 2, 3, 4, 5), dq)
    assert cu.QdqSummary("z", [five], {}).problems_for_tensorrt() == [
        "z: zero point(s) [1, 2, 3, 4]; TensorRT needs 0 (symmetric: extra_options={'ActivationSymmetric': True})"]


def _array(name: str, value, dtype) -> TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(value, dtype), name)


def test_qdq_summary_roles_axes_and_types_of_every_kind_of_layer() -> None:
    # kills qdq_summary 147-155 (ConvTranspose/Gemm/MatMul weights), 166-171 (ConvTranspose/Gemm biases),
    # 139 and 141 (a DequantizeLinear output nobody reads), 92 (a bias dequantized without zero point is int32),
    # 95 (a DequantizeLinear of an integer input takes its zero point's type), 199, 206, 207 (no type known: int8),
    # 129-131 (the type a later node gives), 210, 211, 213, 220, 221 (axis: None per tensor, default 1 per channel),
    # 246, 248 (FP16 scales are kept as float32)
    inits = [_array("s", 0.1, np.float32), _array("s16", 0.5, np.float16), _array("s2", [0.1, 0.2], np.float32),
             _array("wt", np.ones((2, 2, 1, 1)), np.int8), _array("bt", [1, 2], np.int32),
             _array("wg", np.ones((2, 2)), np.int8), _array("bg", [1, 2], np.int32),
             _array("wm", np.ones((2, 2)), np.int8), _array("zu", 128, np.uint8)]
    dq = "DequantizeLinear"
    nodes = [helper.make_node(dq, ["wt", "s2"], ["wt_f"]), helper.make_node(dq, ["bt", "s"], ["bt_f"]),
             helper.make_node("ConvTranspose", ["x", "wt_f", "bt_f"], ["ct"]),
             helper.make_node(dq, ["wg", "s16"], ["wg_f"]), helper.make_node(dq, ["bg", "s"], ["bg_f"]),
             helper.make_node("Gemm", ["a", "wg_f", "bg_f"], ["gm"]),
             helper.make_node(dq, ["wm", "s"], ["wm_f"]), helper.make_node("MatMul", ["a", "wm_f"], ["mm"]),
             helper.make_node(dq, ["xin", "s", "zu"], ["xin_f"]),
             helper.make_node(dq, ["xi8", "s"], ["xi8_f"]),
             helper.make_node(dq, ["xu", "s"], ["xu_a"]), helper.make_node(dq, ["xu", "s", "zu"], ["xu_b"])]
    inputs = [_value("x", shape=[1, 2, 2, 2]), _value("a", shape=[1, 2]), _value("xin", TensorProto.UINT8, [2]),
              _value("xi8", TensorProto.INT8, [2]), _value("xu", TensorProto.UINT8, [2])]
    outputs = [_value(n) for n in ("ct", "gm", "mm", "xin_f", "xi8_f", "xu_a", "xu_b")]
    summary = cu.qdq_summary(_graph_model(nodes, inputs, outputs, inits, opset=19))
    assert [(t.tensor, t.role, t.dtype, t.scales, t.axis) for t in summary.tensors] == [
        ("wt", "weight", "int8", 2, 1), ("bt", "bias", "int32", 1, None), ("wg", "weight", "int8", 1, None),
        ("bg", "bias", "int32", 1, None), ("wm", "weight", "int8", 1, None), ("xin", "activation", "uint8", 1, None),
        ("xi8", "activation", "int8", 1, None), ("xu", "activation", "uint8", 1, None)]
    wg = summary.tensors[2]
    assert wg.scale.dtype == np.float32 and wg.scale.tolist() == [0.5]
    assert summary.tensors[5].zero_points == (128,)


def test_qdq_summary_output_dtype_names_and_qat_weights(tmp_path) -> None:
    # kills qdq_summary 60, 62, 65-68 (opset 21's output_dtype: int8 without a zero point), 5, 8-10 (the label)
    # and _constant_values 13, 14 (only Identity passes a constant on: a QAT weight's QuantizeLinear output is not
    # the float weight, so its type stays the zero point's int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["xq"], output_dtype=TensorProto.INT8),
             helper.make_node("DequantizeLinear", ["xq", "s"], ["xd"]),
             helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"]),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["y"])]
    inits = [_array("s", 0.1, np.float32), _array("z", 0, np.int8), _array("w", np.ones((1, 1, 1, 1)), np.float32)]
    model = _graph_model(nodes, [_value("x", shape=[1, 1, 2, 2])], [_value("y")], inits, opset=21, name="qdq21")
    summary = cu.qdq_summary(model)
    assert summary.name == "qdq21"
    assert [(t.tensor, t.role, t.dtype, t.nodes) for t in summary.tensors] == [
        ("x", "activation", "int8", ("QuantizeLinear", "DequantizeLinear")),
        ("w", "weight", "int8", ("QuantizeLinear", "DequantizeLinear"))]
    model.graph.name = ""
    assert cu.qdq_summary(model).name == "model"
    onnx.save(model, tmp_path / "b.onnx")
    assert cu.qdq_summary(tmp_path / "b.onnx").name == "b.onnx"


def test_a_scale_computed_by_a_node_is_not_a_constant() -> None:
    # kills _constant_values 13, 14: only Constant and Identity nodes give constants; a Mul of two constants is
    # computed at run time (reading its first input as the scale would give 0.1, not 0.2)
    nodes = [helper.make_node("Mul", ["s", "two"], ["s2"], name="double"),
             helper.make_node("DequantizeLinear", ["w", "s2"], ["wd"], name="dq_w"),
             helper.make_node("MatMul", ["x", "wd"], ["y"])]
    inits = [_array("s", 0.1, np.float32), _array("two", 2.0, np.float32), _array("w", np.ones((2, 2)), np.int8)]
    model = _graph_model(nodes, [_value("x", shape=[1, 2])], [_value("y")], inits)
    with pytest.raises(cu.CourseError, match="DequantizeLinear node 'dq_w' has no constant scale"):
        cu.qdq_summary(model)


def _fp16_risk_model() -> onnx.ModelProto:
    """A Constant (int64, no float tensor), then y = reshape(relu(x)) * 1000 / 100; the Div node has no name."""
    nodes = [helper.make_node("Constant", [], ["shape"], name="shape_const",
                              value=_array("shape_value", [-1, 2], np.int64)),
             helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "shape"], ["rr"], name="reshape"),
             helper.make_node("Mul", ["rr", "k"], ["big"], name="scale_up"),
             helper.make_node("Div", ["big", "hundred"], ["y"])]
    inits = [_array("k", 1000.0, np.float32), _array("hundred", 100.0, np.float32)]
    return _graph_model(nodes, [_value("x", shape=[None, 2])], [_value("y", shape=[None, 2])], inits)


def test_fp16_overflows_known_answers() -> None:
    # kills fp16_overflows 63 (a node without float tensors is skipped, not the end), 80 (an unnamed node is named by
    # its first output), 42 (the feed's own values count), 69 (65504 itself fits FP16), 9 (a limit under 1),
    # 45, 49, 50 (empty tensors peak at 0)
    def found(x, **options):
        return [(f.node, f.op_type, f.tensor) for f in cu.fp16_overflows(_fp16_risk_model(),
                                                                          {"x": np.array(x, np.float32)}, **options)]

    assert found([[70.0, 1.0]]) == [("scale_up", "Mul", "big"), ("y", "Div", "big")]  # 70 * 1000 = 70000
    assert found([[-70000.0, 1.0]]) == [("relu", "Relu", "x")]  # relu(x) is 0 and 1: only x is too large
    assert found([[-65504.0, 1.0]]) == []
    assert found([[0.25, 0.0]], limit=0.5) == [("scale_up", "Mul", "big"), ("y", "Div", "big")]  # 250 and 2.5
    assert found(np.zeros((0, 2)), limit=0.5) == []


def test_fp16_overflows_feed_checks() -> None:
    # kills fp16_overflows 3 (a list is not a dict), 25 and 51 (string tensors are not numbers to check),
    # an unknown feed name is an error whether or not the model has to run
    x = np.array([[70000.0, 1.0]], np.float32)
    for bad in ({}, [("x", x)]):
        with pytest.raises(cu.CourseError, match=r"feed must be a dict \{input name: array\} with real inputs"):
            cu.fp16_overflows(_fp16_risk_model(), bad)
    strings = _graph_model([helper.make_node("Identity", ["s"], ["t"], name="copy"),
                            helper.make_node("Relu", ["x"], ["r"], name="relu")],
                           [_value("x", shape=[1, 2]), _value("s", TensorProto.STRING, [1])],
                           [_value("t", TensorProto.STRING, [1]), _value("r", shape=[1, 2])])
    found = cu.fp16_overflows(strings, {"x": x, "s": np.array(["a"], dtype=object)})
    assert [(f.node, f.tensor) for f in found] == [("relu", "x")]
    argmax = _graph_model([helper.make_node("ArgMax", ["x"], ["i"], name="argmax", axis=1)],
                          [_value("x", shape=[1, 2])], [_value("i", TensorProto.INT64, [1, 1])])
    found = cu.fp16_overflows(argmax, {"x": x})
    assert [(f.node, f.tensor, f.max_abs) for f in found] == [("argmax", "x", 70000.0)]
    wrong_feed = r"feed must be a dict with exactly the model's inputs \['(s', ')?x'\], got \['unused', 'x'\]"
    for model in (argmax, strings):
        with pytest.raises(cu.CourseError, match=wrong_feed):
            cu.fp16_overflows(model, {"x": x, "unused": x})


def _save(model: onnx.ModelProto, path):
    onnx.save(model, path)
    return path


def _eye_classifier(path, input_name: str = "x"):
    """logits = x @ I (3 classes)."""
    return _save(_graph_model([helper.make_node("MatMul", [input_name, "eye"], ["logits"])],
                              [_value(input_name, shape=[None, 3])], [_value("logits", shape=[None, 3])],
                              [_array("eye", np.eye(3), np.float32)]), path)


@pytest.fixture
def fake_benchmark(monkeypatch):
    """cu.benchmark replaced by one call of the timed function: its arguments and result are recorded."""
    from course_utils import timing

    calls = []

    def benchmark(fn, **options):
        calls.append((fn(), options))
        return SimpleNamespace(median_s=1e-3, iqr_s=1e-4)

    monkeypatch.setattr(timing, "benchmark", benchmark)
    return calls


def test_score_model_session_and_benchmark_settings(tmp_path, monkeypatch, fake_benchmark) -> None:
    # kills _session 4, 6, 8, 9, 11, 12, 14-16 and score_model 1-4, 108, 111-114, 118, 120: onnxruntime gets a quiet
    # CPU session with `threads` intra-op threads and 1 inter-op thread; the benchmark times one image, 30 x 10
    import onnxruntime

    sessions, real = [], onnxruntime.InferenceSession

    def spy(*args, **kwargs):
        sessions.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    path = _eye_classifier(tmp_path / "clf.onnx")
    x = np.array([[3, 1, 0], [0, 2, 1]], np.float32)
    score = cu.score_model("clf", path, x, [0, 1])
    (args, kwargs), = sessions
    assert args[0] == str(path) and kwargs == {"providers": ["CPUExecutionProvider"]}
    options = args[1]
    assert (options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level) == (1, 1, 3)
    (outputs, settings), = fake_benchmark
    assert settings == {"repeats": 30, "warmup": 3, "number": 10, "name": "clf"}
    assert outputs[0].tolist() == [[3.0, 1.0, 0.0]]  # the session's answer for the first image only
    assert score.path == path and score.accuracy == 1.0
    cu.score_model("clf", path, x, [0, 1], threads=3)
    assert sessions[1][0][1].intra_op_num_threads == 3


def test_score_model_reference_evaluator_computes_in_fp16(tmp_path, fake_benchmark) -> None:
    # kills score_model 43-45 (which evaluator runs), 49 (no numpy warning from an FP16 overflow), 57 (images as
    # float32: int images would give float64 logits through the reference evaluator)
    k, h = _array("k", 1000, np.float16), _array("h", 100, np.float16)
    nodes = [helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
             helper.make_node("Mul", ["xh", "k"], ["big"]),
             helper.make_node("Div", ["big", "h"], ["small"]),
             helper.make_node("Cast", ["small"], ["y"], to=TensorProto.FLOAT)]
    path = _save(_graph_model(nodes, [_value("x", shape=[None, 2])], [_value("y", shape=[None, 2])], [k, h]),
                 tmp_path / "fp16.onnx")
    x = np.array([[70, 1], [1, 2]], np.float32)  # 70 * 1000 overflows FP16; onnxruntime computes it in FP32
    assert cu.score_model("ort", path, x, [0, 1]).predictions.tolist() == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = cu.score_model("ref", path, x, [0, 1], evaluator="reference")
    assert reference.predictions.tolist() == [-1, 1] and np.isinf(reference.logits[0, 0])
    clf = _eye_classifier(tmp_path / "clf.onnx")
    logits = cu.score_model("int", clf, np.array([[3, 1, 0], [0, 2, 1]]), [0, 1], evaluator="reference").logits
    assert logits.dtype == np.float32 and logits.tolist() == [[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]]


def test_score_model_errors_cut_the_message_and_want_two_dimensional_logits(tmp_path, fake_benchmark) -> None:
    # kills score_model 66, 67, 69 (the first 300 characters of onnxruntime's message) and 70 (1-D logits)
    path = _eye_classifier(tmp_path / "long.onnx", input_name="x" * 400)  # onnxruntime's message names the input
    prefix = "onnxruntime could not run long.onnx on images of shape (2, 5): "
    with pytest.raises(cu.CourseError) as error:
        cu.score_model("m", path, np.ones((2, 5), np.float32), [0, 1])
    message = str(error.value)
    assert message.startswith(prefix + "[ONNXRuntimeError]") and len(message) == len(prefix) + 300
    summed = _save(_graph_model([helper.make_node("ReduceSum", ["x", "axes"], ["logits"], keepdims=0)],
                                [_value("x", shape=[None, 3])], [_value("logits", shape=[None])],
                                [_array("axes", [1], np.int64)]), tmp_path / "sum.onnx")
    with pytest.raises(cu.CourseError, match=r"sum.onnx returned shape \(2,\); expected \(N, classes\) logits"):
        cu.score_model("m", summed, np.ones((2, 3), np.float32), [0, 1])


def test_precision_table_known_text() -> None:
    # kills precision_table 31-39, 45-47, 49, 51, 59, 61: the exact table, with a short and a long baseline name
    latency = SimpleNamespace(median_s=1.5e-3, iqr_s=2e-6)
    fp32 = cu.ModelScore("FP32", None, 0.75, None, 2048, latency, np.zeros(1), np.zeros(1))
    int8 = cu.ModelScore("INT8-long", None, 0.5, 0.875, 3072, latency, np.zeros(1), np.zeros(1), "reference")
    assert cu.precision_table([fp32, int8]).splitlines() == [
        "model      accuracy    vs FP32   agrees       size     onnxruntime latency  outputs by",
        "FP32         75.00%                         2.0 KiB           1.5 ms ± 2 µs  onnxruntime",
        "INT8-long    50.00%  -25.00 pt    87.5%     3.0 KiB           1.5 ms ± 2 µs  reference"]
    assert cu.precision_table([fp32, int8], baseline="INT8-long").splitlines() == [
        "model      accuracy  vs INT8-long   agrees       size     onnxruntime latency  outputs by",
        "FP32         75.00%     +25.00 pt              2.0 KiB           1.5 ms ± 2 µs  onnxruntime",
        "INT8-long    50.00%                  87.5%     3.0 KiB           1.5 ms ± 2 µs  reference"]
