"""Which lane of the course this machine is in: GPU probe, requirements met, notebook gates.

The course has four lanes (the README's words):
- "CPU only": every ONNX lesson; fusion and quantization on onnxruntime.
- "NVIDIA GPU": CUDA and PyTorch, no TensorRT: adds real GPU timings and the Triton kernel.
- "TensorRT GPU machine": TensorRT 10/11 on a GPU of compute capability >= 7.5: builds and runs engines.
- "TensorRT-RTX": parses and builds engines even on a CPU; runs them on RTX-class GPUs.
A notebook declares what it needs in `metadata.course.requires` and a cell in its first line
(`%%requires gpu`); the names are `KNOWN_REQUIREMENTS`. This module probes the GPU, hands
its compute capability to `trt.find_tensorrt`, and says which requirements are met, so the
doctor, the `%%requires` cell magic and the test harness all sit above it.
Taught in: 00_environment_check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import CourseError
from .trt import TensorRTInfo, find_tensorrt

__all__ = [
    "GpuInfo", "gpu_info", "tensorrt_here", "capabilities", "KNOWN_REQUIREMENTS", "REQUIREMENT_MEANING",
    "notebook_requirements", "missing_requirements", "lane_name", "Lane", "current_lane", "rtx_installed",
]

#: What each requirement name means, in the words a learner reads in a skip message.
REQUIREMENT_MEANING: dict[str, str] = {
    "gpu": "an NVIDIA GPU visible to PyTorch (CUDA)",
    "tensorrt-builder": "TensorRT or TensorRT-RTX able to parse ONNX and build engines",
    "tensorrt-rtx": "TensorRT-RTX, which builds engines ahead of time on any machine (make setup installs it)",
    "tensorrt-runtime": "TensorRT (or TensorRT-RTX on an RTX GPU) able to run engines on this GPU",
    "tensorrt-plugins": "TensorRT 10/11's Python plugin API (tensorrt.plugin) on a GPU that runs engines",
}
#: Requirements a notebook or a cell can declare.
KNOWN_REQUIREMENTS: tuple[str, ...] = tuple(REQUIREMENT_MEANING)


@dataclass(frozen=True)
class GpuInfo:
    """The first CUDA device as torch sees it."""

    available: bool
    name: str | None = None
    capability: tuple[int, int] | None = None
    memory_gib: float | None = None
    cuda_version: str | None = None
    reason: str = ""


@lru_cache(maxsize=1)
def gpu_info() -> GpuInfo:
    """Ask torch whether CUDA works and describe the first GPU. Never raises.

    Taught in: 00_environment_check.
    """
    try:
        import torch
    except Exception as error:  # a broken torch install must not crash the doctor
        return GpuInfo(False, reason=f"torch is not importable ({error})")
    cuda_version = torch.version.cuda
    try:
        if not torch.cuda.is_available():
            return GpuInfo(False, cuda_version=cuda_version, reason="no NVIDIA GPU or driver visible to torch")
        props = torch.cuda.get_device_properties(0)
        return GpuInfo(True, props.name, (props.major, props.minor), round(props.total_memory / 2**30, 1),
                       cuda_version)
    except Exception as error:
        return GpuInfo(False, cuda_version=cuda_version, reason=f"CUDA query failed: {error}")


def tensorrt_here(gpu: GpuInfo | None = None) -> TensorRTInfo:
    """`find_tensorrt` for this machine's GPU (or for no GPU). Taught in: 00_environment_check."""
    gpu = gpu or gpu_info()
    return find_tensorrt(gpu.capability if gpu.available else None)


def capabilities(gpu: GpuInfo | None = None, tensorrt: TensorRTInfo | None = None) -> set[str]:
    """The requirements (`KNOWN_REQUIREMENTS`) this machine meets.

    Taught in: 00_environment_check; the test harness and `%%requires` use it to skip.
    """
    gpu = gpu or gpu_info()
    tensorrt = tensorrt or tensorrt_here(gpu)
    found = set()
    if gpu.available:
        found.add("gpu")
    if tensorrt.can_build:
        found.add("tensorrt-builder")
    if tensorrt.flavour == "tensorrt-rtx" or (tensorrt.flavour == "tensorrt" and rtx_installed()):
        found.add("tensorrt-rtx")  # TensorRT 11 is found first when both are installed
    if tensorrt.can_run:
        found.add("tensorrt-runtime")
        if tensorrt.has_plugin_api:
            found.add("tensorrt-plugins")
    return found


def rtx_installed() -> bool:
    """True when TensorRT-RTX's Python binding imports (beside TensorRT 11, say).

    Taught in: 00_environment_check.
    """
    from .trt import _try_import

    return any(_try_import(name)[0] is not None for name in ("tensorrt_rtx", "tensorrt_rtx_bindings"))


def _check_names(requires: list[str], where: str) -> list[str]:
    unknown = sorted(set(requires) - set(KNOWN_REQUIREMENTS))
    if unknown:
        raise CourseError(f"{where} declares unknown requirements {unknown}; use only {list(KNOWN_REQUIREMENTS)}.")
    return requires


def notebook_requirements(path: str | Path) -> list[str]:
    """What a notebook declares it needs (`metadata.course.requires`), validated.

    Reads the file as plain JSON, so the doctor works even where nbformat is missing.
    Taught in: 00_environment_check.
    """
    path = Path(path)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        requires = list(metadata.get("course", {}).get("requires", []))
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise CourseError(
            f"{path} is not a readable notebook ({type(error).__name__}: {error}). "
            "Restore it with `git checkout -- <file>`."
        ) from None
    return _check_names(requires, path.name)


def missing_requirements(requires: list[str] | tuple[str, ...], found: set[str] | None = None) -> list[str]:
    """Which of `requires` this machine lacks (validated names, sorted).

    Taught in: 00_environment_check.
    """
    _check_names(list(requires), "this cell")
    found = capabilities() if found is None else found
    return sorted(set(requires) - found)


#: Lane names exactly as the README's table writes them, most capable first.
_LANES = (
    ("TensorRT GPU machine", {"gpu", "tensorrt-runtime"}, "tensorrt"),
    ("TensorRT-RTX", {"tensorrt-rtx"}, "tensorrt-rtx"),
    ("NVIDIA GPU", {"gpu"}, None),
    ("CPU only", set(), None),
)


@dataclass(frozen=True)
class Lane:
    """The README's name for this machine's lane, what it adds, and the next step to take."""

    name: str
    can: tuple[str, ...]
    next_step: str

    def __str__(self) -> str:
        return f"{self.name}. Next: {self.next_step}"


def lane_name(found: set[str], flavour: str | None) -> str:
    """The README's lane name for a set of met requirements and a TensorRT flavour.

    Taught in: 00_environment_check.
    """
    for name, needs, wanted_flavour in _LANES:
        if needs <= found and (wanted_flavour is None or wanted_flavour == flavour):
            return name
    return "CPU only"


def current_lane(gpu: GpuInfo | None = None, tensorrt: TensorRTInfo | None = None) -> Lane:
    """This machine's lane in the README's words, with the one next step that adds the most.

    Taught in: 00_environment_check (and printed by `make doctor`).
    """
    gpu = gpu or gpu_info()
    tensorrt = tensorrt or tensorrt_here(gpu)
    found = capabilities(gpu, tensorrt)
    name = lane_name(found, tensorrt.flavour)
    if name == "TensorRT GPU machine":
        step = "every notebook runs here; start with 00_environment_check.ipynb."
    elif gpu.available:
        step = ("add TensorRT 11 for engines on this GPU: pip install -e '.[tensorrt]' "
                "(tensorrt-cu13==11.4.0.106, driver r580+).")
    elif tensorrt.can_build:
        step = ("every CPU lesson runs here, and notebook 08 builds real engines on this CPU; "
                "running them needs an NVIDIA GPU.")
    else:
        step = "install TensorRT-RTX to build engines on this CPU: pip install -e '.[rtx]' (make setup does)."
    return Lane(name, tuple(sorted(found)), step)
