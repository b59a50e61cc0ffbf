"""Tests for course_utils.onnx_io: load_model's clear errors, weights in every storage form."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import course_utils as cu
from course_utils.onnx_io import (
    external_data_files,
    hex_dump,
    iter_graphs,
    load_model,
    read_initializer,
    read_initializers,
    wire_fields,
)

# Every element type ONNX defines except UNDEFINED (0).
ALL_DTYPES = [code for name, code in TensorProto.DataType.items() if code != 0]


def sample_values(code: int) -> np.ndarray:
    """Four values that every type can hold exactly, as the type's numpy dtype (shape 2x2)."""
    if code == TensorProto.STRING:
        return np.array([b"a", b"bc", b"", b"d"], dtype=object).reshape(2, 2)
    if code == TensorProto.BOOL:
        return np.array([True, False, True, True]).reshape(2, 2)
    np_dtype = helper.tensor_dtype_to_np_dtype(code)
    if code in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        return np.array([1 + 2j, 0, -1j, 3], dtype=np_dtype).reshape(2, 2)
    if code == TensorProto.FLOAT8E8M0:  # exponent-only: powers of two, no zero
        return np.array([1, 2, 4, 0.5]).astype(np_dtype).reshape(2, 2)
    return np.array([0, 1, -1, 1]).astype(np_dtype).reshape(2, 2) if code not in (
        TensorProto.UINT2, TensorProto.UINT4, TensorProto.UINT8, TensorProto.UINT16,
        TensorProto.UINT32, TensorProto.UINT64,
    ) else np.array([0, 1, 2, 1]).astype(np_dtype).reshape(2, 2)


def make_tensor(code: int, raw: bool, name: str | None = None) -> TensorProto:
    """A 2x2 initializer of type `code`, in raw_data (raw=True) or its typed field."""
    values = sample_values(code)
    name = name or f"{TensorProto.DataType.Name(code).lower()}_{'raw' if raw else 'typed'}"
    if raw and code != TensorProto.STRING:  # strings have no raw form
        return numpy_helper.from_array(values, name=name)
    return helper.make_tensor(name, code, [2, 2], values.ravel().tolist(), raw=False)


def tiny_model(initializers: list[TensorProto] | None = None) -> onnx.ModelProto:
    """y = x @ w with a symbolic batch dim, plus any extra initializers."""
    weight = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight, *(initializers or [])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def save_external(model: onnx.ModelProto, path: Path, location: str = "tiny.onnx.data") -> Path:
    (path.parent / location).unlink(missing_ok=True)  # save_model appends to an existing file
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def png_bytes() -> bytes:
    """A real 1x1 PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


# --- load_model: good files -------------------------------------------------------------


def test_load_model_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), path)
    model = load_model(path)
    assert model.graph.name == "tiny"
    assert np.array_equal(read_initializers(model)["w"], np.arange(16).reshape(4, 4))
    assert load_model(str(path)).graph.node[0].op_type == "MatMul"


def test_load_model_external_data(tmp_path: Path) -> None:
    path = save_external(tiny_model(), tmp_path / "tiny.onnx")
    assert external_data_files(load_model(path, load_external_data=False)) == ["tiny.onnx.data"]
    model = load_model(path)
    assert external_data_files(model) == []  # loaded: the data is now inside the protobuf
    assert read_initializers(model)["w"][3, 3] == 15


def test_graph_only_load_needs_no_data_file(tmp_path: Path) -> None:
    path = save_external(tiny_model(), tmp_path / "tiny.onnx")
    (tmp_path / "tiny.onnx.data").unlink()
    model = load_model(path, load_external_data=False)
    assert model.graph.initializer[0].name == "w"


# --- load_model: every bad input gives a specific CourseError -----------------------------


def test_missing_file_names_nearby_models(tmp_path: Path) -> None:
    onnx.save(tiny_model(), tmp_path / "tiny.onnx")
    with pytest.raises(cu.CourseError, match=r"No ONNX file at .*tny\.onnx.*tiny\.onnx"):
        load_model(tmp_path / "tny.onnx")


def test_directory(tmp_path: Path) -> None:
    onnx.save(tiny_model(), tmp_path / "tiny.onnx")
    with pytest.raises(cu.CourseError, match=r"is a folder, not an ONNX file.*tiny\.onnx"):
        load_model(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(cu.CourseError, match=r"is empty \(0 bytes\).*export the model again"):
        load_model(tmp_path / "empty.onnx")


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.6, 0.97])
def test_truncated_file(tmp_path: Path, fraction: float) -> None:
    data = tiny_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    with pytest.raises(cu.CourseError, match="truncated"):
        load_model(path)


def test_truncated_exactly_between_fields(tmp_path: Path) -> None:
    """Cut just before opset_import: protobuf parses it; load_model still refuses."""
    data = tiny_model().SerializeToString()
    opset_field = next(f for f in wire_fields(data) if f.name == "opset_import")
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: opset_field.offset])
    with pytest.raises(cu.CourseError, match="no opset import.*truncated"):
        load_model(path)


@pytest.mark.parametrize(("content", "what"), [
    (b"hello, this is not a model\n", "a text file"),
    (b'{"model": "resnet"}', "JSON"),
    (b"<html><body>404 Not Found</body></html>", "HTML"),
    (png_bytes(), "PNG image"),
    (b"PK\x03\x04" + b"\x00" * 40, "PyTorch .pt"),
    (b"ftrt" + b"\x00" * 40, "TensorRT engine"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "Git LFS"),
])
def test_not_onnx_formats(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(cu.CourseError, match=f"is not an ONNX model: it looks like .*{what}"):
        load_model(path)


def test_real_torch_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(cu.CourseError, match=r"zip archive \(a PyTorch \.pt/\.pth checkpoint"):
        load_model(path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(cu.CourseError, match="not (a readable ONNX protobuf|a complete ONNX)"):
        load_model(path)


def test_external_data_file_passed_instead_of_model(tmp_path: Path) -> None:
    save_external(tiny_model(), tmp_path / "tiny.onnx")
    with pytest.raises(cu.CourseError, match="external-data file"):
        load_model(tmp_path / "tiny.onnx.data")


def test_missing_external_data_names_the_file(tmp_path: Path) -> None:
    path = save_external(tiny_model(), tmp_path / "tiny.onnx")
    (tmp_path / "tiny.onnx.data").unlink()
    with pytest.raises(cu.CourseError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "'tiny.onnx.data', which is missing" in message
    assert "external_data=False" in message and "load_external_data=False" in message


def test_truncated_external_data(tmp_path: Path) -> None:
    path = save_external(tiny_model(), tmp_path / "tiny.onnx")
    data_file = tmp_path / "tiny.onnx.data"
    data_file.write_bytes(data_file.read_bytes()[:10])
    with pytest.raises(cu.CourseError, match="is 10 bytes, but weight 'w' needs bytes up to 64"):
        load_model(path)


def test_truncated_external_data_counts_each_weights_offset(tmp_path: Path) -> None:
    """Known answer: w (64 bytes) at offset 0, b (16 bytes) at offset 64, so b needs bytes 64..80.

    A check that ignores the offset (end = length) would let a 72-byte file through for b.
    """
    bias = numpy_helper.from_array(np.array([1, 2, 3, 4], np.float32), "b")
    path = save_external(tiny_model([bias]), tmp_path / "tiny.onnx")
    stored = {t.name: {e.key: e.value for e in t.external_data}
              for t in load_model(path, load_external_data=False).graph.initializer}
    assert (stored["w"]["offset"], stored["w"]["length"]) == ("0", "64")
    assert (stored["b"]["offset"], stored["b"]["length"]) == ("64", "16")
    data_file = tmp_path / "tiny.onnx.data"
    whole = data_file.read_bytes()
    assert len(whole) == 80
    for cut in (72, 79):  # w is complete, b is not
        data_file.write_bytes(whole[:cut])
        with pytest.raises(cu.CourseError, match=f"is {cut} bytes, but weight 'b' needs bytes up to 80"):
            load_model(path)
    data_file.write_bytes(whole)  # exactly long enough: loads, and b's values come back
    assert read_initializers(load_model(path))["b"].tolist() == [1, 2, 3, 4]


# --- read_initializer: every dtype, raw and typed, and external -------------------------


@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed_field"])
@pytest.mark.parametrize("code", ALL_DTYPES, ids=lambda c: TensorProto.DataType.Name(c))
def test_read_initializer_every_dtype(code: int, raw: bool) -> None:
    tensor = make_tensor(code, raw)
    array = read_initializer(tensor)
    expected = sample_values(code)
    assert array.shape == (2, 2)
    assert array.dtype == expected.dtype
    if code == TensorProto.STRING:  # to_array decodes UTF-8 strings
        assert array.tolist() == [["a", "bc"], ["", "d"]]
    else:
        assert array.tobytes() == expected.tobytes()


def test_every_dtype_survives_save_load_and_external_data(tmp_path: Path) -> None:
    tensors = [make_tensor(code, raw) for code in ALL_DTYPES for raw in (True, False)]
    model = tiny_model(tensors)
    onnx.checker.check_model(model)
    path = save_external(model, tmp_path / "all.onnx", location="all.data")
    graph_only = load_model(path, load_external_data=False)
    for loaded in (load_model(path), graph_only):
        arrays = read_initializers(loaded, base_dir=tmp_path)
        for tensor in tensors:
            expected = numpy_helper.to_array(tensor)
            assert arrays[tensor.name].tolist() == expected.tolist()
            assert arrays[tensor.name].dtype == expected.dtype


def test_external_initializer_needs_base_dir(tmp_path: Path) -> None:
    path = save_external(tiny_model(), tmp_path / "tiny.onnx")
    tensor = load_model(path, load_external_data=False).graph.initializer[0]
    with pytest.raises(cu.CourseError, match="external file 'tiny.onnx.data'. Pass base_dir"):
        read_initializer(tensor)
    assert read_initializer(tensor, base_dir=tmp_path)[0, 1] == 1
    with pytest.raises(cu.CourseError, match="which is missing"):
        read_initializer(tensor, base_dir=tmp_path / "elsewhere")


def test_read_initializer_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="takes an onnx.TensorProto"):
        read_initializer(np.zeros(3))  # type: ignore[arg-type]
    broken = TensorProto(name="broken", data_type=TensorProto.FLOAT, dims=[2, 3],
                         float_data=[1.0, 2.0])  # 2 values for a 2x3 tensor
    with pytest.raises(cu.CourseError, match=r"Cannot read weight 'broken' \(FLOAT, dims \[2, 3\]"):
        read_initializer(broken)


def test_read_initializers_unknown_name() -> None:
    with pytest.raises(cu.CourseError, match=r"No initializer named \['nope'\].*Known.*w"):
        read_initializers(tiny_model(), names=["nope"])
    assert list(read_initializers(tiny_model(), names=["w"])) == ["w"]


# --- bytes: hex_dump and wire_fields ----------------------------------------------------


def test_hex_dump() -> None:
    model = tiny_model()
    dump = hex_dump(model, max_bytes=32)
    lines = dump.splitlines()
    assert lines[0].startswith("00000000  08 ")  # field 1 (ir_version), varint
    assert len(lines) == 3 and lines[-1].startswith("... ")
    assert hex_dump(b"AB") == "00000000  41 42" + " " * 42 + "  |AB|"


def test_wire_fields_match_schema() -> None:
    model = tiny_model()
    model.producer_name = "course"
    fields = wire_fields(model.SerializeToString())
    names = [f.name for f in fields]
    assert names == ["ir_version", "producer_name", "graph", "opset_import"]
    assert fields[0].value == model.ir_version and fields[0].tag_bytes == b"\x08"
    assert fields[1].size == len("course") and fields[1].wire_type == 2
    assert "field  7 (graph)" in str(fields[2])
    node_fields = wire_fields(model.graph.node[0])
    assert [f.name for f in node_fields] == ["input", "input", "output", "name", "op_type"]


def test_wire_fields_truncated() -> None:
    data = tiny_model().SerializeToString()
    with pytest.raises(cu.CourseError, match="field 'graph' at byte .* truncated"):
        wire_fields(data[:20])


@pytest.mark.parametrize("data, message", [
    (bytes(500), "field number 0 is illegal"),            # zeros: protobuf rejects them too
    (b"\x08" + b"\xff" * 11 + b"\x01", "longer than 10 bytes"),  # a runaway varint
    (b"\x0b\x00", "wire type 3 is not used"),              # a (deprecated) group start
])
def test_wire_fields_rejects_what_protobuf_rejects(data: bytes, message: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - protobuf raises its own DecodeError
        onnx.ModelProto().ParseFromString(data)  # the real parser refuses these bytes ...
    with pytest.raises(cu.CourseError, match=message):  # ... and so does the decoder that mimics it
        wire_fields(data)


def test_wire_fields_of_empty_bytes_is_an_empty_message() -> None:
    assert wire_fields(b"") == [] and onnx.ModelProto.FromString(b"") == onnx.ModelProto()


def test_iter_graphs_finds_subgraphs() -> None:
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"])], "branch", [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph([node], "main", [], [])
    assert [g.name for g in iter_graphs(graph)] == ["main", "branch", "branch"]


def test_read_initializer_refuses_an_external_location_outside_the_model_folder(tmp_path) -> None:
    """onnx's own ValidationError (a location that climbs out of the folder) becomes a CourseError."""
    (tmp_path / "model").mkdir()
    (tmp_path / "secret.data").write_bytes(b"\0" * 8)
    tensor = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../secret.data")
    with pytest.raises(cu.CourseError, match="Cannot read weight 'w' from its external data file: .*outside"):
        cu.read_initializer(tensor, base_dir=tmp_path / "model")
