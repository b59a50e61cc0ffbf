"""The GPU lane on a machine with no internet and its own Python (a classroom GPU box, a cluster node).

Two commands, for instructors who prepare offline machines:

    # here, with internet: the course's packages as wheels for the GPU machine's Python
    python -m course_utils wheelhouse --python-version 3.12 --have gpu-pip-freeze.txt --out wheelhouse
    # there, offline: install them beside the machine's own torch, then run every notebook under nbval
    python3 -m course_utils gpu-lane --wheelhouse wheelhouse

`--have` is the output of `python3 -m pip freeze` (or `pip list --format=freeze`, or bare names)
on the GPU machine. Its torch, torchvision, numpy and friends are kept (a CUDA build of torch is
gigabytes and belongs to that machine); the course's ONNX/TensorRT tool chain and test tools are
brought at the versions the course pins, whatever the machine has, so the lessons behave as
tested. Nothing is downloaded on the GPU machine. `gpu-lane` installs the wheels into
`build/gpu-site/` (never into the machine's Python), then runs the notebooks and their student
editions under pytest with the course's harness (`--require-all-runnable`): cells that need what
the machine lacks are skipped with the reason, and the harness writes its run report.
Plumbing: `make wheelhouse`, `make gpu-lane`; the README's "GPU lane" section.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from ..errors import CourseError
from ..paths import build_dir, repo_root

__all__ = ["lane_requirements", "choose_wheels", "read_have", "main"]

#: Kept from the GPU machine when it has them: its CUDA build of torch and the scientific stack
#: compiled against it. Everything else the course pins is brought at the pinned version.
KEEP_FROM_MACHINE = frozenset({
    "torch", "torchvision", "triton", "numpy", "scipy", "scikit-learn", "matplotlib", "pillow",
    "protobuf", "pyyaml", "pytest", "tqdm", "ml-dtypes", "psutil", "packaging", "jinja2", "pygments",
})
#: Not needed to run the notebooks under nbval (the UI, linters, the name-check wheel, TensorRT itself).
NOT_FOR_THE_LANE = frozenset({
    "torch", "torchvision", "triton",  # the GPU machine's own CUDA builds: never carried
    "jupyterlab", "ruff", "tensorrt-cu13-bindings", "tensorrt-cu13", "tensorrt-rtx-cu13-libs",
    "tensorrt-rtx-cu13-bindings", "mutmut",
})
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lane_requirements(pyproject: Path | None = None) -> dict[str, str]:
    """name -> pinned version of every package the GPU lane runs with (runtime + dev pins).

    Plumbing: `make wheelhouse`.
    """
    data = tomllib.loads((pyproject or repo_root() / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = list(data["dependencies"]) + list(data["optional-dependencies"].get("dev", []))
    wanted = {}
    for pin in pins:
        name, _, version = pin.partition("==")
        if _normal(name) not in NOT_FOR_THE_LANE:
            wanted[_normal(name)] = version.split(";")[0].strip()
    return wanted


def read_have(path: Path | None) -> dict[str, str | None]:
    """What the GPU machine already has: name -> version (None when only the name is known).

    Plumbing: `make wheelhouse`.
    """
    if path is None:
        return {}
    if not path.is_file():
        raise CourseError(f"No package list at {path}. On the GPU machine run: python3 -m pip freeze > {path.name}")
    have: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        found = _NAME.match(line)
        if not found or line.startswith("-"):
            continue
        version = line.split("==", 1)[1].strip() if "==" in line else None
        have[_normal(found.group(1))] = version
    return have


def choose_wheels(wanted: dict[str, str], have: dict[str, str | None]) -> dict[str, str]:
    """The pinned packages to bring: all but those the machine keeps (`KEEP_FROM_MACHINE`) and
    those it already has at exactly the pinned version. Plumbing: `make wheelhouse`."""
    bring = {}
    for name, version in wanted.items():
        if name in have and (name in KEEP_FROM_MACHINE or have[name] == version):
            continue
        bring[name] = version
    return bring


def _platform_args(python_version: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                "manylinux1_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64", "manylinux_2_24_x86_64",
                "any"):
        args += ["--platform", tag]
    return args


def build_wheelhouse(out: Path, python_version: str, have_file: Path | None) -> list[Path]:
    """Download the lane's wheels for `python_version` into `out` (with their dependencies, minus
    what the GPU machine has). Plumbing: `make wheelhouse`."""
    have = read_have(have_file)
    bring = choose_wheels(lane_requirements(), have)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{name}=={version}\n" for name, version in sorted(bring.items())))
        # Resolve dependencies against the machine: what it has satisfies them (a constraints file
        # would pin them), so pip only fetches what is missing there.
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", tmp,
                   *_platform_args(python_version), "-r", str(requirements)]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise CourseError("pip could not download the lane's wheels:\n" + completed.stderr[-3000:])
        kept = []
        for wheel in sorted(Path(tmp).glob("*.whl")):
            name = _normal(wheel.name.split("-")[0])
            if name in have and name not in bring:
                continue  # the GPU machine has it; use its copy
            shutil.copy2(wheel, out / wheel.name)
            kept.append(out / wheel.name)
    (out / "BROUGHT.txt").write_text(
        "# Wheels for the course's GPU lane (python -m course_utils gpu-lane --wheelhouse <this folder>)\n"
        f"# Python {python_version}; kept from the machine: {', '.join(sorted(set(have) & KEEP_FROM_MACHINE))}\n"
        + "".join(f"{p.name}\n" for p in kept)
    )
    return kept


def run_gpu_lane(wheelhouse: Path | None, pytest_args: list[str], install_only: bool = False) -> int:
    """Install the wheelhouse into build/gpu-site (if given) and run the notebooks under nbval.

    Wheels installed earlier into build/gpu-site stay (a wheelhouse may come in parts).
    Plumbing: `make gpu-lane`.
    """
    env = dict(os.environ)
    paths = [str(repo_root())]
    site = build_dir("gpu-site")
    if wheelhouse is not None:
        wheels = sorted(Path(wheelhouse).glob("*.whl"))
        if not wheels:
            raise CourseError(f"No wheels in {wheelhouse}; build them with `make wheelhouse` where there is internet.")
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--disable-pip-version-check", "--upgrade", "--target", str(site), *map(str, wheels)]
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise CourseError("Installing the wheelhouse failed:\n" + completed.stderr[-3000:])
        print(f"installed {len(wheels)} wheels into {site.relative_to(repo_root())}", flush=True)
    if install_only:
        return 0
    if any(site.iterdir()):
        paths.insert(0, str(site))
        env["PATH"] = str(site / "bin") + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    command = [sys.executable, "-m", "pytest", "--require-all-runnable", "-p", "no:cacheprovider",
               "notebooks", "tests/test_student_edition.py", *pytest_args]
    print("$", " ".join(command[2:]), flush=True)
    return subprocess.call(command, cwd=repo_root(), env=env)


def main(argv: list[str] | None = None) -> int:
    """`python -m course_utils wheelhouse ...` and `python -m course_utils gpu-lane ...`. Plumbing: make gpu-lane."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else ""
    if command == "wheelhouse":
        parser = argparse.ArgumentParser(prog="python -m course_utils wheelhouse")
        parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (e.g. 3.12)")
        parser.add_argument("--have", type=Path, default=None, help="`pip freeze` of the GPU machine")
        parser.add_argument("--out", type=Path, default=Path("wheelhouse"))
        args = parser.parse_args(argv)
        kept = build_wheelhouse(args.out, args.python_version, args.have)
        size = sum(p.stat().st_size for p in kept) / 2**20
        print(f"{len(kept)} wheels ({size:.1f} MiB) in {args.out}; on the GPU machine run:\n"
              f"    python3 -m course_utils gpu-lane --wheelhouse {args.out}")
        return 0
    if command == "gpu-lane":
        parser = argparse.ArgumentParser(prog="python -m course_utils gpu-lane")
        parser.add_argument("--wheelhouse", type=Path, default=None, help="folder made by `make wheelhouse`")
        parser.add_argument("--install-only", action="store_true", help="install the wheels, run nothing")
        args, rest = parser.parse_known_args(argv)
        return run_gpu_lane(args.wheelhouse, rest, args.install_only)
    print("use: wheelhouse [--python-version V] [--have FILE] [--out DIR] | gpu-lane [--wheelhouse DIR]",
          file=sys.stderr)
    return 2
