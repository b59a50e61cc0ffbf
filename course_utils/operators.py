"""Custom and unsupported operators: the seed's small models and graph checks for notebook 05.

What lives here is the repeated plumbing; every registration call the notebook teaches
(`torch.onnx.register_custom_op_symbolic`, the `onnx_symbolic` decorator, an autograd
Function's `symbolic`, `custom_translation_table`, `torch.library.custom_op`,
`torch.onnx.ops.symbolic`) stays visible in the notebook.

- Models of the seed (section 3.4.5), built on demand so `import course_utils` stays fast:
  `asinh_model()` (torch.asinh), `custom_op_function()` / `custom_op_model()` (the
  autograd Function `CustomOp`, with or without a `symbolic` that emits
  `custom_domain::customOp2`), `deform_conv_model()` (a Conv2d that predicts offsets for
  a torchvision `DeformConv2d`), and `clamp_silu()`, the math all of them share.
- Graph checks: `op_types()` lists a graph's domain-qualified op types,
  `unknown_ops()` lists the ops ONNX's operator schemas do not know at the model's (or a
  given) opset, `node_attributes()` reads one node's attributes as Python values.
- `capture_native_output()` collects what C++ code (the TorchScript exporter's graph dump
  and warnings, TensorRT's logger) writes straight to the process's stdout/stderr, which
  Python's redirection cannot catch, so a notebook cell shows it in order and without
  timestamps instead of interleaved with the cell's own prints.
Taught in: 05_unsupported_operators.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import onnx
from onnx import helper

from .errors import CourseError

if TYPE_CHECKING:  # torch is imported only when a model is built (import speed)
    import torch

__all__ = [
    "CUSTOM_OP_NAME",
    "clamp_silu",
    "asinh_model",
    "custom_op_function",
    "custom_op_model",
    "deform_conv_model",
    "op_types",
    "unknown_ops",
    "node_attributes",
    "NativeOutput",
    "capture_native_output",
]

#: The op the seed's autograd Function emits when it has a `symbolic` (domain::name).
CUSTOM_OP_NAME = "custom_domain::customOp2"

#: ONNX's default domain has two spellings; both mean the standard operator set.
_DEFAULT_DOMAINS = ("", "ai.onnx")


def clamp_silu(x: torch.Tensor) -> torch.Tensor:
    """The seed's custom op: clamp below 0, then x / (1 + exp(-x)), i.e. SiLU of ReLU(x).

    Taught in: 05_unsupported_operators.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise CourseError(f"clamp_silu takes a torch.Tensor, got {type(x).__name__}.")
    x = x.clamp(min=0)
    return x / (1 + torch.exp(-x))


@functools.cache
def _classes() -> SimpleNamespace:
    """Define the model classes once, the first time one is asked for (imports torch)."""
    import torch

    class AsinhModel(torch.nn.Module):
        """y = asinh(x): ONNX has Asinh since opset 9, the legacy exporter has no symbolic."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.asinh(x)

    class CustomOp(torch.autograd.Function):
        """The seed's CustomOp without `symbolic`: the exporter traces its forward."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return clamp_silu(x)

    class CustomOpWithSymbolic(torch.autograd.Function):
        """The same op, but `symbolic` tells the legacy exporter to emit ONE custom node."""

        @staticmethod
        def symbolic(g: Any, x: Any) -> Any:
            return g.op("custom_domain::customOp2", x)  # == CUSTOM_OP_NAME

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return clamp_silu(x)

    class CustomOpModel(torch.nn.Module):
        """A model whose forward is one call of an autograd Function's `apply`."""

        def __init__(self, function: type[torch.autograd.Function]) -> None:
            super().__init__()
            self.function = function

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.function.apply(x)

    return SimpleNamespace(
        AsinhModel=AsinhModel, CustomOp=CustomOp, CustomOpWithSymbolic=CustomOpWithSymbolic,
        CustomOpModel=CustomOpModel,
    )


@functools.cache
def _deform_conv_class() -> type:
    """Define DeformConvModel once (imports torchvision, which the other models do not need)."""
    import torch
    from torchvision.ops import DeformConv2d

    class DeformConvModel(torch.nn.Module):
        """A Conv2d predicts 2*k*k offsets per position; DeformConv2d samples with them."""

        def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(in_channels, 2 * kernel_size * kernel_size, kernel_size)
            self.conv2 = DeformConv2d(in_channels, out_channels, kernel_size)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            offset = self.conv1(x)
            return self.conv2(x, offset)

    return DeformConvModel


def asinh_model() -> torch.nn.Module:
    """A one-op model, y = torch.asinh(x), in eval mode (the seed's asinh example).

    Taught in: 05_unsupported_operators.
    """
    return _classes().AsinhModel().eval()


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise CourseError(f"{name} must be True or False, got {value!r}.")
    return value


def custom_op_function(with_symbolic: bool = False) -> type[torch.autograd.Function]:
    """The seed's autograd Function `CustomOp` (forward = `clamp_silu`).

    `with_symbolic=False`: no `symbolic`, so the legacy exporter traces the forward into
    several standard nodes. `with_symbolic=True`: its `symbolic(g, x)` returns
    `g.op("custom_domain::customOp2", x)`, one node of a custom domain.
    The same class is returned on every call. Taught in: 05_unsupported_operators.
    """
    classes = _classes()
    if _check_flag("with_symbolic", with_symbolic):
        return classes.CustomOpWithSymbolic
    return classes.CustomOp


def custom_op_model(with_symbolic: bool = False) -> torch.nn.Module:
    """A model whose forward is `custom_op_function(with_symbolic).apply(x)`, in eval mode.

    Taught in: 05_unsupported_operators.
    """
    return _classes().CustomOpModel(custom_op_function(with_symbolic)).eval()


def deform_conv_model(
    in_channels: int = 1, out_channels: int = 1, kernel_size: int = 3, seed: int = 0
) -> torch.nn.Module:
    """The seed's deformable-convolution sample: `conv1` predicts offsets, `conv2` is a
    torchvision `DeformConv2d` that samples the input at those offsets. Weights come
    from `torch.manual_seed(seed)` so every run builds the same model; eval mode.

    Taught in: 05_unsupported_operators.
    """
    import torch

    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("kernel_size", kernel_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CourseError(f"{name} must be a positive int, got {value!r}.")
    torch.manual_seed(seed)
    return _deform_conv_class()(in_channels, out_channels, kernel_size).eval()


# --------------------------------------------------------------------------- graph checks
def _as_model(model: Any) -> onnx.ModelProto:
    """Accept a ModelProto, an .onnx path, or the ONNXProgram that dynamo=True returns."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, str | os.PathLike):
        from .onnx_io import load_model

        return load_model(model, load_external_data=False)  # node lists need no weights
    if hasattr(model, "model_proto"):  # torch.onnx.ONNXProgram
        return model.model_proto
    raise CourseError(
        "Expected an onnx.ModelProto, the path of an .onnx file, or the ONNXProgram "
        f"returned by torch.onnx.export(..., dynamo=True); got {type(model).__name__}."
    )


def _qualified(domain: str, op_type: str) -> str:
    return op_type if domain in _DEFAULT_DOMAINS else f"{domain}::{op_type}"


def op_types(model: Any) -> list[str]:
    """The op types of a model's main graph, in node order; a custom domain is written
    `domain::op` (e.g. `custom_domain::customOp2`), the standard domain is left out.

    Accepts a ModelProto, an .onnx path, or an ONNXProgram. Taught in: 05_unsupported_operators.
    """
    return [_qualified(node.domain, node.op_type) for node in _as_model(model).graph.node]


def _opset_versions(model: onnx.ModelProto) -> dict[str, int]:
    versions = {("" if o.domain in _DEFAULT_DOMAINS else o.domain): o.version
                for o in model.opset_import}
    return versions


def unknown_ops(model: Any, opset: int | None = None) -> list[str]:
    """The ops of `model` that ONNX's operator schemas (`onnx.defs`) do not define.

    Each node is looked up with `onnx.defs.has(op_type, version, domain)`, where version
    is the model's opset import for that domain; `opset` overrides the standard domain's
    version ("would this model be valid at opset N?"). Ops the model defines itself as
    local functions count as known. A custom domain (e.g. `custom_domain::customOp2`) is
    unknown to ONNX by definition: a runtime needs its own kernel or plugin for it.
    Returns sorted, domain-qualified names. Taught in: 05_unsupported_operators.
    """
    proto = _as_model(model)
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool)
                              or not 1 <= opset <= onnx.defs.onnx_opset_version()):
        raise CourseError(
            f"opset must be an int from 1 to {onnx.defs.onnx_opset_version()} (the newest "
            f"this onnx {onnx.__version__} knows), got {opset!r}."
        )
    versions = _opset_versions(proto)
    if opset is not None:
        versions[""] = opset
    local = {(f.domain, f.name) for f in proto.functions}
    unknown = set()
    for node in proto.graph.node:
        domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
        if (node.domain, node.op_type) in local:
            continue
        version = versions.get(domain, 1)
        if not onnx.defs.has(node.op_type, version, domain):
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
