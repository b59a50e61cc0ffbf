"""course_utils.trt: which TensorRT flavour is installed, what it can do here, and the install errors."""

from __future__ import annotations

import importlib

import pytest

import course_utils as cu
from course_utils import trt as trt_door


def _no_tensorrt(monkeypatch) -> None:
    monkeypatch.setattr(trt_door, "_try_import", lambda name: (None, f"import {name} failed"))


def test_without_tensorrt_the_message_names_both_installs(monkeypatch) -> None:
    _no_tensorrt(monkeypatch)
    info = cu.find_tensorrt(capability=None)
    assert info.flavour is None and not info.can_build and not info.can_run
    assert "tensorrt-cu13" in info.explanation and "tensorrt-rtx" in info.explanation
    assert len(info.problems) == 4  # every candidate module was tried and said why not
    with pytest.raises(cu.MissingDependencyError, match="pip install tensorrt-cu13"):
        cu.import_tensorrt()


def test_asking_for_one_flavour_names_only_its_install(monkeypatch) -> None:
    _no_tensorrt(monkeypatch)
    with pytest.raises(cu.MissingDependencyError, match="tensorrt-rtx-cu13-libs") as rtx:
        cu.import_tensorrt("tensorrt-rtx")
    assert "tensorrt-cu13 " not in str(rtx.value)
    with pytest.raises(cu.MissingDependencyError, match="TensorRT 11 is not installed"):
        cu.import_tensorrt("tensorrt")
    with pytest.raises(cu.CourseError, match="use one of"):
        cu.import_tensorrt("tensorrt-12")


class _FakeModule:
    Builder = object
    __version__ = "9.9"

    def __init__(self, name: str) -> None:
        self.__name__ = name


@pytest.mark.parametrize(
    ("module", "capability", "build", "run"),
    [
        ("tensorrt", None, False, False),
        ("tensorrt", (7, 0), False, False),
        ("tensorrt", (7, 5), True, True),  # the smallest TensorRT 11 accepts
        ("tensorrt", (9, 0), True, True),
        ("tensorrt_bindings", (9, 0), True, True),  # the bindings import where NVIDIA's libraries are installed
        ("tensorrt_rtx_bindings", None, True, False),
        ("tensorrt_rtx_bindings", (9, 0), True, False),  # RTX refuses H100/H200
        ("tensorrt_rtx_bindings", (7, 5), True, False),
        ("tensorrt_rtx_bindings", (8, 6), True, True),
        ("tensorrt_rtx_bindings", (12, 1), True, True),
    ],
)
def test_what_each_flavour_can_do(monkeypatch, module, capability, build, run) -> None:
    monkeypatch.setattr(
        trt_door, "_try_import",
        lambda name: (_FakeModule(name), None) if name == module else (None, "absent"),
    )
    info = cu.find_tensorrt(capability=capability)
    assert (info.can_build, info.can_run) == (build, run)
    assert info.version == "9.9" and info.module_name == module
    assert info.flavour == ("tensorrt-rtx" if "rtx" in module else "tensorrt")


def test_tensorrt_is_preferred_and_a_flavour_can_be_asked_for(monkeypatch) -> None:
    monkeypatch.setattr(trt_door, "_try_import", lambda name: (_FakeModule(name), None))
    assert cu.import_tensorrt().__name__ == "tensorrt"
    assert cu.import_tensorrt("tensorrt-rtx").__name__ == "tensorrt_rtx"
    assert cu.find_tensorrt((9, 0)).flavour == "tensorrt"


def test_flavour_of_a_module() -> None:
    assert cu.flavour_of(_FakeModule("tensorrt")) == "tensorrt"
    assert cu.flavour_of(_FakeModule("tensorrt_bindings")) == "tensorrt"
    assert cu.flavour_of(_FakeModule("tensorrt_rtx_bindings")) == "tensorrt-rtx"
    assert cu.flavour_of(_FakeModule("tensorrt_rtx")) == "tensorrt-rtx"


def test_a_stub_package_without_the_api_does_not_count(monkeypatch) -> None:
    stub = type("stub", (), {"__name__": "tensorrt"})()
    monkeypatch.setattr(importlib, "import_module", lambda name: stub)
    module, problem = trt_door._try_import("tensorrt")
    assert module is None and "stub" in problem


def test_an_import_that_raises_anything_is_reported(monkeypatch) -> None:
    def broken(name):
        raise OSError("libnvinfer.so.11: cannot open shared object file")

    monkeypatch.setattr(importlib, "import_module", broken)
    module, problem = trt_door._try_import("tensorrt")
    assert module is None
    assert problem == "import tensorrt failed: OSError: libnvinfer.so.11: cannot open shared object file"


def test_the_lane_probe_passes_this_machines_capability(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(cu.lanes, "find_tensorrt", lambda capability: seen.append(capability) or "info")
    assert cu.tensorrt_here(cu.GpuInfo(True, "RTX 4090", (8, 9))) == "info"
    cu.tensorrt_here(cu.GpuInfo(False, reason="no GPU"))
    assert seen == [(8, 9), None]
