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
def dynamo_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, cu.ExportMessages]:
    """One dynamo export with a dynamic batch and weights big enough for external data."""
    path = tmp_path_factory.mktemp("dynamo") / "wide.onnx"
    model = nn.Linear(64, 64).eval()
    with cu.capture_export_messages() as said:
        torch.onnx.export(model, (torch.zeros(2, 64),), str(path), input_names=["input0"],
                          output_names=["output0"],
                          dynamic_shapes={"input": {0: torch.export.Dim("batch")}}, dynamo=True)
    return path, said


def test_compare_exports_side_by_side(tmp_path: Path, dynamo_export) -> None:
    dynamo_path, dynamo_said = dynamo_export
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
    assert "all inside wide_legacy.onnx" in table.rows["weights"][0]
    assert "wide.onnx.data" in table.rows["weights"][1]
    assert "Gemm" in table.rows["nodes"][0]
    assert table.rows["printed"][1].startswith(f"{len(dynamo_said.printed)} line(s)")
    text = str(table)
    assert text.splitlines()[0].split() == ["|", "legacy", "|", "dynamo"]
    assert all(len(line) <= 20 + 2 * 41 for line in text.splitlines())
    assert cu.verify_onnx_export(dynamo_path, nn.Linear(64, 64), raise_on_mismatch=False)


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
