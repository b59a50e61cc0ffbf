"""Load ONNX files with clear errors, and read their weights as numpy arrays.

`onnx.load` answers a wrong path, a truncated download or a `.pt` file with a protobuf
traceback (or, worse, with an "empty" model). `load_model` checks the file first and says
what is wrong and what to do. `read_initializer` reads a weight whatever way it is stored:
`raw_data`, a typed field (`float_data`, `int32_data`, ...) or an external `.data` file.
`hex_dump` and `wire_fields` show the protobuf bytes of a model, field by field.
Taught in: 04_onnx_protobuf_anatomy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError, Message
from onnx import external_data_helper, numpy_helper

from .errors import CourseError

__all__ = [
    "load_model",
    "read_initializer",
    "read_initializers",
    "external_data_files",
    "iter_graphs",
    "hex_dump",
    "WireField",
    "wire_fields",
]

PathLike = str | os.PathLike[str]

# File signatures of things people pass to onnx.load by mistake (first bytes -> what it is).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt/.pth checkpoint is one)"),
    (b"\x80\x02", "a Python pickle (an old-style PyTorch checkpoint?)"),
    (b"\x80\x04", "a Python pickle (an old-style PyTorch checkpoint?)"),
    (b"\x93NUMPY", "a numpy .npy array"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"ftrt", "a TensorRT engine (.plan/.engine), not an ONNX model"),
    (b"\x7fELF", "a compiled program or shared library"),
)


def _describe_bytes(head: bytes) -> str | None:
    """Name the kind of file `head` starts with, when it is a well-known non-ONNX format."""
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    stripped = head.lstrip()
    if stripped.startswith((b"<", b"{", b"[")):
        return "a text file (HTML/XML/JSON?), e.g. an error page saved instead of the model"
    if stripped.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (run `git lfs pull` to fetch the real file)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "a text file"
    return None


def _diagnose(data: bytes) -> str:
    """Why bytes fail to parse as a ModelProto, in words (empty when unclear)."""
    try:
        wire_fields(data, onnx.ModelProto)
    except CourseError as error:
        return str(error).replace("the data is truncated", "the file is truncated")
    return ""


def _check_path(path: Path) -> None:
    """Raise a CourseError for paths that cannot hold an ONNX model at all."""
    if not path.exists():
        hint = ""
        if path.parent.is_dir():
            nearby = sorted(p.name for p in path.parent.glob("*.onnx"))[:8]
            if nearby:
                hint = f" ONNX files in that folder: {', '.join(nearby)}."
        raise CourseError(
            f"No ONNX file at {path}. Check the name, or run the notebook cell that "
            f"creates it first (models are written with cu.model_path(...)).{hint}"
        )
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.onnx"))[:8]
        hint = f" It contains: {', '.join(inside)}." if inside else " It has no .onnx file."
        raise CourseError(f"{path} is a folder, not an ONNX file. Pass the .onnx file.{hint}")
    if path.stat().st_size == 0:
        raise CourseError(
            f"{path} is empty (0 bytes): the export or download that wrote it failed. "
            "Delete it and export the model again."
        )


def _parse(path: Path) -> onnx.ModelProto:
    """Parse the protobuf bytes of `path` into a ModelProto (external data not loaded)."""
    data = path.read_bytes()
    what = _describe_bytes(data[:64])
    if path.name.endswith(".data") or (what is None and path.suffix in {".data", ".bin"}):
        what = what or "an external-data file (weights only)"
    if what is not None:
        raise CourseError(
            f"{path} is not an ONNX model: it looks like {what}. Pass the .onnx file "
            "written by torch.onnx.export or onnx.save."
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise CourseError(
            f"{path} ({len(data):,} bytes) is not a readable ONNX protobuf: "
            f"{_diagnose(data) or type(error).__name__}. Export or download the model again "
            "and check that the copy finished."
        ) from None
    # Random bytes can parse as a protobuf full of unknown fields, and a file cut exactly
    # between two fields parses too: an ONNX model always has an IR version, a graph and
    # (since IR version 3) at least one opset import.
    missing = ("IR version" if model.ir_version <= 0 else
               "graph" if not model.HasField("graph") else
               "opset import" if model.ir_version >= 3 and not model.opset_import else "")
    if missing:
        raise CourseError(
            f"{path} ({len(data):,} bytes) parsed as protobuf but is not a complete ONNX "
            f"model (it has no {missing}): the file is truncated or another format. "
            "Export the model again."
        )
    return model


def iter_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Yield `graph` and every subgraph inside it (If/Loop/Scan bodies), depth first.

    Taught in: 04_onnx_protobuf_anatomy.
    """
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from iter_graphs(sub)


def _external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for graph in iter_graphs(model.graph):
        for tensor in graph.initializer:
            if external_data_helper.uses_external_data(tensor):
                yield tensor


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """The external-data file names (relative to the model's folder) a model refers to.

    Taught in: 04_onnx_protobuf_anatomy.
    """
    names: list[str] = []
    for tensor in _external_tensors(model):
        location = _external_info(tensor).get("location", "")
        if location and location not in names:
            names.append(location)
    return names


def _external_info(tensor: onnx.TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _check_external_data(model: onnx.ModelProto, base_dir: Path, model_path: Path) -> None:
    """Raise a CourseError naming any external-data file that is missing or too short."""
    sizes: dict[str, int] = {}
    for tensor in _external_tensors(model):
        info = _external_info(tensor)
        location = info.get("location", "")
        data_path = (base_dir / location).resolve()
        if location not in sizes:
            if not location or not data_path.is_file():
                raise CourseError(
                    f"{model_path.name} keeps its weights in an external data file "
                    f"'{location}', which is missing (looked for {data_path}). Copy the "
                    f"'{location}' file next to the .onnx file, or re-export the model with "
                    "torch.onnx.export(..., external_data=False) to get one self-contained "
                    "file, or load the graph alone with load_model(path, "
                    "load_external_data=False)."
                )
            sizes[location] = data_path.stat().st_size
        end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        if end > sizes[location]:
            raise CourseError(
                f"External data file '{location}' is {sizes[location]:,} bytes, but weight "
                f"'{tensor.name}' needs bytes up to {end:,}: the file is truncated or belongs "
                "to another export. Copy it again or re-export the model."
            )


def load_model(path: PathLike, load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX model, turning every way a file can be wrong into a clear CourseError.

    Checks, in order: the path exists and is a file, is not empty, is not a well-known other
    format (PNG, PyTorch checkpoint, TensorRT engine, text), parses as protobuf, is an ONNX
    model (has an IR version and a graph), and - with `load_external_data` - that every
    external `.data` file it refers to exists and is long enough. With
    `load_external_data=False` you get the graph with weights left on disk (fast for large
    models; `read_initializer(tensor, base_dir)` reads them one at a time).
    Taught in: 04_onnx_protobuf_anatomy.
    """
    model_path = Path(path).expanduser()
    _check_path(model_path)
    model = _parse(model_path)
    if load_external_data and any(True for _ in _external_tensors(model)):
        base_dir = model_path.parent
        _check_external_data(model, base_dir, model_path)
        try:
            external_data_helper.load_external_data_for_model(model, str(base_dir))
        except (OSError, ValueError) as error:
            raise CourseError(
                f"Could not read the external data of {model_path.name}: {error}. Check "
                "that the .data file sits next to the .onnx file and is readable."
            ) from None
    return model


def _as_model(model_or_path: object, load_external_data: bool = False) -> onnx.ModelProto:
    """A ModelProto from a ModelProto, an .onnx path (via `load_model`, graph only by default)
    or the ONNXProgram that `torch.onnx.export(..., dynamo=True)` returns (its `.model_proto`).

    Shared by the inspectors (`summarize_model`, `op_types`, ...), so none needs a saved file.
    """
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, str | os.PathLike):
        return load_model(model_or_path, load_external_data=load_external_data)
    proto = getattr(model_or_path, "model_proto", None)
    if isinstance(proto, onnx.ModelProto):
        return proto
    raise CourseError(
        "Expected an onnx.ModelProto or the path of an .onnx file (or the ONNXProgram that "
        f"torch.onnx.export(..., dynamo=True) returns), got {type(model_or_path).__name__}."
    )


def read_initializer(tensor: onnx.TensorProto, base_dir: PathLike | None = None) -> np.ndarray:
    """A weight (TensorProto) as a numpy array, however it is stored.

    Works for `raw_data`, for the typed fields (`float_data`, `int32_data`, `int64_data`,
    `double_data`, `uint64_data`, `string_data`) and - given `base_dir`, the model's folder -
    for weights still in an external `.data` file. This is `onnx.numpy_helper.to_array`
    plus clear errors; the seed's `np.frombuffer(tensor.raw_data)` only handles the first.
    FLOAT8/INT4/FLOAT4 types come back as `ml_dtypes` arrays; STRING as an object array.
    Taught in: 04_onnx_protobuf_anatomy.
    """
    if not isinstance(tensor, onnx.TensorProto):
        raise CourseError(
            f"read_initializer() takes an onnx.TensorProto (e.g. model.graph.initializer[0]), "
            f"got {type(tensor).__name__}."
        )
    if external_data_helper.uses_external_data(tensor):
        location = _external_info(tensor).get("location", "?")
        if base_dir is None:
            raise CourseError(
                f"Weight '{tensor.name}' is stored in the external file '{location}'. Pass "
                "base_dir=<folder of the .onnx file>, or load the model with "
                "load_model(path) (which loads external data)."
            )
        data_path = Path(base_dir) / location
        if not data_path.is_file():
            raise CourseError(
                f"Weight '{tensor.name}' is stored in '{location}', which is missing "
                f"(looked for {data_path}). Copy it next to the .onnx file or re-export "
                "with external_data=False."
            )
    try:
        return numpy_helper.to_array(tensor, base_dir=str(base_dir or ""))
    except onnx.checker.ValidationError as error:  # onnx's own checks of the external-data entry
        raise CourseError(
            f"Cannot read weight '{tensor.name}' from its external data file: {error} "
            "The .onnx file's external-data entry (location, offset, length) does not fit the files "
            "next to it; copy the model's folder as it was written, or re-export the model."
        ) from None
    except (ValueError, TypeError, KeyError, OSError) as error:
        kind = onnx.TensorProto.DataType.Name(tensor.data_type) if tensor.data_type in (
            onnx.TensorProto.DataType.values()) else str(tensor.data_type)
        raise CourseError(
            f"Cannot read weight '{tensor.name}' ({kind}, dims {list(tensor.dims)}): "
            f"{error}. Its stored data does not match its declared type and shape; "
            "re-export the model."
        ) from None


def read_initializers(
    model: onnx.ModelProto, names: list[str] | None = None, base_dir: PathLike | None = None
) -> dict[str, np.ndarray]:
    """All (or the named) initializers of the main graph as {name: numpy array}.

    Raises a CourseError listing the known names when a requested name does not exist.
    Taught in: 04_onnx_protobuf_anatomy.
    """
    by_name = {tensor.name: tensor for tensor in model.graph.initializer}
    wanted = list(by_name) if names is None else list(names)
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        known = ", ".join(list(by_name)[:10]) + (" ..." if len(by_name) > 10 else "")
        raise CourseError(f"No initializer named {unknown}. Known initializers: {known or '-'}.")
    return {name: read_initializer(by_name[name], base_dir) for name in wanted}


def hex_dump(data: bytes | Message, max_bytes: int = 64, width: int = 16) -> str:
    """Classic hex dump (offset, hex bytes, printable ASCII) of the first `max_bytes` bytes.

    Accepts bytes or any protobuf message (serialized first). Taught in: 04_onnx_protobuf_anatomy.
    """
    raw = data.SerializeToString() if isinstance(data, Message) else bytes(data)
    lines = []
    for start in range(0, min(len(raw), max_bytes), width):
        chunk = raw[start : min(start + width, max_bytes)]
        hex_part = " ".join(f"{byte:02x}" for byte in chunk)
        text = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        lines.append(f"{start:08x}  {hex_part:<{width * 3 - 1}}  |{text}|")
    if len(raw) > max_bytes:
        lines.append(f"... {len(raw) - max_bytes:,} more bytes ({len(raw):,} in total)")
    return "\n".join(lines)


@dataclass(frozen=True)
class WireField:
    """One top-level protobuf field as stored on the wire."""

    offset: int  # where its tag starts
    tag_bytes: bytes  # the varint tag: (field_number << 3) | wire_type
    field_number: int
    wire_type: int  # 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    name: str  # field name in the message's schema, or '?' if unknown
    size: int  # payload length in bytes (for varints: the varint's length)
    value: int | None  # the number for varint / fixed fields

    def __str__(self) -> str:
        kinds = {0: "varint", 1: "fixed64", 2: "length-delimited", 5: "fixed32"}
        shown = f"value={self.value}" if self.value is not None else f"{self.size:,} bytes"
        return (
            f"@{self.offset:<6} tag {self.tag_bytes.hex(' '):<6} -> field {self.field_number:>2} "
            f"({self.name}), wire type {self.wire_type} = {kinds.get(self.wire_type, '?')}: "
            f"{shown}"
        )


def _read_varint(raw: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(raw):
            raise CourseError("the bytes end inside a varint: the data is truncated")
        byte = raw[position]
        result |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:  # protobuf varints are at most 10 bytes (64 bits)
            raise CourseError(f"byte {position - 10}: a varint longer than 10 bytes: the data is "
                              "not protobuf (or is corrupted)")


def wire_fields(
    data: bytes | Message, message_type: type[Message] | None = None
) -> list[WireField]:
    """Decode the top-level fields of serialized protobuf bytes: tag, wire type, size.

    `message_type` (default: the message's own type, or onnx.ModelProto for bytes) names the
    fields from the schema. This is what protobuf does when it parses: read a tag varint,
    split it into field number and wire type, then read the payload.
    Taught in: 04_onnx_protobuf_anatomy.
    """
    if isinstance(data, Message):
        message_type = message_type or type(data)
        raw = data.SerializeToString()
    else:
        raw = bytes(data)
    fields_by_number = (message_type or onnx.ModelProto).DESCRIPTOR.fields_by_number
    fields: list[WireField] = []
    position = 0
    while position < len(raw):
        start = position
        tag, position = _read_varint(raw, position)
        tag_end = position
        number, wire_type = tag >> 3, tag & 7
        if number == 0:  # protobuf's parser rejects it too ("Wire format was corrupt")
            raise CourseError(f"byte {start}: field number 0 is illegal in protobuf, so these bytes "
                              "are not an ONNX protobuf (or are corrupted)")
        value: int | None = None
        if wire_type == 0:
            value, end = _read_varint(raw, position)
            size = end - position
        elif wire_type == 1:
            value, size = int.from_bytes(raw[position : position + 8], "little"), 8
        elif wire_type == 5:
            value, size = int.from_bytes(raw[position : position + 4], "little"), 4
        elif wire_type == 2:
            size, position = _read_varint(raw, position)
        else:
            raise CourseError(
                f"byte {start}: wire type {wire_type} is not used by ONNX, so these bytes are "
                "not an ONNX protobuf (or are corrupted)"
            )
        field = fields_by_number.get(number)
        if position + size > len(raw):
            label = f"'{field.name}'" if field else str(number)
            raise CourseError(
                f"field {label} at byte {start} needs {size:,} bytes but only "
                f"{len(raw) - position:,} remain: the data is truncated"
            )
        fields.append(WireField(
            start, raw[start:tag_end], number, wire_type,
            field.name if field else "?", size, value,
        ))
        position += size
    return fields
