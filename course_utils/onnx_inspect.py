"""The facts of an ONNX model at a glance, which neither of the field's printers gives.

`onnx.printer.to_text(model)` prints every node (the readable form of the protobuf) and
`polygraphy inspect model` lists inputs, outputs, initializers and nodes; notebook 04 shows
both. Neither answers "how many parameters, how many bytes, which op how often, where does
each weight live (raw_data, a typed field, an external file)" - the questions a deployment
engineer asks first. That is all this module adds:

- `summarize_model(model)`: opsets, typed inputs/outputs (dtype names, symbolic dims),
  op counts, parameter count and bytes, subgraphs, external-data files; prints as text and
  shows as an HTML table. Accepts a ModelProto, an .onnx path (graph only, weights stay on
  disk) or the ONNXProgram that `torch.onnx.export(..., dynamo=True)` returns.
- `initializers_table(model)`: each weight's dtype, shape, size and *storage*, read from the
  protobuf fields without loading the values.
- `value_info` / `dtype_name` / `Table`: the small pieces the two are built from.
Taught in: 04_onnx_protobuf_anatomy (used from 02 on).
"""

from __future__ import annotations

import html
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import TensorProto, external_data_helper

from .onnx_io import _as_model, external_data_files, iter_graphs

__all__ = [
    "TensorInfo",
    "ModelSummary",
    "Table",
    "summarize_model",
    "dtype_name",
    "value_info",
    "initializers_table",
]

# A ModelProto, an .onnx path, or a torch.onnx.ONNXProgram (anything with .model_proto).
ModelLike = onnx.ModelProto | str | os.PathLike[str] | Any
Dim = int | str | None  # a fixed size, a symbolic name ('batch'), or unknown

DEFAULT_DOMAIN = "ai.onnx"

# ONNX type names that differ from numpy's (FLOAT is float32 in numpy terms, ...).
_NUMPY_STYLE_NAMES = {"FLOAT": "float32", "DOUBLE": "float64", "FLOAT16": "float16"}


def dtype_name(elem_type: int) -> str:
    """Readable name of an ONNX element type: 1 -> 'float32', 7 -> 'int64', 17 -> 'float8e4m3fn'.

    Unknown numbers give 'unknown(N)' instead of an error (a newer ONNX may add types).
    Taught in: 04_onnx_protobuf_anatomy.
    """
    try:
        name = TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"unknown({elem_type})"
    return _NUMPY_STYLE_NAMES.get(name, name.lower())


@dataclass(frozen=True)
class TensorInfo:
    """An input, output or intermediate value: name, dtype name and shape.

    `shape` is None when the rank is unknown; each dim is an int, a symbolic name such as
    'batch', or None when unknown. Non-tensor types (sequences, maps, optionals) have a
    dtype like 'seq(float32)'.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...] | None

    @property
    def shape_text(self) -> str:
        if self.dtype.startswith(("seq(", "map(")):
            return ""  # containers have no tensor shape
        if self.shape is None:
            return "?"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}{self.shape_text}"


def _type_info(type_proto: onnx.TypeProto) -> tuple[str, tuple[Dim, ...] | None]:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        tensor = getattr(type_proto, kind)
        dtype = dtype_name(tensor.elem_type)
        if kind == "sparse_tensor_type":
            dtype = f"sparse({dtype})"
        if not tensor.HasField("shape"):
            return dtype, None
        dims: list[Dim] = []
        for dim in tensor.shape.dim:
            which = dim.WhichOneof("value")
            dims.append(dim.dim_value if which == "dim_value" else
                        dim.dim_param if which == "dim_param" else None)
        return dtype, tuple(dims)
    if kind == "sequence_type":
        inner, _ = _type_info(type_proto.sequence_type.elem_type)
        return f"seq({inner})", None
    if kind == "optional_type":
        inner, shape = _type_info(type_proto.optional_type.elem_type)
        return f"optional({inner})", shape
    if kind == "map_type":
        value, _ = _type_info(type_proto.map_type.value_type)
        return f"map({dtype_name(type_proto.map_type.key_type)}, {value})", None
    return "undefined", None


def value_info(info: onnx.ValueInfoProto) -> TensorInfo:
    """A ValueInfoProto (graph input/output/value_info) as a TensorInfo.

    Reads `dim_value` and `dim_param` properly: the seed turned dim_value 0 into None,
    which also loses symbolic names such as 'batch'. Taught in: 04_onnx_protobuf_anatomy.
    """
    dtype, shape = _type_info(info.type)
    return TensorInfo(info.name, dtype, shape)


class OpsetDict(dict):
    """{domain: version}; the default domain is stored as 'ai.onnx' and also answers to ''."""

    def __missing__(self, key: str) -> int:
        if key == "" and DEFAULT_DOMAIN in self:
            return self[DEFAULT_DOMAIN]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(DEFAULT_DOMAIN if key == "" else key)

    def get(self, key: str, default: int | None = None) -> int | None:  # type: ignore[override]
        return self[key] if key in self else default


class Table:
    """A small table that prints as aligned text and shows as HTML in Jupyter (no pandas)."""

    def __init__(self, headers: list[str], rows: list[list[object]], title: str = "",
                 note: str = "") -> None:
        self.headers = headers
        self.rows = [[str(cell) for cell in row] for row in rows]
        self.title = title
        self.note = note

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Table({self.title or 'untitled'!r}, {len(self.rows)} rows)"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]  # IPython's text/plain form

    def __str__(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        line = "  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True))
        out = [self.title] if self.title else []
        out += [line.rstrip(), "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in self.rows]
        if self.note:
            out.append(self.note)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption style='text-align:left'><b>{esc(self.title)}</b></caption>" \
            if self.title else ""
        note = f"<p><i>{esc(self.note)}</i></p>" if self.note else ""
        return f"<table>{caption}<tr>{head}</tr>{body}</table>{note}"


def _op_key(node: onnx.NodeProto) -> str:
    domain = node.domain
    return node.op_type if domain in ("", DEFAULT_DOMAIN) else f"{domain}::{node.op_type}"


def _numel(tensor: TensorProto) -> int:
    return math.prod(tensor.dims)


def _tensor_nbytes(tensor: TensorProto) -> int:
    """Stored size of a tensor's data in bytes (raw, typed field, or external length)."""
    if external_data_helper.uses_external_data(tensor):
        for entry in tensor.external_data:
            if entry.key == "length":
                return int(entry.value)
    if tensor.raw_data:
        return len(tensor.raw_data)
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 0
    if tensor.data_type == TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    bits = {TensorProto.UINT4: 4, TensorProto.INT4: 4, TensorProto.FLOAT4E2M1: 4}
    bits.update({getattr(TensorProto, n): b for n, b in
                 (("UINT2", 2), ("INT2", 2), ("FLOAT6E2M3", 6), ("FLOAT6E3M2", 6))
                 if hasattr(TensorProto, n)})
    if tensor.data_type in bits:
        return math.ceil(_numel(tensor) * bits[tensor.data_type] / 8)
    return _numel(tensor) * itemsize


def _storage(tensor: TensorProto) -> str:
    if external_data_helper.uses_external_data(tensor):
        info = {entry.key: entry.value for entry in tensor.external_data}
        return f"external:{info.get('location', '?')}"
    if tensor.raw_data:
        return "raw_data"
    for name in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                 "string_data"):
        if len(getattr(tensor, name)):
            return name
    return "empty" if _numel(tensor) == 0 else "none"


def _human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


@dataclass
class ModelSummary:
    """The facts about a model at a glance. `print()` it, or show it in Jupyter as a table.

    `op_counts` counts the main graph's nodes by op type (non-default domains are written
    'domain::Op', e.g. 'com.microsoft::FusedConv'); `num_parameters` sums the element counts
    of the main graph's initializers; `opset` maps domain -> version ('ai.onnx' for the
    default domain, which also answers to '').
    """

    graph_name: str
    ir_version: int
    producer: str
    opset: OpsetDict
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_counts: Counter[str]
    num_nodes: int
    num_initializers: int
    num_parameters: int
    parameter_bytes: int
    num_subgraphs: int = 0
    num_subgraph_nodes: int = 0
    external_data: list[str] = field(default_factory=list)

    @property
    def default_opset(self) -> int | None:
        """The default-domain (ai.onnx) opset version, or None if the model declares none."""
        return self.opset.get(DEFAULT_DOMAIN)

    def to_table(self) -> Table:
        """The summary as a two-column Table (prints as text, renders as HTML)."""
        ops = ", ".join(f"{op} x{n}" for op, n in self.op_counts.most_common())
        rows: list[list[object]] = [
            ["graph", self.graph_name or "-"],
            ["producer", self.producer or "-"],
            ["IR version", self.ir_version],
            ["opsets", ", ".join(f"{d} {v}" for d, v in self.opset.items()) or "-"],
        ]
        rows += [["input", str(info)] for info in self.inputs]
        rows += [["output", str(info)] for info in self.outputs]
        rows += [
            ["nodes", self.num_nodes],
            ["ops", ops or "-"],
            ["initializers", self.num_initializers],
            ["parameters", f"{self.num_parameters:,} ({_human_bytes(self.parameter_bytes)})"],
        ]
        if self.num_subgraphs:
            rows.append(["subgraphs", f"{self.num_subgraphs} ({self.num_subgraph_nodes} nodes)"])
        if self.external_data:
            rows.append(["external data", ", ".join(self.external_data)])
        return Table(["field", "value"], rows, title=f"ONNX model '{self.graph_name}'")

    def __str__(self) -> str:
        return str(self.to_table())

    def _repr_html_(self) -> str:
        return self.to_table()._repr_html_()

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]  # IPython's text/plain form


def summarize_model(model_or_path: ModelLike) -> ModelSummary:
    """One-glance facts of a model (or .onnx path): opsets, I/O, op counts, parameters.

    Accepts a ModelProto, an .onnx path, or the ONNXProgram that
    `torch.onnx.export(..., dynamo=True)` returns. Reads only the graph from a path
    (external weights stay on disk), so it is fast for large models.
    Taught in: 04_onnx_protobuf_anatomy (used from 02 on).
    """
    model = _as_model(model_or_path)
    graph = model.graph
    subgraphs = list(iter_graphs(graph))[1:]
    opset = OpsetDict()
    for entry in model.opset_import:
        opset[entry.domain or DEFAULT_DOMAIN] = entry.version
    return ModelSummary(
        graph_name=graph.name,
        ir_version=model.ir_version,
        producer=" ".join(p for p in (model.producer_name, model.producer_version) if p),
        opset=opset,
        inputs=[value_info(info) for info in graph.input],
        outputs=[value_info(info) for info in graph.output],
        op_counts=Counter(_op_key(node) for node in graph.node),
        num_nodes=len(graph.node),
        num_initializers=len(graph.initializer),
        num_parameters=sum(_numel(t) for t in graph.initializer),
        parameter_bytes=sum(_tensor_nbytes(t) for t in graph.initializer),
        num_subgraphs=len(subgraphs),
        num_subgraph_nodes=sum(len(sub.node) for sub in subgraphs),
        external_data=external_data_files(model),
    )


def _cut(count: int, limit: int | None) -> int:
    return count if limit is None else max(0, min(count, limit))


def initializers_table(model_or_path: ModelLike, max_initializers: int | None = 50) -> Table:
    """The main graph's initializers (weights): name, dtype, shape, elements, bytes, storage.

    Reads only the protobuf fields, never the weight values. Taught in: 04_onnx_protobuf_anatomy.
    """
    graph = _as_model(model_or_path).graph
    shown = _cut(len(graph.initializer), max_initializers)
    rows = [
        [t.name, dtype_name(t.data_type), list(t.dims), f"{_numel(t):,}",
         _human_bytes(_tensor_nbytes(t)), _storage(t)]
        for t in graph.initializer[:shown]
    ]
    hidden = len(graph.initializer) - shown
    note = f"... {hidden} more initializers" if hidden else ""
    return Table(["name", "dtype", "shape", "elements", "size", "storage"], rows,
                 title=f"Initializers ({len(graph.initializer)})", note=note)
