"""Tests for course_utils.roofline: FLOP and byte counts, roofs, the conv report."""

from __future__ import annotations

import pytest
import torch

import course_utils as cu


def test_conv2d_cost_counts() -> None:
    cost = cu.conv2d_cost(2, 3, 4, 8, 8, 3)  # same padding -> 8x8 output
    assert cost.flops == 2 * 2 * 4 * 8 * 8 * 3 * 9
    assert cost.bytes == 4 * (2 * 3 * 64 + 4 * 3 * 9 + 2 * 4 * 64)
    assert cost.intensity == pytest.approx(cost.flops / cost.bytes)
    strided = cu.conv2d_cost(1, 4, 4, 8, 8, 3, stride=2, padding=1, groups=2, dtype="float16")
    assert strided.flops == 2 * 4 * 4 * 4 * 2 * 9 and "intensity" in repr(strided)


def test_seven_by_seven_is_far_more_intense_than_one_by_one() -> None:
    one = cu.conv2d_cost(1, 64, 64, 56, 56, 1)
    seven = cu.conv2d_cost(1, 64, 64, 56, 56, 7)
    assert seven.intensity > 20 * one.intensity


def test_matmul_cost_and_bounds() -> None:
    cost = cu.matmul_cost(2, 3, 4, dtype=2)
    assert cost.flops == 48 and cost.bytes == 2 * (8 + 12 + 6)
    assert cu.ridge_point(100.0, 10.0) == 10.0
    assert cu.roofline_bound(1.0, 100.0, 10.0) == 10.0  # memory-bound
    assert cu.roofline_bound(50.0, 100.0, 10.0) == 100.0  # compute-bound
    assert cu.achieved_flops(cost, 2.0) == 24.0
    assert cu.achieved_flops(cost, cu.BenchmarkResult("m", (4.0,))) == 12.0


def test_measurements_on_cpu() -> None:
    peak = cu.measure_peak_flops("cpu", size=64, repeats=2, warmup=1)
    bandwidth = cu.measure_bandwidth("cpu", megabytes=1, repeats=2, warmup=1)
    assert peak.value > 0 and peak.unit == "FLOP/s" and "GFLOP/s" in repr(peak)
    assert bandwidth.value > 0 and bandwidth.unit == "B/s"
    half = cu.measure_peak_flops("cpu", dtype=torch.bfloat16, size=32, repeats=1, warmup=0)
    assert "bfloat16" in half.what


def test_spec_sheet_matching() -> None:
    assert cu.spec_sheet("NVIDIA H100 80GB HBM3")["matched"] == "H100"
    assert cu.spec_sheet("NVIDIA H100 PCIe")["matched"] == "H100 PCIe"
    assert cu.spec_sheet("NVIDIA H200")["bandwidth"] == 4.8e12
    assert cu.spec_sheet("GeForce GTX 1050") is None


def test_conv_roofline_report_on_cpu() -> None:
    report = cu.conv_roofline_report("cpu", batch=1, channels=8, size=8, matmul_size=64,
                                     copy_megabytes=1, repeats=2)
    assert report["device"] == "cpu" and report["spec_sheet"] is None
    assert [row["kernel"] for row in report["convs"]] == [1, 7]
    assert all(row["achieved_flops"] > 0 for row in report["convs"])
    text = cu.format_roofline_report(report)
    assert "peak matmul float32" in text and "7x7" in text


def test_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="positive integer"):
        cu.conv2d_cost(0, 3, 4, 8, 8, 3)
    with pytest.raises(cu.CourseError, match="groups"):
        cu.conv2d_cost(1, 3, 4, 8, 8, 3, groups=2)
    with pytest.raises(cu.CourseError, match="empty"):
        cu.conv2d_cost(1, 3, 4, 2, 2, 7, padding=0)
    with pytest.raises(cu.CourseError, match="padding"):
        cu.conv2d_cost(1, 3, 4, 8, 8, 3, padding=-1)
    with pytest.raises(cu.CourseError, match="Unknown dtype"):
        cu.matmul_cost(2, 2, 2, dtype="float8")
    with pytest.raises(cu.CourseError, match="peak_flops"):
        cu.roofline_bound(1.0, 0.0, 1.0)
    with pytest.raises(cu.CourseError, match="intensity"):
        cu.roofline_bound(-1.0, 1.0, 1.0)
    with pytest.raises(cu.CourseError, match="bandwidth"):
        cu.ridge_point(1.0, -5.0)
    with pytest.raises(cu.CourseError, match="positive time"):
        cu.achieved_flops(cu.matmul_cost(1, 1, 1), 0.0)
    with pytest.raises(cu.CourseError, match="Unknown device"):
        cu.measure_peak_flops("tpu")
    with pytest.raises(cu.CourseError, match="megabytes"):
        cu.measure_bandwidth("cpu", megabytes=0)
    with pytest.raises(cu.CourseError, match="tf32"):
        cu.conv_roofline_report("cpu", precisions=("tf32",))
    with pytest.raises(cu.CourseError, match="precision"):
        cu.conv_roofline_report("cpu", precisions=("float8",), matmul_size=8, copy_megabytes=1,
                                repeats=1, channels=2, size=4)
    with pytest.raises(cu.CourseError, match="not a conv_roofline_report"):
        cu.format_roofline_report({"device": "cpu"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_clear() -> None:
    with pytest.raises(cu.CourseError, match="no CUDA GPU"):
        cu.measure_bandwidth("cuda")
