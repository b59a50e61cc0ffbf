"""Tests for course_utils.operators and for every export path notebook 05 teaches.

The seed's models are defined here as notebook 05 defines them (the notebook shows them; the
package does not hide them). Each export path is checked by the node types it produces.
Registrations made here are undone after each test (symbolics unregistered, the torch.library
op destroyed) so they cannot leak into other tests; files go to tmp_path only.
"""

from __future__ import annotations

import ctypes
import logging
import math
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
    capture_native_output,
    clamp_silu,
    export_custom_op,
    node_attributes,
    op_types,
    unknown_ops,
    unwrap_cause,
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


# --------------------------------------------------------------------------- the seed's models
class AsinhModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.asinh(x)


class CustomOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        x = x.clamp(min=0)
        return x / (1 + torch.exp(-x))


class CustomOpWithSymbolic(CustomOp):
    @staticmethod
    def symbolic(g, x):
        return g.op("custom_domain::customOp2", x)


class CustomOpModel(torch.nn.Module):
    def __init__(self, function: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function.apply(x)


def asinh_model() -> torch.nn.Module:
    return AsinhModel().eval()


def custom_op_model(with_symbolic: bool) -> torch.nn.Module:
    return CustomOpModel(CustomOpWithSymbolic if with_symbolic else CustomOp).eval()


def deform_conv_model() -> torch.nn.Module:
    from torchvision.ops import DeformConv2d

    class DeformConvModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 18, 3)
            self.conv2 = DeformConv2d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv2(x, self.conv1(x))

    torch.manual_seed(0)
    return DeformConvModel().eval()


# --------------------------------------------------------------------------- clamp_silu, export_custom_op
def test_clamp_silu_known_values() -> None:
    """Hand-derived: clamp_silu(x) = 0 for x <= 0; clamp_silu(1) = 1/(1+e^-1); large x -> x."""
    got = clamp_silu(np.array([-3.0, 0.0, 1.0, 2.0, 50.0]))
    want = [0.0, 0.0, 1 / (1 + math.exp(-1)), 2 / (1 + math.exp(-2)), 50.0]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got.dtype == np.float64
    assert clamp_silu(np.array([1.0], np.float32)).dtype == np.float32
    t = clamp_silu(torch.tensor([-3.0, 1.0]))
    assert isinstance(t, torch.Tensor)
    torch.testing.assert_close(t, torch.tensor([0.0, 1 / (1 + math.exp(-1))]))


def test_clamp_silu_matches_x_sigmoid_x_and_numpy(x_small: torch.Tensor) -> None:
    relu = x_small.clamp(min=0)
    torch.testing.assert_close(clamp_silu(x_small), relu * torch.sigmoid(relu))
    np.testing.assert_allclose(clamp_silu(x_small.numpy()), clamp_silu(x_small).numpy(), rtol=1e-6)
    big = np.array([-1e30, 1e30], np.float32)
    assert clamp_silu(big).tolist() == [0.0, float(big[1])]  # exp(-x) never overflows: x is clamped at 0


def test_clamp_silu_rejects_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="takes a torch.Tensor or a numpy array, got list"):
        clamp_silu([1.0, 2.0])
    with pytest.raises(cu.CourseError, match="takes a float array, got dtype int64"):
        clamp_silu(np.array([1, 2]))


def test_export_custom_op_writes_one_plugin_node(tmp_path) -> None:
    path = export_custom_op(tmp_path / "sub" / "custom_op.onnx", shape=(2, 3))
    assert path == tmp_path / "sub" / "custom_op.onnx"
    model = onnx.load(path)
    assert op_types(model) == [CUSTOM_OP_NAME] and unknown_ops(model) == [CUSTOM_OP_NAME]
    assert node_attributes(model, CUSTOM_OP_NAME) == {"plugin_version": "1", "plugin_namespace": "custom_domain"}
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["y"]
    output = model.graph.output[0].type.tensor_type
    assert output.elem_type == TensorProto.FLOAT and [d.dim_value for d in output.shape.dim] == [2, 3]
    other = export_custom_op(tmp_path / "v2.onnx", plugin_version="2", plugin_namespace="")
    assert node_attributes(other, "customOp2") == {"plugin_version": "2", "plugin_namespace": ""}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"shape": ()}, "shape must be a non-empty sequence of positive ints"),
    ({"shape": (1, 0)}, "shape must be a non-empty sequence of positive ints"),
    ({"shape": (1.5,)}, "shape must be a non-empty sequence of positive ints"),
    ({"plugin_version": 1}, "plugin_version must be a str"),
])
def test_export_custom_op_bad_input(tmp_path, kwargs, message) -> None:
    with pytest.raises(cu.CourseError, match=message):
        export_custom_op(tmp_path / "x.onnx", **kwargs)
    with pytest.raises(cu.CourseError, match="must end in .onnx"):
        export_custom_op(tmp_path / "x.txt")


# --------------------------------------------------------------------------- unwrap_cause
def test_unwrap_cause_raises_the_innermost_error_and_names_the_chain(capsys) -> None:
    logger = logging.getLogger("course_test.exporter")
    logger.setLevel(logging.INFO)
    with pytest.raises(KeyError, match="the real one") as caught, unwrap_cause(quiet=("course_test",)):
        assert logging.getLogger("course_test").level == logging.ERROR  # quiet while the block runs
        try:
            try:
                raise KeyError("the real one")
            except KeyError as inner:
                raise ValueError("\x1b[96mwrapped\x1b[0m at 0x7f00") from inner
        except ValueError as middle:
            raise RuntimeError("wrapped again") from middle
    assert caught.value.__suppress_context__  # raised "from None": no wrapper traceback below it
    shown = capsys.readouterr().out
    assert shown == "raised RuntimeError, caused by ValueError, caused by KeyError; the innermost error:\n"
    assert logging.getLogger("course_test").level == logging.NOTSET  # restored
    assert logger.level == logging.INFO


def test_unwrap_cause_leaves_unwrapped_errors_and_success_alone(capsys) -> None:
    with pytest.raises(ZeroDivisionError), unwrap_cause():
        1 / 0  # noqa: B018
    with unwrap_cause():
        pass
    assert capsys.readouterr().out == ""
    assert logging.getLogger("torch.onnx").level == logging.NOTSET


def test_unwrap_cause_shows_the_real_dynamo_error(tmp_path, x_small, capsys) -> None:
    with pytest.raises(ValueError, match="The number of values and replacements must match"), unwrap_cause():
        _dynamo_export(asinh_model(), (x_small,), tmp_path / "untyped.onnx",
                       custom_translation_table={torch.ops.aten.asinh.default: asinh_untyped})
    out = capsys.readouterr().out
    assert out.startswith("raised PassError, caused by ValueError") and "0x" not in out


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
    return op.Sign(x) * op.Log(op.Abs(x) + op.Sqrt(x * x + op.CastLike(1.0, x)))


@onnxscript.script()
def asinh_untyped(x):
    return op.Log(x + op.Sqrt(x * x + op.CastLike(1.0, x)))


custom_domain = onnxscript.values.Opset("custom_domain", 1)


@onnxscript.script(custom_domain)
def clamp_silu_onnx(x: FLOAT) -> FLOAT:
    return custom_domain.customOp2(x)


def test_custom_translation_table_with_typed_function(tmp_path) -> None:
    """The stable form sign(x) * log(|x| + sqrt(x^2 + 1)) is right on a wide range; the naive
    log(x + sqrt(x^2 + 1)) returns -inf at x = -1e4 (float32 cancellation)."""
    x_wide = torch.tensor([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4])
    path = tmp_path / "asinh_translated.onnx"
    _dynamo_export(asinh_model(), (x_wide,), path,
                   custom_translation_table={torch.ops.aten.asinh.default: asinh_onnx})
    assert "Asinh" not in op_types(path)
    assert {"Sign", "Abs", "Log", "Sqrt"} <= set(op_types(path))
    np.testing.assert_allclose(_run_ort(path, x_wide.numpy()), torch.asinh(x_wide).numpy(), rtol=1e-6, atol=1e-6)
    naive = torch.log(x_wide + torch.sqrt(x_wide * x_wide + 1))
    assert naive[0].item() == -math.inf


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
    """Skip where no TensorRT is importable, but never in CI, which installs TensorRT-RTX."""
    try:
        cu.import_tensorrt()
    except cu.MissingDependencyError as error:
        if os.environ.get("CI") or os.environ.get("COURSE_REQUIRE_TENSORRT"):
            pytest.fail(f"TensorRT-RTX must be importable in CI (make setup installs it): {error}")
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


# --------------------------------------------------------------------------- side_by_side
def test_side_by_side_keeps_each_graph_apart(tmp_path) -> None:
    relu = _model_with([helper.make_node("Relu", ["x"], ["y"])], 12)
    custom = _model_with([helper.make_node("customOp2", ["x"], ["y"], domain="custom_domain")], 17,
                         [helper.make_opsetid("custom_domain", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(custom, path)
    merged = cu.side_by_side({"a": relu, "b": path})
    assert op_types(merged) == ["Relu", CUSTOM_OP_NAME]
    assert [i.name for i in merged.graph.input] == ["a/x", "b/x"]
    assert [o.name for o in merged.graph.output] == ["a/y", "b/y"]
    assert {(o.domain, o.version) for o in merged.opset_import} == {("", 17), ("custom_domain", 1)}  # highest
    assert merged.graph.name == "a | b" and merged.ir_version == max(relu.ir_version, custom.ir_version)
    assert op_types(relu) == ["Relu"] and relu.graph.input[0].name == "x"  # the inputs are not changed


@pytest.mark.parametrize(("models", "message"), [
    ({}, "at least two"),
    ({"only": None}, "at least two"),
    ([1, 2], "a dict of at least two"),
    ({"a b": None, "c": None}, "Labels become name prefixes"),
])
def test_side_by_side_bad_input(models, message) -> None:
    with pytest.raises(cu.CourseError, match=message):
        cu.side_by_side(models)
    with pytest.raises(cu.CourseError, match="Expected an onnx.ModelProto"):
        cu.side_by_side({"a": 1, "b": 2})


# --------------------------------------------------------------------------- exercise 05.1's judge
@pytest.mark.parametrize("shape", [[8], [2, 3], ["batch", 4], [1, 2, 2, 2]])
def test_exercise_acosh_judge_accepts_any_input_shape_the_learner_chose(shape) -> None:
    """A right answer is right whatever example input the learner exported with."""
    from course_utils.exercises import RIGHT, WRONG, judge_exercise

    node = helper.make_node("Acosh", ["x"], ["y"])
    graph = helper.make_graph([node], "acosh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    assert judge_exercise("05.1", ex1_path=model).status == RIGHT
    wrong = helper.make_model(helper.make_graph(
        [helper.make_node("Acos", ["x"], ["y"])], "acos", list(graph.input), list(graph.output)),
        opset_imports=[helper.make_opsetid("", 9)])
    assert judge_exercise("05.1", ex1_path=wrong).status == WRONG
