"""The doctor: a full report on this machine, and no crash when something is missing."""

from __future__ import annotations

import builtins
import importlib
import importlib.metadata
import json
import platform
import subprocess
import sys

import pytest

import course_utils as cu
from course_utils import environment, lanes


def test_doctor_reports_this_machine() -> None:
    report = cu.doctor()
    assert report.python == platform.python_version()
    assert report.packages == {name: importlib.metadata.version(name) for name in environment.COURSE_PACKAGES}
    assert report.capabilities == sorted(cu.capabilities()) and report.lane == cu.current_lane().name
    assert "00_environment_check.ipynb" in report.runnable_notebooks
    text = str(report)
    assert f"Your lane:  {report.lane}  (README" in text and f"Next step:  {report.next_step}" in text
    assert f"torch       {report.packages['torch']} (CUDA build {report.gpu.cuda_version})" in text
    for name, version in report.packages.items():
        if name != "torch":
            assert f"{name:<18}{version}" in text
    for name, missing in report.notebooks.items():
        status = "runs fully" if not missing else "its " + ", ".join(missing) + " parts are skipped here"
        assert f"  {name:<40} {status}" in text
    gpu = report.gpu
    if gpu.available:
        assert f"GPU         {gpu.name}, compute capability {gpu.capability[0]}.{gpu.capability[1]}" in text
    else:
        assert f"GPU         none ({gpu.reason})" in text


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
    assert cu.capabilities(gpu, rtx) == {"gpu", "tensorrt-builder", "tensorrt-rtx", "tensorrt-runtime"}


def test_capabilities_of_every_lane_and_its_name(monkeypatch) -> None:
    # TensorRT 11's row must not depend on whether this machine also has TensorRT-RTX (CI has it).
    monkeypatch.setattr(lanes, "rtx_installed", lambda: False)
    # One row per lane of the README's table: (gpu, tensorrt) -> capabilities, lane name.
    gpu = lanes.GpuInfo(True, "NVIDIA H200", (9, 0))
    no_gpu = lanes.GpuInfo(False, reason="none")
    trt11 = cu.TensorRTInfo("tensorrt", "tensorrt", "11.4.0.106", True, True, "ok", has_plugin_api=True)
    rtx_cpu = cu.TensorRTInfo("tensorrt-rtx", "tensorrt_rtx", "1.7", True, False, "builds only")
    rtx_gpu = cu.TensorRTInfo("tensorrt-rtx", "tensorrt_rtx", "1.7", True, True, "builds and runs")
    none = cu.TensorRTInfo(None, None, None, False, False, "missing")
    rows = [
        (no_gpu, none, set(), "CPU only"),
        (gpu, none, {"gpu"}, "NVIDIA GPU"),
        (gpu, trt11, {"gpu", "tensorrt-builder", "tensorrt-runtime", "tensorrt-plugins"}, "TensorRT GPU machine"),
        (no_gpu, rtx_cpu, {"tensorrt-builder", "tensorrt-rtx"}, "TensorRT-RTX"),
        (gpu, rtx_gpu, {"gpu", "tensorrt-builder", "tensorrt-rtx", "tensorrt-runtime"}, "TensorRT-RTX"),  # no plugins
    ]
    for gpu_info, tensorrt, found, lane in rows:
        assert cu.capabilities(gpu_info, tensorrt) == found, lane
        assert cu.lane_name(found, tensorrt.flavour) == lane
        assert cu.current_lane(gpu_info, tensorrt).name == lane
        assert cu.current_lane(gpu_info, tensorrt).can == tuple(sorted(found))


def _machine_from_json(data: dict) -> tuple[lanes.GpuInfo, cu.TensorRTInfo]:
    gpu = dict(data["gpu"], capability=tuple(data["gpu"]["capability"]) if data["gpu"]["capability"] else None)
    return lanes.GpuInfo(**gpu), cu.TensorRTInfo(**dict(data["tensorrt"], problems=tuple(data["tensorrt"]["problems"])))


def test_doctor_command_line_json_agrees_with_itself_and_this_machine() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "course_utils", "doctor", "--json"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    data = json.loads(completed.stdout)
    gpu, tensorrt = _machine_from_json(data)
    # The JSON's own parts agree: capabilities follow from its gpu and tensorrt, the lane from those.
    assert data["capabilities"] == sorted(cu.capabilities(gpu, tensorrt))
    assert ("gpu" in data["capabilities"]) == data["gpu"]["available"]
    assert ("tensorrt-builder" in data["capabilities"]) == data["tensorrt"]["can_build"]
    assert ("tensorrt-runtime" in data["capabilities"]) == data["tensorrt"]["can_run"]
    assert data["lane"] == cu.lane_name(set(data["capabilities"]), data["tensorrt"]["flavour"])
    # ... and this machine, probed in this process, is the one it describes.
    assert data["capabilities"] == sorted(cu.capabilities())
    assert data["lane"] == cu.current_lane().name
    assert data["gpu"]["available"] == cu.gpu_info().available and data["gpu"]["name"] == cu.gpu_info().name
    assert data["tensorrt"]["flavour"] == cu.tensorrt_here().flavour
    assert data["python"] == platform.python_version()
    assert data["packages"] == {name: importlib.metadata.version(name) for name in environment.COURSE_PACKAGES}
    # Notebooks: every course notebook, with exactly the requirements this machine lacks.
    assert list(data["notebooks"]) == [p.name for p in cu.list_notebooks()]
    for path in cu.list_notebooks():
        missing = sorted(set(cu.notebook_requirements(path)) - set(data["capabilities"]))
        assert data["notebooks"][path.name] == missing, path.name
    assert data["runnable_notebooks"] == [name for name, missing in data["notebooks"].items() if not missing]
    assert data["problems"] == [] or all(p.startswith("optional:") for p in data["problems"]), data["problems"]
    assert data["next_step"] == cu.current_lane().next_step


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


def test_doctor_lists_what_each_notebook_lacks_here(tmp_path, monkeypatch) -> None:
    import nbformat

    paths = []
    for name, requires in (("01_cpu.ipynb", []), ("02_engine.ipynb", ["gpu", "tensorrt-runtime"]),
                           ("03_build.ipynb", ["tensorrt-builder"])):
        nbformat.write(nbformat.v4.new_notebook(metadata={"course": {"requires": requires}}), tmp_path / name)
        paths.append(tmp_path / name)
    monkeypatch.setattr(environment, "list_notebooks", lambda: paths)
    monkeypatch.setattr(environment, "capabilities", lambda gpu, tensorrt: {"tensorrt-builder"})
    report = cu.doctor()
    assert report.notebooks == {"01_cpu.ipynb": [], "02_engine.ipynb": ["gpu", "tensorrt-runtime"],
                                "03_build.ipynb": []}
    assert report.runnable_notebooks == ["01_cpu.ipynb", "03_build.ipynb"]
    assert "  02_engine.ipynb                          its gpu, tensorrt-runtime parts are skipped here" in str(report)
    assert json.loads(report.to_json())["runnable_notebooks"] == ["01_cpu.ipynb", "03_build.ipynb"]
