"""Tests for course_utils.export: verification against PyTorch, message capture, comparison."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
import onnx  # noqa: E402
from torch import nn  # noqa: E402

import course_utils as cu  # noqa: E402

SEED_WEIGHTS = [[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]]


class Linear(nn.Module):
    """The seed's model: one bias-free Linear with fixed weights."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(SEED_WEIGHTS, dtype=torch.float32))

    def forward(self, x):
        return self.linear(x)


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head0, self.head1 = Linear(), Linear()

    def forward(self, x):
        return self.head0(x), self.head1(x)


def legacy_export(module, path: Path, outputs=("output0",), dynamic: bool = False,
                  example=None) -> Path:
    axes = {name: {0: "batch"} for name in ("input0", *outputs)} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 1, 1, 4) if example is None else example,),
                          str(path), input_names=["input0"], output_names=list(outputs),
                          opset_version=12, dynamic_axes=axes, dynamo=False)
    return path


@pytest.fixture()
def linear_onnx(tmp_path: Path) -> Path:
    return legacy_export(Linear(), tmp_path / "linear.onnx")


@pytest.fixture()
def dynamic_onnx(tmp_path: Path) -> Path:
    return legacy_export(Linear(), tmp_path / "dynamic.onnx", dynamic=True)


# --------------------------------------------------------------------------- verify
def test_verify_static_model_matches(linear_onnx: Path) -> None:
    result = cu.verify_onnx_export(linear_onnx, Linear().eval(), batch_sizes=(1, 3, 8))
    assert result.ok and result.max_abs_error < 1e-5
    assert result.batch_sizes == [None]  # a static model runs once, at its own shape
    assert result.input_shapes[None] == {"input0": (1, 1, 1, 4)}
    text = str(result)
    assert "matches PyTorch" in text and "output0" in text and "max abs err" in text


def test_verify_seed_input_gives_30_40_50(linear_onnx: Path) -> None:
    x = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 1, 4)
    result = cu.verify_onnx_export(linear_onnx, Linear().eval(), inputs={"input0": x})
    assert result.ok and result.max_abs_error == 0.0
    assert result.checks[0].shape == (1, 1, 1, 3)


def test_verify_dynamic_batch_runs_every_batch_size(dynamic_onnx: Path) -> None:
    result = cu.verify_onnx_export(dynamic_onnx, Linear().eval(), batch_sizes=(1, 3, 8))
    assert result.batch_sizes == [1, 3, 8]
    assert [c.shape[0] for c in result.checks] == [1, 3, 8]
    assert result.input_shapes[3]["input0"] == (3, 1, 1, 4)


def test_verify_dims_override_names_a_dimension(dynamic_onnx: Path) -> None:
    result = cu.verify_onnx_export(dynamic_onnx, Linear().eval(), batch_sizes=(2,),
                                   dims={"batch": 5})
    assert result.input_shapes[2]["input0"] == (5, 1, 1, 4)


def test_verify_two_outputs_and_integer_inputs(tmp_path: Path) -> None:
    path = legacy_export(TwoHeads(), tmp_path / "two.onnx", outputs=("output0", "output1"))
    result = cu.verify_onnx_export(path, TwoHeads().eval())
    assert [c.output for c in result.checks] == ["output0", "output1"]

    embedding = nn.Embedding(10, 4).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(embedding, (torch.zeros(2, 3, dtype=torch.int64),),
                          str(tmp_path / "emb.onnx"), input_names=["ids"], dynamo=False)
    assert cu.verify_onnx_export(tmp_path / "emb.onnx", embedding).ok


def test_verify_names_the_output_that_differs(tmp_path: Path) -> None:
    path = legacy_export(TwoHeads(), tmp_path / "two.onnx", outputs=("output0", "output1"))
    changed = TwoHeads().eval()
    with torch.no_grad():
        changed.head1.linear.weight.add_(0.5)
    with pytest.raises(cu.CourseError, match=r"Output 'output1' .* differs from PyTorch") as info:
        cu.verify_onnx_export(path, changed)
    assert "'output0'" not in str(info.value).split("Outputs that differ:")[1]
    result = cu.verify_onnx_export(path, changed, raise_on_mismatch=False)
    assert not result.ok and [c.ok for c in result.checks] == [True, False]
    assert "DIFFERS" in str(result) and "NO" in result.table()


def test_verify_mismatch_in_training_mode_suggests_eval(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        model[1].running_mean.fill_(2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, 8, 8),), str(tmp_path / "bn.onnx"),
                          dynamo=False)
    with pytest.raises(cu.CourseError, match=r"model\.eval\(\)"):
        cu.verify_onnx_export(tmp_path / "bn.onnx", model.train())


def test_verify_tolerance_is_applied(linear_onnx: Path) -> None:
    changed = Linear().eval()
    with torch.no_grad():
        changed.linear.weight.add_(0.05)
    assert not cu.verify_onnx_export(linear_onnx, changed, raise_on_mismatch=False).ok
    assert cu.verify_onnx_export(linear_onnx, changed, atol=1.0).ok


def scaled_linear(factor: float) -> Linear:
    """The seed's model with its weights multiplied by `factor` (0.0 gives zero outputs)."""
    model = Linear().eval()
    with torch.no_grad():
        model.linear.weight.mul_(factor)
    return model


def test_verify_catches_zero_output_for_tiny_reference(tmp_path: Path) -> None:
    # Random-weight networks can output values around 1e-14: every difference is then below
    # atol=1e-4, so without a scale-aware tolerance an all-zero ONNX output would "match".
    tiny = scaled_linear(1e-12)
    zeros_path = legacy_export(scaled_linear(0.0), tmp_path / "zeros.onnx")
    result = cu.verify_onnx_export(zeros_path, tiny, raise_on_mismatch=False)
    assert not result.ok and result.max_rel_error == pytest.approx(1.0)
    assert result.max_abs_error < 1e-4  # below atol: only the cap at rtol*max|ref| catches it
    with pytest.raises(cu.CourseError, match=r"capped at rtol\*max\|ref\| .* tiny"):
        cu.verify_onnx_export(zeros_path, tiny)
    # ... and the same check catches it at the default tolerance for any small output size.
    for factor in (1e-6, 1e-9, 1e-15):
        assert not cu.verify_onnx_export(zeros_path, scaled_linear(factor),
                                         raise_on_mismatch=False).ok


def test_verify_tiny_reference_still_matches_its_own_export(tmp_path: Path) -> None:
    tiny = scaled_linear(1e-12)
    path = legacy_export(tiny, tmp_path / "tiny.onnx")
    result = cu.verify_onnx_export(path, tiny, batch_sizes=(1,))
    assert result.ok and result.max_rel_error < 1e-6
    assert "capped at rtol*max|ref|" in str(result) and result.checks[0].atol < 1e-13
    # An explicit atol is used as given (no cap): then the all-zero file "matches" again.
    zeros_path = legacy_export(scaled_linear(0.0), tmp_path / "zeros.onnx")
    assert cu.verify_onnx_export(zeros_path, tiny, atol=1e-4).ok
    # A relative difference inside rtol (1e-3) is still accepted at any scale.
    assert cu.verify_onnx_export(path, scaled_linear(1e-12 * (1 + 1e-4))).ok
    assert not cu.verify_onnx_export(path, scaled_linear(1e-12 * 1.01),
                                     raise_on_mismatch=False).ok


def test_verify_exactly_zero_reference_keeps_atol(tmp_path: Path) -> None:
    zeros_path = legacy_export(scaled_linear(0.0), tmp_path / "zeros.onnx")
    result = cu.verify_onnx_export(zeros_path, scaled_linear(0.0))
    assert result.ok and result.max_abs_error == 0.0 and result.max_rel_error == 0.0
    # Normal-sized outputs are unchanged: the message shows the plain atol.
    with pytest.raises(cu.CourseError, match=r"tolerance atol=0\.0001 \+ rtol=0\.001"):
        cu.verify_onnx_export(zeros_path, Linear().eval())


def test_verify_wrong_input_shape_is_clear(linear_onnx: Path, dynamic_onnx: Path) -> None:
    with pytest.raises(cu.CourseError, match=r"'input0' .* must have shape \[1, 1, 1, 4\]"):
        cu.verify_onnx_export(linear_onnx, Linear(), inputs={"input0": np.zeros((1, 5))})
    with pytest.raises(cu.CourseError, match=r"\['\?', 1, 1, 4\].*got \[2, 1, 1, 5\]"):
        cu.verify_onnx_export(dynamic_onnx, Linear(), inputs={"input0": np.zeros((2, 1, 1, 5))})
    with pytest.raises(cu.CourseError, match=r"takes inputs \['input0'\]"):
        cu.verify_onnx_export(linear_onnx, Linear(), inputs={"x": np.zeros((1, 1, 1, 4))})


def test_verify_module_that_fails_is_clear(linear_onnx: Path) -> None:
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("forward is broken")

    with pytest.raises(cu.CourseError, match=r"PyTorch module failed .*input0.*forward is broken"):
        cu.verify_onnx_export(linear_onnx, Broken())
    with pytest.raises(cu.CourseError, match="module must be the torch.nn.Module"):
        cu.verify_onnx_export(linear_onnx, "not a module")


def test_verify_output_count_and_shape_mismatch(linear_onnx: Path) -> None:
    with pytest.raises(cu.CourseError,
                       match=r"1 output\(s\) \['output0'\] but the module returned 2"):
        cu.verify_onnx_export(linear_onnx, TwoHeads().eval())

    class Wider(nn.Module):
        def forward(self, x):
            return torch.zeros(1, 1, 1, 7)

    with pytest.raises(cu.CourseError,
                       match=r"'output0' .* shape \[1, 1, 1, 3\] .* \[1, 1, 1, 7\]"):
        cu.verify_onnx_export(linear_onnx, Wider())

    class ReturnsText(nn.Module):
        def forward(self, x):
            return "text"

    with pytest.raises(cu.CourseError, match="returned a str"):
        cu.verify_onnx_export(linear_onnx, ReturnsText())


def test_verify_bad_files_and_arguments(tmp_path: Path, linear_onnx: Path) -> None:
    with pytest.raises(cu.CourseError, match="No ONNX file at"):
        cu.verify_onnx_export(tmp_path / "missing.onnx", Linear())
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    with pytest.raises(cu.CourseError, match="onnxruntime cannot load notes.onnx"):
        cu.verify_onnx_export(text, Linear())
    with pytest.raises(cu.CourseError, match="path of the exported .onnx file"):
        cu.verify_onnx_export(onnx.load(str(linear_onnx)), Linear())
    for bad in ((), (0,), (2.5,), (-1, 2)):
        with pytest.raises(cu.CourseError, match="batch_sizes must be positive integers"):
            cu.verify_onnx_export(linear_onnx, Linear(), batch_sizes=bad)


# --------------------------------------------------------------------------- known answers
def mul_onnx(path: Path, scale, dtype=np.float32) -> Path:
    """ONNX `output0 = input0 * scale` built by hand, so every value it returns is known."""
    from onnx import helper, numpy_helper

    scale = np.asarray(scale, dtype)
    elem = helper.np_dtype_to_tensor_dtype(scale.dtype)
    node = helper.make_node("Mul", ["input0", "scale"], ["output0"])
    graph = helper.make_graph(
        [node], "mul",
        [helper.make_tensor_value_info("input0", elem, list(scale.shape))],
        [helper.make_tensor_value_info("output0", elem, list(scale.shape))],
        [numpy_helper.from_array(scale, "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class Times(nn.Module):
    """PyTorch `x * scale`: with an input of ones it returns `scale` itself."""

    def __init__(self, scale, dtype=torch.float32) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=dtype))

    def forward(self, x):
        return x * self.scale


def verify_values(tmp_path: Path, onnx_values, torch_values, **kwargs) -> cu.VerificationResult:
    """Compare an ONNX file that returns `onnx_values` with a module that returns `torch_values`."""
    path = mul_onnx(tmp_path / f"mul{len(list(tmp_path.iterdir()))}.onnx", onnx_values)
    ones = {"input0": np.ones(len(onnx_values), np.float32)}
    return cu.verify_onnx_export(path, Times(torch_values), inputs=ones, raise_on_mismatch=False,
                                 **kwargs)


def test_relative_tolerance_term_accepts_a_small_relative_error(tmp_path: Path) -> None:
    # |100.05 - 100| = 0.05 is 500x the absolute tolerance (1e-4) but inside rtol * |ref| = 0.1:
    # a check that dropped its relative term would reject it.
    result = verify_values(tmp_path, [100.05, 100.0], [100.0, 100.0])
    assert result.ok, result
    assert result.max_abs_error == pytest.approx(0.05, rel=1e-4)
    assert result.max_rel_error == pytest.approx(5e-4, rel=1e-3)
    assert result.checks[0].atol == pytest.approx(1e-4)  # min(1e-4, 1e-3 * 100): not capped
    # ... and still rejects what is outside atol + rtol * |ref| = 0.1001.
    assert not verify_values(tmp_path, [100.2, 100.0], [100.0, 100.0]).ok
    # The relative term scales with |ref|: the same 0.05 against a reference of 10 is too much.
    assert not verify_values(tmp_path, [10.05, 10.0], [10.0, 10.0]).ok


def test_tolerance_is_elementwise_not_scaled_by_the_largest_value(tmp_path: Path) -> None:
    # Element 1 is off by 5e-4 while its own tolerance is 1e-4 + 1e-3 * 1e-3 = 1.01e-4; the
    # largest reference value (100) must not lend it a tolerance of 0.1.
    result = verify_values(tmp_path, [100.0, 1.5e-3], [100.0, 1e-3])
    assert not result.ok
    assert result.max_abs_error == pytest.approx(5e-4, rel=1e-3)
    assert result.max_rel_error == pytest.approx(5e-6, rel=1e-3)  # 5e-4 / max|ref| (100)


def test_exactly_zero_reference_uses_the_plain_absolute_tolerance(tmp_path: Path) -> None:
    assert verify_values(tmp_path, [5e-5, 0.0], [0.0, 0.0]).ok
    result = verify_values(tmp_path, [2e-4, 0.0], [0.0, 0.0])
    assert not result.ok and result.max_rel_error == float("inf")
    assert result.max_abs_error == pytest.approx(2e-4, rel=1e-3)


def test_tiny_reference_caps_the_absolute_tolerance_at_rtol_times_its_size(tmp_path: Path) -> None:
    # max|ref| = 1e-6: atol becomes min(1e-4, 1e-3 * 1e-6) = 1e-9, so the whole tolerance per
    # element is 1e-9 + 1e-3 * 1e-6 = 2e-9.
    inside = verify_values(tmp_path, [1e-6 + 1.5e-9, 1e-6], [1e-6, 1e-6])
    assert inside.ok and inside.checks[0].atol == pytest.approx(1e-9, rel=1e-6)
    outside = verify_values(tmp_path, [1e-6 + 3e-9, 1e-6], [1e-6, 1e-6])
    assert not outside.ok and outside.max_abs_error == pytest.approx(3e-9, rel=1e-3)


def test_explicit_tolerances_are_used_as_given(tmp_path: Path) -> None:
    exact = dict(atol=0.0, rtol=0.0)
    assert verify_values(tmp_path, [1.0, 2.0], [1.0, 2.0], **exact).ok
    assert not verify_values(tmp_path, [1.0, np.nextafter(np.float32(2), 3)], [1.0, 2.0], **exact).ok
    loose = verify_values(tmp_path, [1.5, 2.0], [1.0, 2.0], atol=0.6, rtol=0.0)
    assert loose.ok and loose.atol == 0.6 and loose.checks[0].atol == 0.6


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_outputs_never_pass(tmp_path: Path, bad: float) -> None:
    assert not verify_values(tmp_path, [bad, 1.0], [1.0, 1.0]).ok
    assert not verify_values(tmp_path, [bad, 1.0], [bad, 1.0]).ok  # NaN/inf on both sides too
    assert not verify_values(tmp_path, [1.0, 1.0], [bad, 1.0], atol=1e9).ok


def test_integer_outputs_must_match_exactly(tmp_path: Path) -> None:
    path = mul_onnx(tmp_path / "int.onnx", [3, 4], dtype=np.int64)
    ones = {"input0": np.ones(2, np.int64)}
    same = cu.verify_onnx_export(path, Times([3, 4], torch.int64), inputs=ones)
    assert same.ok and same.max_abs_error == 0.0
    off = cu.verify_onnx_export(path, Times([3, 5], torch.int64), inputs=ones,
                                raise_on_mismatch=False, atol=10.0)
    assert not off.ok and off.max_abs_error == 1.0 and off.max_rel_error == 0.5  # 1 of 2 differ


def test_a_result_has_no_truth_value(tmp_path: Path) -> None:
    result = verify_values(tmp_path, [2.0, 1.0], [1.0, 1.0])
    assert result.ok is False
    with pytest.raises(cu.CourseError, match=r"no truth value: test result\.ok"):
        bool(result)


def test_verify_rejects_broken_files(tmp_path: Path, linear_onnx: Path) -> None:
    data = linear_onnx.read_bytes()
    cases = {"empty.onnx": b"", "truncated.onnx": data[: len(data) // 2],
             "random.onnx": np.random.default_rng(0).bytes(512)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(cu.CourseError, match=f"onnxruntime cannot load {name}"):
            cu.verify_onnx_export(tmp_path / name, Linear())
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    with pytest.raises(cu.CourseError, match="No ONNX file at"):
        cu.verify_onnx_export(folder, Linear())


def test_verify_rejects_bad_inputs_and_tolerances(linear_onnx: Path, dynamic_onnx: Path) -> None:
    for bad in (float("nan"), float("inf")):
        x = np.array([1, bad, 3, 4], np.float32).reshape(1, 1, 1, 4)
        with pytest.raises(cu.CourseError, match=r"'input0' contains NaN or inf"):
            cu.verify_onnx_export(linear_onnx, Linear(), inputs={"input0": x})
    with pytest.raises(cu.CourseError, match=r"must be a numeric array, got dtype <U1"):
        cu.verify_onnx_export(linear_onnx, Linear(),
                              inputs={"input0": np.array(list("abcd")).reshape(1, 1, 1, 4)})
    for name, value in (("rtol", -1e-3), ("rtol", float("nan")), ("atol", -1.0), ("atol", "1e-4"),
                        ("rtol", True)):
        with pytest.raises(cu.CourseError, match=f"{name} must be a finite number >= 0"):
            cu.verify_onnx_export(linear_onnx, Linear(), **{name: value})
    for dims in ({"batch": 0}, {"batch": 2.5}, {"batch": True}):
        with pytest.raises(cu.CourseError, match="dims must map dimension names to positive"):
            cu.verify_onnx_export(dynamic_onnx, Linear(), dims=dims)


def test_shorten_cuts_at_a_word_boundary() -> None:
    from course_utils.export import _shorten

    assert _shorten("short", 10) == "short"
    assert _shorten("the exporter has become the default", 20) == "the exporter has..."
    assert _shorten("abcdefghijklmnopqrstuvwxyz", 10) == "abcdefg..."  # one long word: hard cut
    assert _shorten("one two three", 8) == "one..."


# --------------------------------------------------------------------------- messages
def test_capture_export_messages_records_warnings_prints_and_logs() -> None:
    with cu.capture_export_messages() as said:
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)  # shown once
        print("[torch.onnx] step... ok")
        logging.getLogger("torch.onnx").warning("adapter failed")
        logging.getLogger("torch.onnx").info("quiet detail")
    assert said.warnings == ["DeprecationWarning: old API"]
    assert said.printed == ["[torch.onnx] step... ok"]
    assert said.logged == ["WARNING torch.onnx: adapter failed"]
    assert said.seconds >= 0 and "1 warning(s)" in str(said)
    assert said.all_lines()[0] == "warning: DeprecationWarning: old API"


def test_capture_legacy_exporter_deprecation(tmp_path: Path) -> None:
    with cu.capture_export_messages() as said:
        torch.onnx.export(Linear().eval(), (torch.zeros(1, 1, 1, 4),), str(tmp_path / "l.onnx"),
                          opset_version=12, dynamo=False)
    assert any("legacy TorchScript-based ONNX export" in w for w in said.warnings)


def test_capture_lets_a_failing_export_raise_and_keeps_what_was_said(tmp_path: Path) -> None:
    class NotExportable(nn.Module):
        def forward(self, x):
            print("about to fail")
            return x.numpy()  # leaves the tensor world: no exporter can trace it

    with pytest.raises(Exception) as info:  # the exporter's own error reaches the learner
        with cu.capture_export_messages() as said:
            torch.onnx.export(NotExportable(), (torch.zeros(2),), str(tmp_path / "x.onnx"),
                              dynamo=False)
    assert not isinstance(info.value, cu.CourseError)
    assert "about to fail" in said.printed and said.seconds > 0
    assert not (tmp_path / "x.onnx").exists()


# --------------------------------------------------------------------------- compare
@pytest.fixture(scope="module")
def dynamo_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, cu.ExportMessages, nn.Module]:
    """One dynamo export with a dynamic batch and weights big enough for external data."""
    path = tmp_path_factory.mktemp("dynamo") / "wide.onnx"
    torch.manual_seed(0)
    model = nn.Linear(64, 64).eval()
    with cu.capture_export_messages() as said:
        torch.onnx.export(model, (torch.zeros(2, 64),), str(path), input_names=["input0"],
                          output_names=["output0"],
                          dynamic_shapes={"input": {0: torch.export.Dim("batch")}}, dynamo=True)
    return path, said, model


def test_compare_exports_side_by_side(tmp_path: Path, dynamo_export) -> None:
    dynamo_path, dynamo_said, dynamo_model = dynamo_export
    with cu.capture_export_messages() as legacy_said:
        legacy_export(nn.Linear(64, 64), tmp_path / "wide_legacy.onnx", dynamic=True,
                      example=torch.zeros(2, 64))
    table = cu.compare_exports(
        {"legacy": tmp_path / "wide_legacy.onnx", "dynamo": dynamo_path},
        {"legacy": legacy_said, "dynamo": dynamo_said},
    )
    assert table.labels == ["legacy", "dynamo"]
    assert table.rows["opset"][0] == "12" and int(table.rows["opset"][1]) >= 18
    assert "input0 float[batch, 64]" in table.rows["inputs"][0]
    assert "input0 float[batch, 64]" in table.rows["inputs"][1]
    assert table.rows["weights"][0] == "2 initializer(s): all inside wide_legacy.onnx"
    # weight (16 kB) and bias (256 B) of Linear(64, 64): the bias is not above the 256-byte line
    assert table.rows["weights"][1].startswith("2 initializer(s): 1 in wide.onnx.data (16.4 kB)"), \
        table.rows["weights"][1]
    assert table.rows["weights"][1].endswith("1 inside wide.onnx")
    assert table.rows["nodes"][0] == "1: Gemm"
    assert table.rows["printed"][1].startswith(f"{len(dynamo_said.printed)} line(s)")
    text = str(table)
    assert text.splitlines()[0].split() == ["|", "legacy", "|", "dynamo"]
    assert all(len(line) <= 20 + 2 * 41 for line in text.splitlines())
    # The file computes the module it was exported from, and not a freshly initialised one.
    same = cu.verify_onnx_export(dynamo_path, dynamo_model, batch_sizes=(1, 5))
    assert same.ok and same.batch_sizes == [1, 5] and same.max_abs_error < 1e-5
    other = cu.verify_onnx_export(dynamo_path, nn.Linear(64, 64).eval(), raise_on_mismatch=False)
    assert not other.ok and other.max_rel_error > 0.1


def test_compare_exports_bad_input(tmp_path: Path, linear_onnx: Path) -> None:
    with pytest.raises(cu.CourseError, match="at least one"):
        cu.compare_exports({})
    with pytest.raises(cu.CourseError, match=r"labels \['other'\]"):
        cu.compare_exports({"a": linear_onnx}, {"other": cu.ExportMessages()})
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        cu.compare_exports({"a": tmp_path / "nothing.onnx"})
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe not protobuf \x00\x01")
    with pytest.raises(cu.CourseError, match=r"junk.onnx .* is not a readable ONNX protobuf"):
        cu.compare_exports({"a": junk})
