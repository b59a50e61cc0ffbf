"""The six bugs that survived the last audit (issue 17), planted back one at a time.

Each case copies `course_utils` into a temporary folder, applies one exact source
replacement (the bug), and runs the matching unit-test file against the copy with
PYTHONPATH pointing at it: some test there must fail. A replacement whose target text is
gone fails here too, saying so, because then nothing proves the bug is still caught.
The control case runs the same test files against an unchanged copy: they must pass, so a
"kill" is the bug's doing and not the copy's.
Deselect with `-m "not planted_bugs"`; `make test` runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import course_utils as cu

pytestmark = pytest.mark.planted_bugs

ROOT = cu.repo_root()
# Not linked into the copy: the package (copied instead), generated and private folders.
_NOT_LINKED = {"course_utils", ".git", ".venv", "models", "build", "mutants", "__pycache__", "conftest.py"}


@dataclass(frozen=True)
class Bug:
    id: str
    what: str
    module: str  # file under course_utils/
    old: str  # exact text, present exactly once
    new: str
    tests: str  # the unit-test file that must catch it


BUGS = [
    Bug("fusion-stride", "merge_parallel_convs does not check stride", "fusion.py",
        '"in_channels", "kernel_size", "stride", "padding"', '"in_channels", "kernel_size", "padding"',
        "tests/test_fusion.py"),
    Bug("quantize-floor", "quantize rounds with floor instead of round", "quantization.py",
        "q = np.round(x / scale) + zero_point", "q = np.floor(x / scale) + zero_point",
        "tests/test_quantization.py"),
    Bug("export-rtol", "verify_onnx_export drops its relative-tolerance term", "export.py",
        "diff <= tolerance + rtol * np.abs(want64)", "diff <= tolerance",
        "tests/test_export.py"),
    Bug("load-offset", "load_model's truncation check ignores the data offset", "onnx_io.py",
        'int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)', 'int(info.get("length", 0) or 0)',
        "tests/test_onnx_io.py"),
    Bug("conv-groups", "conv2d_cost ignores groups in the weight bytes", "roofline.py",
        "+ out_channels * (in_channels // groups) * kernel_size**2", "+ out_channels * in_channels * kernel_size**2",
        "tests/test_roofline.py"),
    Bug("autotune-nan", "autotune lets a NaN output pass its correctness gate", "timing.py",
        "if not (_all_finite(output) and diffs[name] <= atol):", "if diffs[name] > atol:",
        "tests/test_timing.py"),
]


def _copy(tmp: Path) -> Path:
    """A copy of the repository in which only course_utils is a real copy (the rest is linked)."""
    root = tmp / "repo"
    root.mkdir()
    shutil.copytree(ROOT / "course_utils", root / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ROOT.iterdir():
        if entry.name not in _NOT_LINKED and not entry.name.endswith(".egg-info"):
            (root / entry.name).symlink_to(entry)
    return root


def _run_tests(root: Path, tests: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "COURSE_MODELS_DIR": str(root / "models"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    # --noconftest: the course's harness plugin (loaded by conftest.py) guards real runs, not this one.
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--noconftest", *tests]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _plant(root: Path, bug: Bug) -> None:
    path = root / "course_utils" / bug.module
    source = path.read_text(encoding="utf-8")
    count = source.count(bug.old)
    assert count == 1, (
        f"the planted bug {bug.id!r} ({bug.what}) must be updated: its target text occurs {count} times "
        f"in course_utils/{bug.module} (the code changed). Target: {bug.old!r}")
    planted = source.replace(bug.old, bug.new)
    compile(planted, str(path), "exec")
    path.write_text(planted, encoding="utf-8")


def test_the_unchanged_copy_passes_the_same_tests(tmp_path) -> None:
    root = _copy(tmp_path)
    result = _run_tests(root, sorted({bug.tests for bug in BUGS}))
    assert result.returncode == 0, "the copy is no fair baseline:\n" + result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.id)
def test_the_planted_bug_is_caught(bug: Bug, tmp_path) -> None:
    root = _copy(tmp_path)
    _plant(root, bug)
    result = _run_tests(root, [bug.tests])
    assert result.returncode != 0, (
        f"planted bug survives: {bug.what} (course_utils/{bug.module}: {bug.old!r} -> {bug.new!r}); "
        f"every test in {bug.tests} still passes. Add a known-answer test that this bug breaks.")
    assert result.returncode == 1, (
        f"{bug.tests} did not run cleanly against the planted copy (exit {result.returncode}):\n"
        + result.stdout[-3000:] + result.stderr[-2000:])
    killers = re.findall(r"^FAILED (\S+)", result.stdout, re.MULTILINE)
    print(f"{bug.id}: caught by {', '.join(killers) or '(see output)'}")
