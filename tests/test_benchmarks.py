"""The GPU benchmark scripts also run on a CPU (small shapes), so they cannot rot unseen, and every
result file they write, the recorded GPU ones included, is checked for numbers that agree with
each other and with physics (nothing faster than the roofline of the vendor's spec sheet)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest

import course_utils as cu

RESULTS = cu.repo_root() / "benchmarks" / "results"
CONV_RESULTS = sorted(p for p in RESULTS.glob("*.json") if "convs" in json.loads(p.read_text()))
MATMUL_RESULTS = sorted(p for p in RESULTS.glob("*.json")
                        if json.loads(p.read_text()).get("benchmark") == "matmul_alignment")
_BYTES = {"float32": 4, "tf32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _check_timing(timing: dict) -> None:
    assert timing["n"] >= 2 and timing["number"] >= 1
    assert 0 < timing["min_s"] <= timing["median_s"] <= timing["max_s"]
    assert 0 <= timing["iqr_s"] <= timing["max_s"] - timing["min_s"]


def _check_labels(report: dict) -> None:
    assert report["device"] in ("cpu", "cuda") and report["device_name"]
    datetime.datetime.strptime(report["date"], "%Y-%m-%d %H:%M UTC")
    assert report["torch"] and report["script"].startswith("benchmarks/")


def check_conv_report(report: dict) -> None:
    """Every number of a conv_roofline report follows from its shape, its timings and its roofs."""
    _check_labels(report)
    shape = report["shape"]
    b, c, s = shape["batch"], shape["channels"], shape["size"]
    bandwidth = report["bandwidth_Bps"]
    assert bandwidth > 0 and all(p > 0 for p in report["peaks_flops"].values())
    for row in report["convs"]:
        k, precision = row["kernel"], row["precision"]
        size = _BYTES[precision]
        assert row["flops"] == 2 * b * c * c * s * s * k * k  # same padding, stride 1
        assert row["bytes"] == (2 * b * c * s * s + c * c * k * k) * size  # input + output + weights
        assert _close(row["intensity"], row["flops"] / row["bytes"])
        _check_timing(row["timing"])
        assert _close(row["achieved_flops"], row["flops"] / row["timing"]["median_s"])
        peak = report["peaks_flops"][precision]
        bound = min(peak, row["intensity"] * bandwidth)
        assert _close(row["roofline_bound_flops"], bound)
        assert _close(row["fraction_of_bound"], row["achieved_flops"] / bound)
        assert _close(row["fraction_of_measured_peak"], row["achieved_flops"] / peak)
        spec = report.get("spec_sheet")
        if spec:  # physics: nothing beats the vendor's roofline
            spec_bound = min(spec[precision], row["intensity"] * spec["bandwidth"])
            assert row["achieved_flops"] <= spec_bound, f"{k}x{k} {precision} beats the spec roofline"
            assert _close(row["fraction_of_spec_peak"], row["achieved_flops"] / spec[precision])
    if report.get("spec_sheet"):
        spec = report["spec_sheet"]
        assert spec["matched"] in report["device_name"]
        assert bandwidth <= spec["bandwidth"]
        for precision, peak in report["peaks_flops"].items():
            assert peak <= spec[precision] * 1.02, f"measured {precision} peak beats the spec sheet"


def _alignment(n: int) -> int:
    return next(a for a in (16, 8, 4, 2, 1) if n % a == 0)


def check_matmul_report(report: dict) -> None:
    """Every number of a matmul_alignment report follows from its sizes and its timings."""
    _check_labels(report)
    assert report["benchmark"] == "matmul_alignment"
    cases = [*report["cases"], report["reference"]]
    assert report["reference"]["tf32"] is False
    for case in cases:
        m, n, k = case["m"], case["n"], case["k"]
        assert case["flops"] == 2 * m * n * k
        assert case["bytes"] == (m * k + k * n + m * n) * _BYTES[case["dtype"]]
        assert case["alignment"] == _alignment(n)
        _check_timing(case["timing"])
        assert _close(case["achieved_flops"], case["flops"] / case["timing"]["median_s"])
        assert case["kernels"] and all(isinstance(name, str) and name for name in case["kernels"])
    assert {c["dtype"] for c in report["cases"]} == {report["dtype"]}
    if report["device"] == "cuda":
        assert report["capability"] and len(report["capability"]) == 2
        spec = report.get("spec_sheet")
        if spec:
            precision = report["dtype"]
            for case in report["cases"]:
                assert case["achieved_flops"] <= spec[precision], f"n={case['n']} beats the spec sheet"
            assert report["reference"]["achieved_flops"] <= spec["float32"] * 1.02


def _run(script: str, out, *args: str) -> dict:
    completed = subprocess.run(
        [sys.executable, str(cu.repo_root() / "benchmarks" / script), "--device", "cpu",
         "--out", str(out), *args],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"written: {out}" in completed.stdout
    return json.loads(out.read_text())


def test_conv_roofline_script_on_cpu_writes_a_consistent_report(tmp_path) -> None:
    report = _run("conv_roofline.py", tmp_path / "cpu.json", "--repeats", "2", "--matmul-size", "256",
                  "--channels", "16", "--size", "28")
    assert report["device"] == "cpu" and report["spec_sheet"] is None
    assert report["shape"] == {"batch": 1, "channels": 16, "size": 28}
    assert [(r["kernel"], r["precision"]) for r in report["convs"]] == [(1, "float32"), (7, "float32")]
    assert all(r["timing"]["n"] == 2 for r in report["convs"])
    check_conv_report(report)


def test_tensor_cores_script_on_cpu_writes_a_consistent_report(tmp_path) -> None:
    report = _run("tensor_cores.py", tmp_path / "tc.json", "--sizes", "64", "72", "68", "65",
                  "--repeats", "2", "--number", "1")
    assert [c["n"] for c in report["cases"]] == [64, 72, 68, 65]
    assert [c["alignment"] for c in report["cases"]] == [16, 8, 4, 1]
    assert all("aten::mm" in c["kernels"] for c in report["cases"])  # what the profiler saw
    check_matmul_report(report)
    text = cu.format_matmul_alignment_report(report)
    assert "aten::mm" in text and len(text.splitlines()) == 2 + 4 + 1


@pytest.mark.parametrize("path", CONV_RESULTS, ids=lambda p: p.name)
def test_recorded_conv_roofline_results_are_self_consistent(path) -> None:
    report = json.loads(path.read_text())
    assert report["device"] == "cuda" and report["spec_sheet"], "a recorded result comes from a GPU"
    check_conv_report(report)


@pytest.mark.parametrize("path", MATMUL_RESULTS, ids=lambda p: p.name)
def test_recorded_tensor_core_results_are_self_consistent(path) -> None:
    report = json.loads(path.read_text())
    assert report["device"] == "cuda", "a recorded result comes from a GPU"
    check_matmul_report(report)


def test_the_recorded_h100_roofline_is_there_and_checked() -> None:
    assert RESULTS / "h100.json" in CONV_RESULTS


@pytest.mark.parametrize("mutate", [
    lambda r: r["convs"][0].update(achieved_flops=r["convs"][0]["achieved_flops"] * 1.1),
    lambda r: r["convs"][1].update(intensity=r["convs"][1]["intensity"] / 2),
    lambda r: r["convs"][2].update(bytes=r["convs"][2]["bytes"] + 4),
    lambda r: r.update(bandwidth_Bps=r["spec_sheet"]["bandwidth"] * 1.5),
    lambda r: r.update(date="yesterday"),
])
def test_the_consistency_check_catches_a_doctored_result(mutate) -> None:
    report = json.loads((RESULTS / "h100.json").read_text())
    mutate(report)
    with pytest.raises((AssertionError, ValueError)):
        check_conv_report(report)
