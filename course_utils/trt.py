"""The one door to TensorRT: find which flavour is installed and what this machine can do with it.

Two flavours exist and the course supports both:
- TensorRT 10/11 (`import tensorrt`): builds and runs engines on NVIDIA GPUs (compute capability >= 7.5).
- TensorRT-RTX (`import tensorrt_rtx`, or its binding module `tensorrt_rtx_bindings`): parses
  ONNX and builds engines ahead of time even on a CPU-only machine; running an engine needs
  an RTX-class GPU (compute capability 8.0, 8.6, 8.9, 12.0 or 12.1; not H100/H200).
Everything else in the course reaches TensorRT through `import_tensorrt()` here, so a
missing install gives one clear message with the real install command.
Taught in: 00_environment_check (flavours and lanes), 05_unsupported_operators (parse), 08 (engines).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import CourseError, MissingDependencyError

__all__ = [
    "TensorRTInfo", "find_tensorrt", "import_tensorrt", "missing_tensorrt_error", "ParseResult", "parse_onnx",
]

INSTALL_TENSORRT = "pip install tensorrt-cu13   # TensorRT 11 for CUDA 13 (NVIDIA GPU, driver r580+)"
INSTALL_TENSORRT_RTX = (
    "pip install tensorrt-rtx-cu13-libs==1.7.1.116 tensorrt-rtx-cu13-bindings==1.7.1.116"
    "   # or: pip install -e '.[rtx]'"
)
#: Compute capabilities TensorRT-RTX 1.7's runtime accepts (it refuses 9.0, the H100/H200).
RTX_RUNTIME_CAPABILITIES = ((8, 0), (8, 6), (8, 9), (12, 0), (12, 1))
#: TensorRT 11 needs Turing or newer.
TENSORRT_MIN_CAPABILITY = (7, 5)

# (flavour, module name), in the order they are tried.
_CANDIDATES = (
    ("tensorrt", "tensorrt"),
    ("tensorrt-rtx", "tensorrt_rtx"),
    ("tensorrt-rtx", "tensorrt_rtx_bindings"),
)


@dataclass(frozen=True)
class TensorRTInfo:
    """Which TensorRT is importable here and what it can do on this machine."""

    flavour: str | None  # "tensorrt", "tensorrt-rtx" or None
    module_name: str | None
    version: str | None
    can_build: bool
    can_run: bool
    explanation: str
    problems: tuple[str, ...] = field(default=())
    has_plugin_api: bool = False  # tensorrt.plugin (TensorRT 10/11 Python plugins); TensorRT-RTX has none

    def __str__(self) -> str:
        if self.flavour is None:
            return f"TensorRT: not installed. {self.explanation}"
        return f"{self.flavour} {self.version} (import {self.module_name}): {self.explanation}"


def _try_import(name: str) -> tuple[ModuleType | None, str | None]:
    try:
        module = importlib.import_module(name)
    except Exception as error:  # a stub package raises all sorts of errors, not only ImportError
        return None, f"import {name} failed: {type(error).__name__}: {error}".splitlines()[0]
    if not hasattr(module, "Builder"):  # metapackage stubs import but carry no API
        return None, f"import {name} gave a module without TensorRT's API (a stub package?)"
    return module, None


def _has_plugin_api(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{module_name}.plugin") is not None
    except (ImportError, ValueError):
        return False


def find_tensorrt(capability: tuple[int, int] | None) -> TensorRTInfo:
    """Find the installed TensorRT flavour and say whether it can build and run engines.

    `capability` is the GPU's compute capability, or None for "no GPU"; `cu.tensorrt_here()`
    passes this machine's. Never raises. Taught in: 00_environment_check.
    """
    problems: list[str] = []
    for flavour, name in _CANDIDATES:
        module, problem = _try_import(name)
        if module is None:
            problems.append(problem or "")
            continue
        version = str(getattr(module, "__version__", "unknown"))
        if flavour == "tensorrt":
            ok = capability is not None and tuple(capability) >= TENSORRT_MIN_CAPABILITY
            if ok:
                why = "builds and runs engines on this GPU."
            elif capability is None:
                why = "installed, but TensorRT 11 needs an NVIDIA GPU to build or run engines."
            else:
                why = f"this GPU (compute capability {capability[0]}.{capability[1]}) is too old."
            plugins = ok and _has_plugin_api(name)
            return TensorRTInfo(flavour, name, version, ok, ok, why, tuple(problems), plugins)
        runs = capability is not None and tuple(capability) in RTX_RUNTIME_CAPABILITIES
        if runs:
            why = "parses and builds on any machine and runs engines on this GPU."
        elif capability is None:
            why = "parses ONNX and builds engines on this CPU-only machine; running needs a GPU."
        else:
            supported = ", ".join(f"{a}.{b}" for a, b in RTX_RUNTIME_CAPABILITIES)
            why = (
                f"parses and builds here, but its runtime refuses compute capability "
                f"{capability[0]}.{capability[1]} (it supports {supported}); use TensorRT 11 "
                f"on this GPU: {INSTALL_TENSORRT}"
            )
        return TensorRTInfo(flavour, name, version, True, runs, why, tuple(problems))
    why = (
        "Neither TensorRT nor TensorRT-RTX is importable. On an NVIDIA GPU machine: "
        f"{INSTALL_TENSORRT}. To parse and build on any machine: {INSTALL_TENSORRT_RTX}"
    )
    return TensorRTInfo(None, None, None, False, False, why, tuple(problems))


def import_tensorrt() -> ModuleType:
    """Return the TensorRT Python module (TensorRT 10/11 first, then TensorRT-RTX).

    Raises `MissingDependencyError` with both install commands when neither is installed.
    Taught in: 05_unsupported_operators, 08_first_engines.
    """
    for _, name in _CANDIDATES:
        module, _problem = _try_import(name)
        if module is not None:
            return module
    raise missing_tensorrt_error()


def missing_tensorrt_error() -> MissingDependencyError:
    """The error every TensorRT cell of the course raises when no TensorRT flavour is installed.

    Taught in: 00_environment_check.
    """
    return MissingDependencyError(
        "TensorRT",
        f"{INSTALL_TENSORRT}\n  or, to parse and build without a GPU:\n    {INSTALL_TENSORRT_RTX}",
        needed_for="parsing ONNX into a TensorRT network and building engines",
    )


@dataclass
class ParseResult:
    """What TensorRT's ONNX parser made of a file: the layer count, or its errors."""

    path: Path
    flavour: str
    num_layers: int
    errors: list[str]
    log: list[str] = field(default_factory=list)  # what TensorRT's logger said (kept, not printed)

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path.name}: parsed into {self.num_layers} TensorRT layers ({self.flavour})"
        listed = "\n  ".join(self.errors)
        return f"{self.path.name}: TensorRT's parser failed ({self.flavour}):\n  {listed}"


def parse_onnx(path: str | os.PathLike[str]) -> ParseResult:
    """Parse an ONNX file with TensorRT's own `OnnxParser` and collect its real error messages.

    Taught in: 05_unsupported_operators (an op without a plugin), 08_first_engines.
    """
    onnx_path = Path(path)
    if not onnx_path.is_file():
        raise CourseError(f"No ONNX file at {onnx_path}. Export or build the model first.")
    trt = import_tensorrt()
    logger = _collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # every network is strongly typed in TensorRT 11 / RTX
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    if not ok and not errors:
        errors = ["the parser returned False without an error message"]
    flavour = "tensorrt" if trt.__name__ == "tensorrt" else "tensorrt-rtx"
    return ParseResult(onnx_path, flavour, network.num_layers if ok else 0, errors, logger.messages)


def _collecting_logger(trt: ModuleType) -> Any:
    """An `ILogger` that keeps TensorRT's messages instead of printing them to stderr,
    so notebook outputs show the parser's errors once, through `ParseResult`."""

    class CollectingLogger(trt.ILogger):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: Any, message: str) -> None:
            if severity <= trt.ILogger.Severity.WARNING:
                self.messages.append(f"[{severity.name}] {message}")

    return CollectingLogger()
