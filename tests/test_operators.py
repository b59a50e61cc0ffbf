"""Tests for course_utils.operators and for every export path notebook 05 teaches.

Each export path is checked by the node types it produces. Registrations made here are
undone after each test (symbolics unregistered, the torch.library op destroyed) so they
cannot leak into other tests; files go to tmp_path only.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript
import pytest
import torch
from onnx import TensorProto, helper
from onnxscript import FLOAT
from onnxscript import opset18 as op

import course_utils as cu
from course_utils.operators import (
    CUSTOM_OP_NAME,
    NativeOutput,
    asinh_model,
    capture_native_output,
    clamp_silu,
    custom_op_function,
    custom_op_model,
    deform_conv_model,
    node_attributes,
    op_types,
    unknown_ops,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
    "ignore::torch.jit.TracerWarning",
    "ignore::torch.onnx.errors.OnnxExporterWarning",
)


# --------------------------------------------------------------------------- helpers
def _forget(symbolic_name: str, opset: int) -> None:
    """Undo a custom symbolic registration completely.

    `unregister_custom_op_symbolic` removes the function but leaves an empty group in the
    registry (torch 2.14); the next failing export then raises a confusing ValueError
    ("min() arg is an empty sequence"). Dropping the empty group restores a clean state.
    """
    from torch.onnx._internal.torchscript_exporter import registration

    torch.onnx.unregister_custom_op_symbolic(symbolic_name, opset)
    group = registration.registry.get_function_group(symbolic_name)
    if group is not None and len(group._functions) == 0:
        registration.registry._registry.pop(symbolic_name, None)


def _legacy_export(model: torch.nn.Module, args: tuple, path, opset: int) -> None:
    torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset)


def _dynamo_export(model: torch.nn.Module, args: tuple, path, opset: int | None = None,
                   **kwargs) -> None:
    extra = {} if opset is None else {"opset_version": opset}
    torch.onnx.export(model, args, str(path), dynamo=True, external_data=False,
                      verbose=False, **extra, **kwargs)


def _run_ort(path, *arrays: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: a for i, a in zip(session.get_inputs(), arrays, strict=True)}
    return session.run(None, feed)[0]


def _model_with(nodes: list[onnx.NodeProto], opset: int, extra_imports=(), functions=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    imports = [helper.make_opsetid("", opset), *extra_imports]
    return helper.make_model(graph, opset_imports=imports, functions=list(functions))


@pytest.fixture
def x_small() -> torch.Tensor:
    return torch.randn(2, 3, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------------------------- models
def test_clamp_silu_matches_its_formula(x_small: torch.Tensor) -> None:
    relu = x_small.clamp(min=0)
    torch.testing.assert_close(clamp_silu(x_small), relu * torch.sigmoid(relu))


def test_clamp_silu_rejects_non_tensor() -> None:
    with pytest.raises(cu.CourseError, match="takes a torch.Tensor, got list"):
        clamp_silu([1.0, 2.0])


def test_asinh_model_computes_asinh(x_small: torch.Tensor) -> None:
    model = asinh_model()
    assert not model.training
    torch.testing.assert_close(model(x_small), torch.asinh(x_small))


def test_custom_op_function_variants(x_small: torch.Tensor) -> None:
    plain, with_symbolic = custom_op_function(False), custom_op_function(True)
    assert issubclass(plain, torch.autograd.Function) and not hasattr(plain, "symbolic")
    assert hasattr(with_symbolic, "symbolic")
    assert custom_op_function() is plain  # the same class every time
    for flag in (False, True):
        torch.testing.assert_close(custom_op_model(flag)(x_small), clamp_silu(x_small))


def test_custom_op_function_rejects_non_bool() -> None:
    with pytest.raises(cu.CourseError, match="with_symbolic must be True or False"):
        custom_op_function("yes")


def test_deform_conv_model_is_seeded_and_shaped() -> None:
    a, b = deform_conv_model(seed=3), deform_conv_model(seed=3)
    torch.testing.assert_close(a.conv1.weight, b.conv1.weight)
    assert a.conv1.out_channels == 2 * 3 * 3
    x = torch.randn(1, 1, 5, 5)
    assert a(x).shape == (1, 1, 3, 3)
    wide = deform_conv_model(in_channels=2, out_channels=4, kernel_size=1)
    assert wide(torch.randn(1, 2, 4, 4)).shape == (1, 4, 4, 4)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_deform_conv_model_rejects_bad_sizes(bad: object) -> None:
    with pytest.raises(cu.CourseError, match="kernel_size must be a positive int"):
        deform_conv_model(kernel_size=bad)


# --------------------------------------------------------------------------- graph helpers
def test_op_types_accepts_proto_path_and_program(tmp_path, x_small: torch.Tensor) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("customOp2", ["r"], ["y"], domain="custom_domain")]
    model = _model_with(nodes, 17, [helper.make_opsetid("custom_domain", 1)])
    assert op_types(model) == ["Relu", CUSTOM_OP_NAME]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert op_types(path) == op_types(str(path)) == ["Relu", CUSTOM_OP_NAME]
    program = torch.onnx.export(asinh_model(), (x_small,), dynamo=True, verbose=False)
    assert op_types(program) == ["Asinh"]


def test_op_types_treats_ai_onnx_as_default_domain() -> None:
    model = _model_with([helper.make_node("Relu", ["x"], ["y"], domain="ai.onnx")], 17)
    assert op_types(model) == ["Relu"]


def test_op_types_bad_input(tmp_path) -> None:
    with pytest.raises(cu.CourseError, match="No ONNX file at"):
        op_types(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(cu.CourseError, match="not a readable ONNX protobuf"):
        op_types(broken)
    with pytest.raises(cu.CourseError, match="Expected an onnx.ModelProto.*got int"):
        op_types(42)


def test_unknown_ops_by_opset_and_domain() -> None:
    asinh = _model_with([helper.make_node("Asinh", ["x"], ["y"])], 9)
    assert unknown_ops(asinh) == []
    assert unknown_ops(asinh, opset=8) == ["Asinh"]  # Asinh exists since opset 9
    custom = _model_with([helper.make_node("customOp2", ["x"], ["y"], domain="custom_domain")],
                         17, [helper.make_opsetid("custom_domain", 1)])
    assert unknown_ops(custom) == [CUSTOM_OP_NAME]


def test_unknown_ops_counts_local_functions_as_known() -> None:
    body = [helper.make_node("Relu", ["a"], ["b"])]
    function = helper.make_function("local", "MyRelu", ["a"], ["b"], body,
                                    [helper.make_opsetid("", 17)])
    model = _model_with([helper.make_node("MyRelu", ["x"], ["y"], domain="local")], 17,
                        [helper.make_opsetid("local", 1)], [function])
    assert unknown_ops(model) == []


@pytest.mark.parametrize("bad", [0, 10_000, "19", True])
def test_unknown_ops_rejects_bad_opset(bad: object) -> None:
    model = _model_with([helper.make_node("Relu", ["x"], ["y"])], 17)
    with pytest.raises(cu.CourseError, match="opset must be an int from 1 to"):
        unknown_ops(model, opset=bad)


def test_node_attributes_decodes_strings() -> None:
    node = helper.make_node("customOp2", ["x"], ["y"], domain="custom_domain",
                            plugin_version="1", plugin_namespace="", alpha=0.5, sizes=[1, 2],
                            names=["a", "b"])
    model = _model_with([node], 17, [helper.make_opsetid("custom_domain", 1)])
    expected = {"plugin_version": "1", "plugin_namespace": "", "alpha": 0.5, "sizes": [1, 2],
                "names": ["a", "b"]}
    assert node_attributes(model, "customOp2") == expected
    assert node_attributes(model, CUSTOM_OP_NAME) == expected


def test_node_attributes_names_present_ops_when_missing() -> None:
    model = _model_with([helper.make_node("Relu", ["x"], ["y"])], 17)
    with pytest.raises(cu.CourseError, match="No node of type 'Asinh'.*Its op types: Relu"):
        node_attributes(model, "Asinh")


# --------------------------------------------------------------------------- native output
def test_capture_native_output_catches_fd_writes_and_restores(capfd) -> None:
    with capture_native_output() as native:
        os.write(1, b"[W1124 02:53:19.930340860 shape_type_inference.cpp:1994] Warning: from C++\n")
        os.write(2, b"[11/24/2026-02:53:30] [TRT] [E] parser said no\n")
        ctypes.CDLL(None).printf(b"buffered by C stdio\n")
    assert "Warning: from C++" in native.text and "parser said no" in native.text
    assert "buffered by C stdio" in native.text  # fflush ran before the descriptors came back
    assert native.lines()[:2] == ["Warning: from C++", "[E] parser said no"]
    assert native.lines(strip_prefixes=False)[0].startswith("[W1124 02:53:19")
    os.write(1, b"after the block\n")
    out, _ = capfd.readouterr()
    assert "after the block" in out and "from C++" not in out


def test_capture_native_output_fills_text_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), capture_native_output() as native:
        os.write(1, b"written before the error\n")
        raise RuntimeError("boom")
    assert "written before the error" in native.text


def test_capture_native_output_catches_the_legacy_graph_dump(tmp_path, x_small) -> None:
    with capture_native_output() as native, pytest.raises(
            torch.onnx.errors.UnsupportedOperatorError):
        _legacy_export(asinh_model(), (x_small,), tmp_path / "a.onnx", 9)
    assert any(line.startswith("Torch IR graph at exception") for line in native.lines())
    assert any("aten::asinh" in line for line in native.lines())


def test_native_output_summary_cuts_long_output() -> None:
    native = NativeOutput("\n".join(f"line {i}" for i in range(10)))
    assert native.summary(max_lines=3).splitlines() == ["line 0", "line 1", "line 2",
                                                         "... (7 more lines)"]
    assert str(NativeOutput("")) == "(no native output)"


# --------------------------------------------------------------------------- asinh, legacy
def _asinh_symbolic(g, input, *, out=None):
    return g.op("Asinh", input)


def test_legacy_asinh_fails_without_registration(tmp_path, x_small) -> None:
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError,
                       match="'aten::asinh' to ONNX opset version 9 is not supported"):
        _legacy_export(asinh_model(), (x_small,), tmp_path / "a.onnx", 9)


def test_legacy_asinh_method1_register_custom_op_symbolic(tmp_path, x_small) -> None:
    torch.onnx.register_custom_op_symbolic("aten::asinh", _asinh_symbolic, 9)
    try:
        path = tmp_path / "asinh_m1.onnx"
        _legacy_export(asinh_model(), (x_small,), path, 9)
    finally:
        _forget("aten::asinh", 9)
    assert op_types(path) == ["Asinh"]
    np.testing.assert_allclose(_run_ort(path, x_small.numpy()), torch.asinh(x_small).numpy(),
                               atol=1e-6)


def test_legacy_asinh_method2_onnx_symbolic_decorator(tmp_path, x_small) -> None:
    from torch.onnx._internal.torchscript_exporter.registration import onnx_symbolic

    try:
        @onnx_symbolic("aten::asinh", opset=9, custom=True)
        def asinh_symbolic(g, input, *, out=None):
            return g.op("Asinh", input)

        path = tmp_path / "asinh_m2.onnx"
        _legacy_export(asinh_model(), (x_small,), path, 12)  # found from opset 9 upwards
    finally:
        _forget("aten::asinh", 9)
    assert op_types(path) == ["Asinh"]


def test_unregistering_leaves_legacy_exporter_clean(tmp_path, x_small) -> None:
    """After the other tests' cleanup the plain export fails the normal way again."""
    torch.onnx.register_custom_op_symbolic("aten::asinh", _asinh_symbolic, 9)
    _forget("aten::asinh", 9)
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError):
        _legacy_export(asinh_model(), (x_small,), tmp_path / "a.onnx", 9)


def test_dynamo_asinh_needs_no_registration(tmp_path, x_small) -> None:
    path = tmp_path / "asinh_dynamo.onnx"
    _dynamo_export(asinh_model(), (x_small,), path)
    assert op_types(path) == ["Asinh"]


# --------------------------------------------------------------------------- autograd.Function
def test_autograd_function_without_symbolic_is_traced_into_many_nodes(tmp_path) -> None:
    path = tmp_path / "traced.onnx"
    _legacy_export(custom_op_model(False), (torch.randn(1, 1, 5, 5),), path, 12)
    ops = op_types(path)
    assert len(ops) >= 5
    assert {"Clip", "Neg", "Exp", "Add", "Div"} <= set(ops)
    assert all("::" not in op for op in ops)
    assert unknown_ops(path) == []


def test_autograd_function_with_symbolic_is_one_custom_node(tmp_path) -> None:
    path = tmp_path / "custom.onnx"
    _legacy_export(custom_op_model(True), (torch.randn(1, 1, 5, 5),), path, 12)
    assert op_types(path) == [CUSTOM_OP_NAME]
    assert unknown_ops(path) == [CUSTOM_OP_NAME]
    with pytest.raises(Exception, match="customOp2.*is not a registered function/op"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_dynamo_ignores_the_autograd_symbolic(tmp_path) -> None:
    path = tmp_path / "custom_dynamo.onnx"
    _dynamo_export(custom_op_model(True), (torch.randn(1, 4),), path)
    assert CUSTOM_OP_NAME not in op_types(path)
    assert len(op_types(path)) >= 4


# --------------------------------------------------------------------------- DeformConv2d
def _dcn_args() -> tuple[torch.Tensor]:
    return (torch.randn(1, 1, 5, 5, generator=torch.Generator().manual_seed(0)),)


def test_legacy_deform_conv_fails_without_symbolic(tmp_path) -> None:
    with pytest.raises(torch.onnx.errors.UnsupportedOperatorError,
                       match="torchvision::deform_conv2d"):
        _legacy_export(deform_conv_model(), _dcn_args(), tmp_path / "dcn.onnx", 12)


def test_legacy_deform_conv_parse_args_symbolic(tmp_path) -> None:
    from torch.onnx.symbolic_helper import parse_args

    @parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "none")
    def dcn_symbolic(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                     dil_h, dil_w, n_weight_grps, n_offset_grps, use_mask):
        return g.op("custom::deform_conv2d", input, offset)

    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", dcn_symbolic, 12)
    try:
        path = tmp_path / "dcn_legacy.onnx"
        _legacy_export(deform_conv_model(), _dcn_args(), path, 12)
    finally:
        _forget("torchvision::deform_conv2d", 12)
    assert op_types(path) == ["Conv", "custom::deform_conv2d"]


def test_dynamo_deform_conv_opset19_matches_pytorch(tmp_path) -> None:
    model, args = deform_conv_model(), _dcn_args()
    path = tmp_path / "dcn19.onnx"
    _dynamo_export(model, args, path, opset=19)
    assert op_types(path) == ["Conv", "DeformConv"]
    onnx.checker.check_model(onnx.load(path), full_check=True)
    with torch.no_grad():
        expected = model(*args).numpy()
    np.testing.assert_allclose(_run_ort(path, args[0].numpy()), expected, atol=1e-5)


def test_dynamo_deform_conv_opset18_is_silently_invalid(tmp_path) -> None:
    path = tmp_path / "dcn18.onnx"
    _dynamo_export(deform_conv_model(), _dcn_args(), path, opset=18)
    assert op_types(path) == ["Conv", "DeformConv"]
    assert unknown_ops(path) == ["DeformConv"]
    with pytest.raises(onnx.checker.ValidationError, match="DeformConv with domain_version of 18"):
        onnx.checker.check_model(onnx.load(path), full_check=True)


# --------------------------------------------------------------------------- dynamo tools
# onnxscript compiles these from source and resolves names (FLOAT, op) in module globals.
@onnxscript.script()
def asinh_onnx(x: FLOAT) -> FLOAT:
    return op.Log(x + op.Sqrt(x * x + op.CastLike(1.0, x)))


@onnxscript.script()
def asinh_untyped(x):
    return op.Log(x + op.Sqrt(x * x + op.CastLike(1.0, x)))


custom_domain = onnxscript.values.Opset("custom_domain", 1)


@onnxscript.script(custom_domain)
def clamp_silu_onnx(x: FLOAT) -> FLOAT:
    return custom_domain.customOp2(x)


def test_custom_translation_table_with_typed_function(tmp_path, x_small) -> None:
    path = tmp_path / "asinh_translated.onnx"
    _dynamo_export(asinh_model(), (x_small,), path,
                   custom_translation_table={torch.ops.aten.asinh.default: asinh_onnx})
    assert "Asinh" not in op_types(path)
    assert {"Log", "Sqrt"} <= set(op_types(path))
    np.testing.assert_allclose(_run_ort(path, x_small.numpy()), torch.asinh(x_small).numpy(),
                               atol=1e-5)


def test_custom_translation_table_untyped_script_fails(tmp_path, x_small) -> None:
    with pytest.raises(Exception) as caught:
        _dynamo_export(asinh_model(), (x_small,), tmp_path / "untyped.onnx",
                       custom_translation_table={torch.ops.aten.asinh.default: asinh_untyped})
    chain, error = [], caught.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any("The number of values and replacements must match" in m for m in chain)


@pytest.fixture
def library_op() -> Iterator[object]:
    """A torch.library custom op for this test only; destroyed afterwards."""
    @torch.library.custom_op("course_test::clamp_silu", mutates_args=())
    def library_clamp_silu(x: torch.Tensor) -> torch.Tensor:
        return clamp_silu(x)

    @library_clamp_silu.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    yield library_clamp_silu
    library_clamp_silu._lib._destroy()  # no public unregister exists; this drops the op from the dispatcher


def test_library_custom_op_with_translation(tmp_path, library_op) -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return library_op(x)

    x = torch.randn(1, 4)
    torch.testing.assert_close(Model()(x), clamp_silu(x))
    path = tmp_path / "library_op.onnx"
    _dynamo_export(Model().eval(), (x,), path,
                   custom_translation_table={torch.ops.course_test.clamp_silu.default:
                                             clamp_silu_onnx})
    assert op_types(path) == [CUSTOM_OP_NAME]


def test_library_custom_op_without_translation_fails(tmp_path, library_op) -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return library_op(x)

    with pytest.raises(Exception, match="No ONNX function found"):
        _dynamo_export(Model().eval(), (torch.randn(1, 4),), tmp_path / "no_translation.onnx")


class _PluginModel(torch.nn.Module):
    """Emits a node TensorRT's parser would hand to a plugin, only while exporting."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return torch.onnx.ops.symbolic(
                "custom_domain::customOp2", (x,),
                {"plugin_version": "1", "plugin_namespace": ""},
                dtype=x.dtype, shape=x.shape, version=1,
            )
        return clamp_silu(x)


def test_onnx_ops_symbolic_emits_plugin_node(tmp_path) -> None:
    path = tmp_path / "plugin_node.onnx"
    _dynamo_export(_PluginModel().eval(), (torch.randn(1, 4),), path)
    assert op_types(path) == [CUSTOM_OP_NAME]
    assert node_attributes(path, CUSTOM_OP_NAME) == {"plugin_version": "1",
                                                     "plugin_namespace": ""}
    model = onnx.load(path)
    assert {(o.domain, o.version) for o in model.opset_import} >= {("custom_domain", 1)}
    output = model.graph.output[0].type.tensor_type
    assert [d.dim_value for d in output.shape.dim] == [1, 4]


# --------------------------------------------------------------------------- TensorRT parser
def _require_tensorrt() -> None:
    try:
        cu.import_tensorrt()
    except cu.MissingDependencyError as error:
        pytest.skip(f"TensorRT / TensorRT-RTX is not importable here: {error.package}")


def test_tensorrt_parser_rejects_unknown_custom_op(tmp_path) -> None:
    _require_tensorrt()
    path = tmp_path / "custom.onnx"
    _legacy_export(custom_op_model(True), (torch.randn(1, 1, 5, 5),), path, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = cu.parse_onnx(path)
    assert not result.ok and result.num_layers == 0
    message = "\n".join(result.errors)
    assert "operator: customOp2" in message
    assert "Plugin not found, are the plugin name, version, and namespace correct?" in message


def test_tensorrt_parser_accepts_standard_ops(tmp_path) -> None:
    _require_tensorrt()
    path = tmp_path / "traced.onnx"
    _legacy_export(custom_op_model(False), (torch.randn(1, 1, 5, 5),), path, 12)
    result = cu.parse_onnx(path)
    assert result.ok and result.num_layers > 0
