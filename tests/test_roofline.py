"""Tests for course_utils.roofline: FLOP and byte counts, roofs, the conv report."""

from __future__ import annotations

import importlib
import json

import pytest
import torch
from torch import nn

import course_utils as cu

roofline = importlib.import_module("course_utils.roofline")


def test_conv2d_cost_counts() -> None:
    cost = cu.conv2d_cost(2, 3, 4, 8, 8, 3)  # same padding -> 8x8 output
    assert cost.flops == 2 * 2 * 4 * 8 * 8 * 3 * 9
    assert cost.bytes == 4 * (2 * 3 * 64 + 4 * 3 * 9 + 2 * 4 * 64)
    assert cost.intensity == pytest.approx(cost.flops / cost.bytes)
    strided = cu.conv2d_cost(1, 4, 4, 8, 8, 3, stride=2, padding=1, groups=2, dtype="float16")
    assert strided.flops == 2 * 4 * 4 * 4 * 2 * 9 and "intensity" in repr(strided)


def test_conv2d_cost_counts_grouped_weights_once_per_group() -> None:
    """Planted bug (issue 17): counting in_channels (not in_channels / groups) in the weight bytes
    made a depthwise convolution look 8 times heavier in weights here."""
    depthwise = cu.conv2d_cost(1, 8, 8, 4, 4, 3, groups=8)
    assert depthwise.flops == 2 * 1 * 8 * 4 * 4 * 1 * 9
    assert depthwise.bytes == (8 * 16 + 8 * 1 * 9 + 8 * 16) * 4  # input, weights (8 x 1 x 3 x 3), output
    grouped = cu.conv2d_cost(2, 6, 4, 5, 5, 1, groups=2, dtype="float16")
    assert grouped.bytes == (2 * 6 * 25 + 4 * 3 * 1 + 2 * 4 * 25) * 2
    assert grouped.flops == 2 * 2 * 4 * 25 * 3


def test_conv2d_cost_output_size_with_stride_and_padding() -> None:
    cost = cu.conv2d_cost(1, 1, 1, 8, 8, 3, stride=2, padding=1)  # 4x4 output
    assert cost.flops == 2 * 16 * 9
    assert cost.bytes == (64 + 9 + 16) * 4
    valid = cu.conv2d_cost(1, 1, 1, 8, 8, 3, padding=0)  # 6x6 output
    assert valid.bytes == (64 + 9 + 36) * 4


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


@pytest.fixture
def fixed_timings(monkeypatch):
    """Replace the stopwatch inside roofline: every benchmark returns the same known samples."""
    samples = (2e-3, 1e-3, 4e-3)  # median 2 ms, fastest 1 ms

    def fake_benchmark(fn, *, repeats=10, warmup=0, number=1, name=None, device=None, clock="wall"):
        fn()  # the work still runs once, so a wrong shape or device still fails
        clocks.append(clock)
        return cu.BenchmarkResult(name or "fake", samples, number, clock=clock)

    clocks: list[str] = []

    monkeypatch.setattr(roofline, "benchmark", fake_benchmark)
    fake_benchmark.clocks = clocks
    return samples


def test_the_clock_reaches_every_measurement_of_a_report(fixed_timings, monkeypatch) -> None:
    """On a shared CPU the whole report must use one clock: a roof timed on the wall clock and a
    conv on the thread clock would put the conv above its roof. Planted bug: dropping clock= in
    any one call leaves a "wall" in the list."""
    report = cu.conv_roofline_report("cpu", batch=1, channels=8, size=8, matmul_size=64,
                                     copy_megabytes=1, repeats=3, clock="thread")
    clocks = roofline.benchmark.clocks
    assert len(clocks) == 5 and set(clocks) == {"thread"}  # copy, matmul, conv probe, 1x1, 7x7
    assert report["clock"] == "thread" and all(r["timing"]["clock"] == "thread" for r in report["convs"])
    assert cu.format_roofline_report(report).splitlines()[0].endswith(", thread CPU time)")
    default = cu.conv_roofline_report("cpu", batch=1, channels=8, size=8, matmul_size=64,
                                      copy_megabytes=1, repeats=3)
    assert default["clock"] == "wall" and "thread" not in cu.format_roofline_report(default)


def test_measured_roofs_are_work_over_the_fastest_sample(fixed_timings) -> None:
    peak = cu.measure_peak_flops("cpu", size=64, repeats=3, warmup=0)
    assert peak.value == 2 * 64**3 / 1e-3  # 2 n^3 FLOPs over the fastest sample
    assert peak.unit == "FLOP/s" and "GFLOP/s" in repr(peak) and peak.timing.median_s == 2e-3
    bandwidth = cu.measure_bandwidth("cpu", megabytes=1, repeats=3, warmup=0)
    assert bandwidth.value == 2 * 250_000 * 4 / 1e-3  # read + write of 1 MB of float32
    half = cu.measure_peak_flops("cpu", dtype=torch.bfloat16, size=32, repeats=1, warmup=0)
    assert "bfloat16" in half.what


def test_conv_report_known_answers(fixed_timings) -> None:
    report = cu.conv_roofline_report("cpu", batch=1, channels=8, size=8, matmul_size=64,
                                     copy_megabytes=1, repeats=3, conv_probe=False)
    bandwidth = 2 * 250_000 * 4 / 1e-3
    peak = 2 * 64**3 / 1e-3
    assert report["bandwidth_Bps"] == bandwidth and report["peaks_flops"] == {"float32": peak}
    assert report["peak_sources"] == {"float32": "matmul 64x64"}
    for row in report["convs"]:
        cost = cu.conv2d_cost(1, 8, 8, 8, 8, row["kernel"])
        assert (row["flops"], row["bytes"]) == (cost.flops, cost.bytes)
        assert row["achieved_flops"] == cost.flops / 2e-3  # over the median sample
        bound = min(peak, cost.intensity * bandwidth)
        assert row["roofline_bound_flops"] == bound
        assert row["fraction_of_bound"] == pytest.approx(row["achieved_flops"] / bound)
        assert row["fraction_of_measured_peak"] == pytest.approx(row["achieved_flops"] / peak)
        assert row["kernels"][0] == "aten::conv2d"  # what really ran, from torch.profiler


def test_the_cpu_roof_is_the_faster_of_matmul_and_a_large_convolution(fixed_timings) -> None:
    """With the same (fixed) time per call, the probe convolution does more FLOPs than the 64x64
    matmul, so it sets the roof; the report says so."""
    report = cu.conv_roofline_report("cpu", batch=1, channels=8, size=8, matmul_size=64,
                                     copy_megabytes=1, repeats=3)
    probe = cu.conv2d_cost(1, 256, 256, 28, 28, 5).flops / 1e-3
    assert report["peaks_flops"] == {"float32": probe}
    assert report["peak_sources"] == {"float32": "conv5x5 256ch"}
    assert "peak float32: " in cu.format_roofline_report(report)
    assert "(conv5x5 256ch)" in cu.format_roofline_report(report)
    conv_peak = cu.measure_conv_peak_flops("cpu", channels=4, size=4, kernel=3, repeats=3)
    assert conv_peak.value == cu.conv2d_cost(1, 4, 4, 4, 4, 3).flops / 1e-3 and conv_peak.unit == "FLOP/s"
    with pytest.raises(cu.CourseError, match="channels must be a positive integer"):
        cu.measure_conv_peak_flops("cpu", channels=0)


def test_real_measurements_on_cpu_are_consistent() -> None:
    """A real (unpatched) run on one thread: the roofs follow from their own timings, and no CPU
    core reaches 10 TFLOP/s or 10 TB/s (a shared CI machine may be very slow, never that fast)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        peak = cu.measure_peak_flops("cpu", size=96, repeats=3, warmup=1)
        bandwidth = cu.measure_bandwidth("cpu", megabytes=8, repeats=3, warmup=1)
    finally:
        torch.set_num_threads(threads)
    assert peak.value == pytest.approx(2 * 96**3 / peak.timing.min_s)
    assert bandwidth.value == pytest.approx(2 * 2_000_000 * 4 / bandwidth.timing.min_s)
    assert peak.timing.n == 3 and peak.timing.min_s <= peak.timing.median_s
    assert 1e6 < peak.value < 1e13 and 1e6 < bandwidth.value < 1e13


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
    for row in report["convs"]:
        assert row["achieved_flops"] == pytest.approx(row["flops"] / row["timing"]["median_s"])
    text = cu.format_roofline_report(report)
    assert "peak float32" in text and "7x7" in text and "bound by" in text


def test_format_roofline_report_computes_each_verdict() -> None:
    """The recorded H100 data: FP32 ridge 51/2.96 = 17 FLOP/byte, so the 1x1 (64) is right of it;
    TF32 (ridge 134) and FP16 (ridge 256) put the same 1x1 left of theirs."""
    report = json.loads((cu.repo_root() / "benchmarks" / "results" / "h100.json").read_text())
    rows = {tuple(line.split()[:2]): line.split() for line in cu.format_roofline_report(report).splitlines()
            if line[:1].isdigit()}
    assert rows[("1x1", "float32")][4] == "compute" and rows[("1x1", "float32")][3] == "17"
    assert rows[("1x1", "tf32")][4] == "memory" and rows[("1x1", "float16")][4] == "memory"
    assert {rows[(k, p)][4] for k in ("7x7",) for p in ("float32", "tf32", "float16")} == {"compute"}


def test_bound_by_known_answers() -> None:
    assert cu.bound_by(5.0, 100.0, 10.0) == "memory"  # ridge 10 FLOP/byte
    assert cu.bound_by(10.0, 100.0, 10.0) == "compute"  # at the ridge both roofs meet
    assert cu.bound_by(64.0, 51e12, 2.96e12) == "compute"
    with pytest.raises(cu.CourseError, match="intensity"):
        cu.bound_by(float("nan"), 1.0, 1.0)
    with pytest.raises(cu.CourseError, match="bandwidth"):
        cu.bound_by(1.0, 1.0, 0.0)


def test_model_cost_known_answer() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(256, 10)).eval()
    cost = cu.model_cost(model, torch.zeros(1, 3, 8, 8))
    conv = cu.conv2d_cost(1, 3, 4, 8, 8, 3)
    assert cost.flops == conv.flops + 2 * 256 * 10  # FlopCounterMode: 2 per multiply-add
    feature_map = 4 * 64 * 4  # bytes of one 4 x 8 x 8 float32 tensor
    bn_bytes = 2 * feature_map + 4 * 4 * 4 + 8  # in, out, weight + bias + mean + var, the int64 counter
    relu_bytes = flatten_bytes = 2 * feature_map
    linear_bytes = (256 + 10 + 256 * 10 + 10) * 4  # input, output, weight, bias
    assert cost.bytes == conv.bytes + bn_bytes + relu_bytes + flatten_bytes + linear_bytes
    assert cost.parameters == 4 * 3 * 9 + 2 * 4 + 256 * 10 + 10
    assert cost.intensity == pytest.approx(cost.flops / cost.bytes)
    assert "M parameters" in repr(cost) and cost.name == "Sequential"


def test_model_cost_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="torch.nn.Module"):
        cu.model_cost("resnet", torch.zeros(1))
    with pytest.raises(cu.CourseError, match="example input"):
        cu.model_cost(nn.Linear(2, 2), None)
    with pytest.raises(cu.CourseError, match="could not run"):
        cu.model_cost(nn.Linear(2, 2), torch.zeros(1, 3))
    with pytest.raises(cu.CourseError, match="no convolution or matrix product"):
        cu.model_cost(nn.ReLU(), torch.zeros(4))


def test_kernels_run_names_what_the_profiler_saw() -> None:
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3)
    names = cu.kernels_run(lambda: torch.nn.functional.conv2d(x, w, padding=1))
    assert names[0] == "aten::conv2d" and len(names) == len(set(names))
    assert not set(names) & cu.BOOKKEEPING_OPS
    assert {"aten::_slow_conv2d_forward", "aten::mkldnn_convolution"} & set(names)
    m = x[0, 0].contiguous()
    assert cu.kernels_run(lambda: torch.mm(m, m)) == ["aten::mm"]
    with pytest.raises(cu.CourseError, match="function to call"):
        cu.kernels_run(42)


def test_matmul_alignment_report_on_cpu(fixed_timings) -> None:
    report = cu.matmul_alignment_report("cpu", sizes=(32, 40, 36, 33), dtype="float32", repeats=3, number=1)
    assert [c["alignment"] for c in report["cases"]] == [16, 8, 4, 1]
    for case in [*report["cases"], report["reference"]]:
        n = case["n"]
        assert case["flops"] == 2 * n**3 and case["bytes"] == 3 * n * n * 4
        assert case["achieved_flops"] == 2 * n**3 / 2e-3  # the fixed median
        assert "aten::mm" in case["kernels"]
    assert report["reference"]["tf32"] is False and report["capability"] is None
    text = cu.format_matmul_alignment_report(report)
    assert text.splitlines()[2].split()[:2] == ["32", "16"]
    with pytest.raises(cu.CourseError, match="dtype='int4'"):
        cu.matmul_alignment_report("cpu", dtype="int4")
    with pytest.raises(cu.CourseError, match="at least one"):
        cu.matmul_alignment_report("cpu", sizes=())
    with pytest.raises(cu.CourseError, match="positive integer"):
        cu.matmul_alignment_report("cpu", sizes=(0,))
    with pytest.raises(cu.CourseError, match="not a matmul_alignment_report"):
        cu.format_matmul_alignment_report({"cases": []})


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


def test_kernel_label_known_answers() -> None:
    """Names recorded on the H200 (benchmarks/results/*_h200.json): signatures shortened to the kernel."""
    assert cu.kernel_label("void cudnn::engines_precompiled::nhwcToNchwKernel<float, float, float, true, false, "
                           "(cudnnKernelDataType_t)0>(cudnn::engines_precompiled::nhwc2nchw_params_t<float>, "
                           "float const*, float*)") == "nhwcToNchwKernel"
    cutlass = ("void cutlass::Kernel2<cutlass_75_tensorop_f16_s1688gemm_f16_256x128_nn_align1>"
               "(cutlass_75_tensorop_f16_s1688gemm_f16_256x128_nn_align1::Params)")
    assert cu.kernel_label(cutlass) == "cutlass_75_tensorop_f16_s1688gemm_f16_256x128_nn_align1"
    assert cu.kernel_label("void precomputed_convolve_sgemm<float, 128, 6, 7, 3, 3, 5, 1, false>(int, int)"
                           ) == "precomputed_convolve_sgemm"
    assert cu.kernel_label("aten::mm") == "aten::mm"  # no signature: unchanged
    assert cu.kernel_label("nvjet_sm90_hsh_256x128_64x4_1x2_h_bz_coopA_NNT", width=20) == "nvjet_sm90_hsh_25..."
    assert len(cu.kernel_label("x" * 100, width=30)) == 30
    for bad in ("", "   ", None, 3):
        with pytest.raises(cu.CourseError, match="kernel name"):
            cu.kernel_label(bad)
    with pytest.raises(cu.CourseError, match="width"):
        cu.kernel_label("aten::mm", width=2)


def test_matmul_table_names_the_recorded_kernels_without_memsets() -> None:
    path = cu.repo_root() / "benchmarks" / "results" / "tensor_cores_h200.json"  # committed: no skip
    text = cu.format_matmul_alignment_report(json.loads(path.read_text()), kernel_width=70)
    assert "Memset" not in text and "cutlass_75_tensorop_f16_s1688gemm_f16_256x128_nn_align1" in text
    assert "void " not in text
