"""Generic helpers for exporting operators the exporter or the runtime does not know (notebook 05).

The seed's models (the asinh model, `CustomOp`, the DeformConv model) and every registration
call (`register_custom_op_symbolic`, `onnx_symbolic`, `autograd.Function.symbolic`,
`custom_translation_table`, `torch.library.custom_op`, `torch.onnx.ops.symbolic`) are written
in notebook 05 itself. What lives here is what any export of an unusual op needs again:

- Graph checks: `op_types()` (a graph's domain-qualified op types), `unknown_ops()` (the ops
  ONNX's schemas do not define at the model's, or a given, opset - `onnx.checker` with
  `full_check=True` says the same, one error at a time), `node_attributes()`.
- Pictures: `side_by_side({"traced": a, "registered": b})` puts several graphs in one
  ModelProto (names prefixed by their label) so one Netron picture compares them.
- Quiet failures: `capture_native_output()` collects what C++ writes straight to the process's
  stdout/stderr (the legacy exporter's graph dump); `unwrap_cause()` re-raises the error that
  torch's dynamo exporter wrapped (twice), with its loggers quiet, so `cu.expect_error` shows it.
- The seed's custom op for later lessons: `clamp_silu()` (the math: clamp at 0, then
  x * sigmoid(x)), `CUSTOM_OP_NAME` and `export_custom_op()`, which writes the one-node
  `custom_domain::customOp2` model of notebook 05 step 7c for notebook 10's TensorRT plugin.
Taught in: 05_unsupported_operators.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
from onnx import helper

from .errors import CourseError
from .onnx_io import _as_model

if TYPE_CHECKING:  # torch is imported only where it is needed (import speed)
    import numpy as np
    import torch

__all__ = [
    "CUSTOM_OP_NAME",
    "clamp_silu",
    "export_custom_op",
    "op_types",
    "unknown_ops",
    "node_attributes",
    "side_by_side",
    "NativeOutput",
    "capture_native_output",
    "unwrap_cause",
]

#: The node the seed's `CustomOp` becomes when it is registered (domain::op type).
CUSTOM_OP_NAME = "custom_domain::customOp2"

#: ONNX's default domain has two spellings; both mean the standard operator set.
_DEFAULT_DOMAINS = ("", "ai.onnx")


# --------------------------------------------------------------------------- the seed's op
def clamp_silu(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The seed's custom op: clamp below 0, then x / (1 + exp(-x)) (= x * sigmoid(x)).

    Takes a torch tensor (returns one) or a numpy array (returns a float array), so a plugin
    can be tested against numpy. Known values: clamp_silu(-3) = 0, clamp_silu(0) = 0,
    clamp_silu(1) = 1 / (1 + e^-1) = 0.7310586. Taught in: 05_unsupported_operators (used in 10).
    """
    import numpy as np

    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise CourseError(f"clamp_silu takes a float array, got dtype {x.dtype}.")
        clamped = np.maximum(x, 0)
        return clamped / (1 + np.exp(-clamped))
    import torch

    if not isinstance(x, torch.Tensor):
        raise CourseError(f"clamp_silu takes a torch.Tensor or a numpy array, got {type(x).__name__}.")
    clamped = x.clamp(min=0)
    return clamped / (1 + torch.exp(-clamped))


def export_custom_op(
    path: str | os.PathLike[str], shape: Sequence[int] = (1, 1, 5, 5),
    plugin_version: str = "1", plugin_namespace: str = "custom_domain",
) -> Path:
    """Export the seed's CustomOp as ONE `custom_domain::customOp2` node, ready for a TensorRT plugin.

    This is notebook 05 step 7c as a function, for notebook 10 (which implements the plugin):
    a module whose `forward` calls `torch.onnx.ops.symbolic("custom_domain::customOp2", ...)`
    with the attributes TensorRT's parser looks a plugin up by (`plugin_version`,
    `plugin_namespace`), exported with `torch.onnx.export(..., dynamo=True,
    external_data=False)`. Input `x` and output float32 of `shape`; outside an export the
    module computes `clamp_silu`. Returns the path written. Taught in: 05_unsupported_operators.
    """
    import torch

    dims = tuple(shape)
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise CourseError(f"shape must be a non-empty sequence of positive ints, got {shape!r}.")
    for name, value in (("plugin_version", plugin_version), ("plugin_namespace", plugin_namespace)):
        if not isinstance(value, str):
            raise CourseError(f"{name} must be a str (TensorRT reads a string attribute), got {value!r}.")
    target = Path(path)
    if target.suffix != ".onnx":
        raise CourseError(f"path must end in .onnx, got {target.name}.")

    class CustomOpPluginNode(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if torch.onnx.is_in_onnx_export():
                return torch.onnx.ops.symbolic(
                    CUSTOM_OP_NAME, (x,),
                    {"plugin_version": plugin_version, "plugin_namespace": plugin_namespace},
                    dtype=x.dtype, shape=x.shape, version=1,
                )
            return clamp_silu(x)

    target.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(dims, dtype=torch.float32)
    torch.onnx.export(CustomOpPluginNode().eval(), (example,), target, dynamo=True,
                      external_data=False, verbose=False, input_names=["x"], output_names=["y"])
    return target


# --------------------------------------------------------------------------- graph checks
def _qualified(domain: str, op_type: str) -> str:
    return op_type if domain in _DEFAULT_DOMAINS else f"{domain}::{op_type}"


def op_types(model: Any) -> list[str]:
    """The op types of a model's main graph, in node order; a custom domain is written
    `domain::op` (e.g. `custom_domain::customOp2`), the standard domain is left out.

    Accepts a ModelProto, an .onnx path, or an ONNXProgram. Taught in: 05_unsupported_operators.
    """
    return [_qualified(node.domain, node.op_type) for node in _as_model(model).graph.node]


def unknown_ops(model: Any, opset: int | None = None) -> list[str]:
    """The ops of `model` that ONNX's operator schemas (`onnx.defs`) do not define.

    Each node is looked up with `onnx.defs.has(op_type, version, domain)`, where version
    is the model's opset import for that domain; `opset` overrides the standard domain's
    version ("would this model be valid at opset N?"). Ops the model defines itself as
    local functions count as known. A custom domain (e.g. `custom_domain::customOp2`) is
    unknown to ONNX by definition: a runtime needs its own kernel or plugin for it.
    `onnx.checker.check_model(model, full_check=True)` rejects the same models, but stops
    at the first bad node; this lists them all. Returns sorted, domain-qualified names.
    Taught in: 05_unsupported_operators.
    """
    proto = _as_model(model)
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool)
                              or not 1 <= opset <= onnx.defs.onnx_opset_version()):
        raise CourseError(
            f"opset must be an int from 1 to {onnx.defs.onnx_opset_version()} (the newest "
            f"this onnx {onnx.__version__} knows), got {opset!r}."
        )
    versions = {("" if o.domain in _DEFAULT_DOMAINS else o.domain): o.version for o in proto.opset_import}
    if opset is not None:
        versions[""] = opset
    local = {(f.domain, f.name) for f in proto.functions}
    unknown = set()
    for node in proto.graph.node:
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        if (node.domain, node.op_type) in local:
            continue
        if not onnx.defs.has(node.op_type, versions.get(domain, 1), domain):
            unknown.add(_qualified(domain, node.op_type))
    return sorted(unknown)


def node_attributes(model: Any, op_type: str) -> dict[str, Any]:
    """The attributes of the first node whose op type is `op_type` (bare or
    `domain::op`), as Python values; byte strings are decoded to str.

    Used to read the plugin_version / plugin_namespace that TensorRT's parser looks at.
    Taught in: 05_unsupported_operators.
    """
    proto = _as_model(model)
    for node in proto.graph.node:
        if op_type in (node.op_type, _qualified(node.domain, node.op_type)):
            values = {}
            for attribute in node.attribute:
                value = helper.get_attribute_value(attribute)
                if isinstance(value, bytes):
                    value = value.decode("utf-8", errors="replace")
                elif isinstance(value, list):
                    value = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v
                             for v in value]
                values[attribute.name] = value
            return values
    present = ", ".join(dict.fromkeys(op_types(proto))) or "none"
    raise CourseError(f"No node of type {op_type!r} in this graph. Its op types: {present}.")


def side_by_side(models: dict[str, Any]) -> onnx.ModelProto:
    """One ModelProto holding the main graphs of several models, for ONE picture that compares them.

    Each model's node, tensor and initializer names get the prefix `label/` (`onnx.compose.add_prefix`),
    so the graphs stay apart; Netron draws them next to each other. The opset imports are
    merged (the highest version per domain), so the result is for looking at, not for running.
    Accepts ModelProtos, .onnx paths or ONNXPrograms. Taught in: 05_unsupported_operators.
    """
    from onnx import compose

    if not isinstance(models, dict) or len(models) < 2:
        raise CourseError(f"side_by_side takes a dict of at least two {{label: model}}, got {models!r:.80}.")
    for label in models:
        if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", label):
            raise CourseError(f"Labels become name prefixes: use letters, digits, '_', '.', '-'; got {label!r}.")
    merged = onnx.ModelProto()
    merged.graph.name = " | ".join(models)
    opsets: dict[str, int] = {}
    for label, model in models.items():
        part = compose.add_prefix(_as_model(model), prefix=f"{label}/")
        merged.ir_version = max(merged.ir_version, part.ir_version)
        for name in ("node", "input", "output", "initializer", "value_info"):
            getattr(merged.graph, name).extend(getattr(part.graph, name))
        for entry in part.opset_import:
            domain = "" if entry.domain in _DEFAULT_DOMAINS else entry.domain
            opsets[domain] = max(opsets.get(domain, 0), entry.version)
    merged.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in opsets.items())
    return merged


# --------------------------------------------------------------------------- wrapped errors
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and what caused it, outermost first (`__cause__`, else an unsuppressed `__context__`)."""
    chain = [error]
    while True:
        last = chain[-1]
        nxt = last.__cause__ or (None if last.__suppress_context__ else last.__context__)
        if nxt is None or any(nxt is seen for seen in chain):
            return chain
        chain.append(nxt)


@contextmanager
def unwrap_cause(quiet: Sequence[str] = ("torch.onnx",)) -> Iterator[None]:
    """Re-raise the innermost cause of an error raised in the block, naming what wrapped it.

    torch's dynamo exporter wraps the real error (a missing translation, a failing pass) in
    one or two `ConversionError`s / a `PassError` whose messages are generic, coloured for a
    terminal and may hold memory addresses. Put this inside `cu.expect_error` so the lesson
    matches and shows the real one:

        with cu.expect_error(DispatchError, match="No ONNX function"), cu.unwrap_cause():
            torch.onnx.export(model, args, path, dynamo=True)

    It prints one line ("raised ConversionError, caused by ... DispatchError") and raises the
    innermost error. The loggers named in `quiet` (and their children) are set to ERROR for
    the block - the exporter also logs a warning about the same failure - and restored after.
    Taught in: 05_unsupported_operators.
    """
    if isinstance(quiet, str):
        quiet = (quiet,)
    loggers = [logging.getLogger(name) for name in quiet]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    except Exception as error:
        chain = _causes(error)
        if len(chain) == 1:
            raise
        names = ", caused by ".join(type(link).__name__ for link in chain)
        print(_ANSI.sub("", f"raised {names}; the innermost error:"))
        raise chain[-1] from None
    finally:
        for logger, level in zip(loggers, saved, strict=True):
            logger.setLevel(level)


# --------------------------------------------------------------------------- native output
# Prefixes that make native log lines differ from run to run: glog ("[W1124 02:53:19.930 f.cpp:1]")
# and TensorRT's logger ("[11/24/2026-02:53:30] [TRT] [E] ").
_NATIVE_PREFIXES = re.compile(
    r"^(\[[WIEF]\d{4} [\d:.]+ [^\]]*\] |\[\d\d/\d\d/\d{4}-[\d:]+\] (\[TRT\] )?)"
)


@dataclass
class NativeOutput:
    """What native code wrote to stdout/stderr inside `capture_native_output()`."""

    text: str = ""

    def lines(self, strip_prefixes: bool = True) -> list[str]:
        """Non-empty lines; by default without glog / TensorRT timestamp prefixes."""
        found = [line.rstrip() for line in self.text.splitlines() if line.strip()]
        return [_NATIVE_PREFIXES.sub("", line) for line in found] if strip_prefixes else found

    def summary(self, max_lines: int = 8) -> str:
        """The lines (prefixes stripped), cut to `max_lines` with a count of the rest."""
        lines = self.lines()
        if not lines:
            return "(no native output)"
        shown = lines[:max_lines]
        if len(lines) > max_lines:
            shown.append(f"... ({len(lines) - max_lines} more lines)")
        return "\n".join(shown)

    def __str__(self) -> str:
        return self.summary()


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (std::cout shares them) so nothing lands after restoring."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library handle (unusual platforms): best effort
        pass


@contextmanager
def capture_native_output() -> Iterator[NativeOutput]:
    """Capture what C/C++ code writes to file descriptors 1 and 2 during the block.

    Writes that bypass `sys.stdout` (the legacy exporter's "Torch IR graph at exception"
    dump and its C++ warnings, a default `trt.Logger`; `cu.parse_onnx` collects TensorRT's
    messages itself, in `ParseResult.log`) are collected into the returned
    `NativeOutput`, whose `.text` is filled when the block ends (also when it raises). In
    Jupyter, Python-level prints (`print`, `cu.expect_error`) go through the kernel and still
    show as usual; in a terminal `sys.stdout` is file descriptor 1, so they are captured too.
    Taught in: 05_unsupported_operators.
    """
    captured = NativeOutput()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    _flush_c_stdio()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            yield captured
        finally:
            _flush_c_stdio()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", errors="replace")
