"""The doctor: a full report on this machine, and no crash when something is missing."""

from __future__ import annotations

import builtins
import importlib
import importlib.metadata
import json
import subprocess
import sys

import pytest

import course_utils as cu
from course_utils import environment, lanes


def test_doctor_reports_this_machine() -> None:
    report = cu.doctor()
    assert report.python.count(".") == 2
    assert set(report.packages) == set(environment.COURSE_PACKAGES)
    assert all(report.packages.values()), report.problems
    assert "00_environment_check.ipynb" in report.runnable_notebooks
    text = str(report)
    for word in ("torch", "GPU", "TensorRT", "Notebooks:", "onnxruntime"):
        assert word in text


def test_doctor_names_the_install_command_of_a_missing_package(monkeypatch) -> None:
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name in ("onnxsim", "netron"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(environment.importlib.metadata, "version", version)
    report = cu.doctor()
    assert report.packages["onnxsim"] is None and report.packages["netron"] is None
    assert any("pip install onnxsim==0.8.1" in p for p in report.problems)
    assert any("pip install netron==9.3.3" in p for p in report.problems)
    assert "MISSING" in str(report)


def test_gpu_info_without_torch_does_not_crash(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    lanes.gpu_info.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_torch)
    try:
        info = lanes.gpu_info()
    finally:
        lanes.gpu_info.cache_clear()
    assert not info.available and "torch is not importable" in info.reason


def test_capabilities_follow_gpu_and_tensorrt() -> None:
    no_gpu = lanes.GpuInfo(False, reason="none")
    gpu = lanes.GpuInfo(True, "RTX", (8, 6))
    none = cu.TensorRTInfo(None, None, None, False, False, "missing")
    rtx = cu.TensorRTInfo("tensorrt-rtx", "m", "1", True, True, "ok")
    assert cu.capabilities(no_gpu, none) == set()
    assert cu.capabilities(gpu, none) == {"gpu"}
    assert cu.capabilities(gpu, rtx) == {"gpu", "tensorrt-builder", "tensorrt-runtime"}


def test_doctor_command_line_json() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "course_utils", "doctor", "--json"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    data = json.loads(completed.stdout)
    assert {"gpu", "packages", "tensorrt", "notebooks", "runnable_notebooks"} <= set(data)


def test_unknown_command_is_refused() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "course_utils", "nonsense"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2 and "doctor" in completed.stderr


def test_a_stage_with_a_missing_package_fails_clearly(monkeypatch) -> None:
    monkeypatch.setitem(cu._NAMES, "render_fake_png", "stage_whose_package_is_missing")
    with pytest.raises(cu.MissingDependencyError, match="(?s)course_utils.stage_whose_package_is_missing.*pip install"):
        cu.__getattr__("render_fake_png")
    with pytest.raises(AttributeError, match="no attribute 'typo'$"):
        cu.__getattr__("typo")


def test_import_course_utils_is_light() -> None:
    # Heavy packages load only when a stage that needs them is first used.
    code = ("import sys, course_utils as cu; cu.model_path; cu.expect_error; "
            "heavy = sorted({'torch', 'onnx', 'onnxruntime', 'matplotlib', 'numpy'} & set(sys.modules)); "
            "print(','.join(heavy))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert completed.stdout.strip() == "", f"import course_utils pulled in {completed.stdout.strip()}"


def test_every_public_name_resolves_to_its_stage() -> None:
    for name, stage in cu._NAMES.items():
        module = importlib.import_module(f"course_utils.{stage}")
        assert getattr(cu, name) is getattr(module, name), name


def test_doctor_runs_in_a_bare_python_and_names_every_fix(tmp_path) -> None:
    # -S hides site-packages: no torch, onnx, nbformat... exactly a fresh machine's Python.
    completed = subprocess.run(
        [sys.executable, "-S", "-m", "course_utils", "doctor"], cwd=tmp_path,
        env={"PYTHONPATH": str(cu.repo_root()), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    assert "torch is missing" in completed.stdout and "pip install torch==2.14.1" in completed.stdout
    assert "pip install tensorrt-cu13" in completed.stdout
