"""The one door to TensorRT: find which flavour is installed and what this machine can do with it.

Two flavours exist and the course supports both:
- TensorRT 10/11 (`import tensorrt`): builds and runs engines on NVIDIA GPUs (compute capability >= 7.5).
  `pip install tensorrt-cu13` installs `tensorrt` on top of two wheels, the Python binding
  (`tensorrt_bindings`, tensorrt-cu13-bindings) and NVIDIA's libraries (tensorrt-cu13-libs). The
  binding alone cannot be imported (it needs the libraries), so it never counts as installed.
- TensorRT-RTX (`import tensorrt_rtx`, or its binding module `tensorrt_rtx_bindings`): parses
  ONNX and builds engines ahead of time even on a CPU-only machine; running an engine needs
  an RTX-class GPU (compute capability 8.0, 8.6, 8.9, 12.0 or 12.1; not H100/H200).
Everything else in the course reaches TensorRT through `import_tensorrt()` here, so a
missing install gives one clear message with the real install command. Building, running and
inspecting engines is in `course_utils.engines`.
Taught in: 00_environment_check (flavours and lanes), 08_first_engines (engines).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from types import ModuleType

from .errors import CourseError, MissingDependencyError

__all__ = [
    "TensorRTInfo", "find_tensorrt", "import_tensorrt", "missing_tensorrt_error", "flavour_of", "FLAVOURS",
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
#: The two flavours, as `import_tensorrt(flavour)` and `TensorRTInfo.flavour` name them.
FLAVOURS = ("tensorrt", "tensorrt-rtx")

# (flavour, module name), in the order they are tried. `tensorrt_bindings` is what the
# `tensorrt` package re-exports; it imports only where NVIDIA's libraries are installed too.
_CANDIDATES = (
    ("tensorrt", "tensorrt"),
    ("tensorrt", "tensorrt_bindings"),
    ("tensorrt-rtx", "tensorrt_rtx"),
    ("tensorrt-rtx", "tensorrt_rtx_bindings"),
)
_INSTALL = {"tensorrt": INSTALL_TENSORRT, "tensorrt-rtx": INSTALL_TENSORRT_RTX}


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


def flavour_of(module: ModuleType) -> str:
    """The flavour ("tensorrt" or "tensorrt-rtx") of an imported TensorRT module.

    Taught in: 08_first_engines.
    """
    return "tensorrt-rtx" if module.__name__.split(".")[0].startswith("tensorrt_rtx") else "tensorrt"


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


def import_tensorrt(flavour: str | None = None) -> ModuleType:
    """Return the TensorRT Python module: TensorRT 10/11 first, then TensorRT-RTX.

    `flavour="tensorrt"` or `"tensorrt-rtx"` asks for that one (notebook 08 builds its CPU part
    with TensorRT-RTX even where TensorRT 11 is installed too). Raises `MissingDependencyError`
    with the install command(s) when it is not installed.
    Taught in: 05_unsupported_operators, 08_first_engines.
    """
    if flavour is not None and flavour not in FLAVOURS:
        raise CourseError(f"import_tensorrt(flavour={flavour!r}): use one of {FLAVOURS} or None.")
    for candidate, name in _CANDIDATES:
        if flavour is None or candidate == flavour:
            module, _problem = _try_import(name)
            if module is not None:
                return module
    raise missing_tensorrt_error(flavour)


def missing_tensorrt_error(flavour: str | None = None) -> MissingDependencyError:
    """The error every TensorRT cell of the course raises when no TensorRT flavour is installed.

    With `flavour`, the error names that flavour's install command only.
    Taught in: 00_environment_check.
    """
    if flavour == "tensorrt-rtx":
        return MissingDependencyError("TensorRT-RTX", INSTALL_TENSORRT_RTX,
                                      needed_for="building engines ahead of time, on any machine")
    if flavour == "tensorrt":
        return MissingDependencyError("TensorRT 11", INSTALL_TENSORRT,
                                      needed_for="building and running engines on this NVIDIA GPU")
    return MissingDependencyError(
        "TensorRT",
        f"{INSTALL_TENSORRT}\n  or, to parse and build without a GPU:\n    {INSTALL_TENSORRT_RTX}",
        needed_for="parsing ONNX into a TensorRT network and building engines",
    )
