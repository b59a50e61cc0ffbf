"""course_utils.trt: flavour detection, clear errors, and TensorRT's real ONNX parser."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import course_utils as cu
from course_utils import trt as trt_door


def _no_tensorrt(monkeypatch) -> None:
    monkeypatch.setattr(trt_door, "_try_import", lambda name: (None, f"import {name} failed"))


def test_without_tensorrt_the_message_names_both_installs(monkeypatch) -> None:
    _no_tensorrt(monkeypatch)
    info = cu.find_tensorrt(capability=None)
    assert info.flavour is None and not info.can_build and not info.can_run
    assert "tensorrt-cu13" in info.explanation and "tensorrt-rtx" in info.explanation
    with pytest.raises(cu.MissingDependencyError, match="pip install tensorrt-cu13"):
        cu.import_tensorrt()


class _FakeModule:
    Builder = object
    __version__ = "9.9"


@pytest.mark.parametrize(
    ("module", "capability", "build", "run"),
    [
        ("tensorrt", None, False, False),
        ("tensorrt", (7, 0), False, False),
        ("tensorrt", (9, 0), True, True),
        ("tensorrt_rtx_bindings", None, True, False),
        ("tensorrt_rtx_bindings", (9, 0), True, False),  # RTX refuses H100/H200
        ("tensorrt_rtx_bindings", (8, 6), True, True),
    ],
)
def test_what_each_flavour_can_do(monkeypatch, module, capability, build, run) -> None:
    monkeypatch.setattr(
        trt_door, "_try_import",
        lambda name: (_FakeModule, None) if name == module else (None, "absent"),
    )
    info = cu.find_tensorrt(capability=capability)
    assert (info.can_build, info.can_run) == (build, run)
    assert info.version == "9.9" and info.module_name == module


def _add_model(path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "add", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


needs_builder = pytest.mark.skipif(
    not cu.find_tensorrt(capability=None).can_build, reason="no TensorRT flavour installed"
)


@needs_builder
def test_parse_onnx_with_tensorrt(tmp_path) -> None:
    path = tmp_path / "add.onnx"
    _add_model(path)
    result = cu.parse_onnx(path)
    assert result.ok and result.num_layers >= 1, result.errors
    assert "parsed into" in str(result)


@needs_builder
def test_parse_onnx_reports_the_parsers_own_error(tmp_path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("customOp2", ["x"], ["y"], domain="custom_domain")
    graph = helper.make_graph([node], "custom", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("custom_domain", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    result = cu.parse_onnx(path)
    assert not result.ok and "Plugin not found" in " ".join(result.errors)


def test_parse_onnx_missing_file(tmp_path) -> None:
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        cu.parse_onnx(tmp_path / "absent.onnx")
