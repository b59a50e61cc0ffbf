"""The doctor: `python -m course_utils doctor` (`make doctor`) says what this machine has,
which lane of the course it is in (the README's words), which notebooks run, and what to do next.

It sits on top of `lanes` (GPU probe, requirements) and `trt` (the TensorRT flavour) and
never crashes on a missing package: it reports it with its install command.
Taught in: 00_environment_check.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from dataclasses import asdict, dataclass, field

from .lanes import GpuInfo, capabilities, current_lane, gpu_info, notebook_requirements, tensorrt_here
from .paths import list_notebooks
from .trt import TensorRTInfo

__all__ = ["package_versions", "DoctorReport", "doctor", "COURSE_PACKAGES"]

#: Distribution name -> (what the course uses it for, install command).
COURSE_PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("models and export (every notebook)", "pip install torch==2.14.1"),
    "torchvision": ("model zoo (01, 03, 04)", "pip install torchvision==0.29.1"),
    "onnx": ("the ONNX format (02-07)", "pip install onnx==1.23.2"),
    "onnxruntime": ("running ONNX on CPU (01-05)", "pip install onnxruntime==1.32.0"),
    "onnxscript": ("the dynamo exporter (02, 05)", "pip install onnxscript==0.7.2"),
    "onnxsim": ("onnx-simplifier (03)", "pip install onnxsim==0.8.1"),
    "onnxslim": ("onnxslim (03)", "pip install onnxslim==0.1.98"),
    "onnx-graphsurgeon": ("graph surgery (06, 07)", "pip install onnx-graphsurgeon==0.6.1"),
    "polygraphy": ("inspect and compare (07, 08)", "pip install polygraphy==0.53.6"),
    "netron": ("model viewer (02, 03)", "pip install netron==9.3.3"),
    "matplotlib": ("plots (01, 03, 09)", "pip install matplotlib==3.11.2"),
}


def package_versions() -> dict[str, str | None]:
    """Installed version of each course package (None when missing), without importing them.

    Taught in: 00_environment_check.
    """
    versions: dict[str, str | None] = {}
    for name in COURSE_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass
class DoctorReport:
    """Everything `doctor()` found, printable for people and convertible to JSON for machines."""

    python: str
    platform: str
    gpu: GpuInfo
    packages: dict[str, str | None]
    tensorrt: TensorRTInfo
    capabilities: list[str]
    lane: str  # the README's lane name
    next_step: str
    notebooks: dict[str, list[str]]  # notebook -> missing requirements (empty = runs fully)
    problems: list[str] = field(default_factory=list)

    @property
    def runnable_notebooks(self) -> list[str]:
        return [name for name, missing in self.notebooks.items() if not missing]

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"runnable_notebooks": self.runnable_notebooks}, indent=2)

    def __str__(self) -> str:
        lines = [f"Python      {self.python} on {self.platform}"]
        torch_version = self.packages.get("torch")
        if self.gpu.available:
            cap = self.gpu.capability or (0, 0)
            gpu = f"{self.gpu.name}, compute capability {cap[0]}.{cap[1]}, {self.gpu.memory_gib} GiB"
        else:
            gpu = f"none ({self.gpu.reason})"
        lines.append(f"torch       {torch_version or 'MISSING'} (CUDA build {self.gpu.cuda_version})")
        lines.append(f"GPU         {gpu}")
        for name, version in self.packages.items():
            if name != "torch":
                lines.append(f"{name:<18}{version or 'MISSING'}")
        lines.append(f"TensorRT    {self.tensorrt}")
        if self.notebooks:
            lines.append("Notebooks:")
            for name, missing in self.notebooks.items():
                status = "runs fully" if not missing else "its " + ", ".join(missing) + " parts are skipped here"
                lines.append(f"  {name:<40} {status}")
        if self.problems:
            lines.append("To fix:")
            lines.extend(f"  - {problem}" for problem in self.problems)
        lines.append("")
        lines.append(f"Your lane:  {self.lane}  (README, 'Lanes: what your machine can run')")
        lines.append(f"Next step:  {self.next_step}")
        return "\n".join(lines)


def doctor() -> DoctorReport:
    """Check this machine for the course: packages, GPU, TensorRT flavour, lane, runnable notebooks.

    Never raises on a missing or broken package; each problem comes with its fix.
    Taught in: 00_environment_check.
    """
    gpu = gpu_info()
    tensorrt = tensorrt_here(gpu)
    found = capabilities(gpu, tensorrt)
    lane = current_lane(gpu, tensorrt)
    packages = package_versions()
    problems = [
        f"{name} is missing ({COURSE_PACKAGES[name][0]}): {COURSE_PACKAGES[name][1]}"
        for name, version in packages.items()
        if version is None
    ]
    if tensorrt.flavour is None:
        problems.append(f"optional: {tensorrt.explanation}")
    next_step = lane.next_step
    if any(version is None for version in packages.values()):
        next_step = "install the missing packages: run `make setup` (or pip install -e '.[dev,rtx]')."
    notebooks: dict[str, list[str]] = {}
    try:
        for path in list_notebooks():
            notebooks[path.name] = sorted(set(notebook_requirements(path)) - found)
    except Exception as error:  # a damaged notebook file must not stop the report
        problems.append(f"could not read the notebooks' requirements: {error}")
    return DoctorReport(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        gpu=gpu,
        packages=packages,
        tensorrt=tensorrt,
        capabilities=sorted(found),
        lane=lane.name,
        next_step=next_step,
        notebooks=notebooks,
        problems=problems,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m course_utils doctor [--json]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_utils doctor", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = doctor()
    print(report.to_json() if args.json else report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
