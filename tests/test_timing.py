"""Tests for course_utils.timing: the timer, comparisons, auto-tuning."""

from __future__ import annotations

import importlib
import re
import time

import numpy as np
import pytest

import course_utils as cu

bm = importlib.import_module("course_utils.timing")  # the module, not the function


def test_benchmark_counts_warmup_and_repeats() -> None:
    calls = []
    result = cu.benchmark(lambda: calls.append(1), repeats=5, warmup=2, number=3, name="noop")
    assert len(calls) == 2 + 5 * 3 and result.n == 5 and result.number == 3
    assert result.device == "cpu"
    assert result.min_s <= result.median_s <= result.max_s
    assert repr(result).startswith("noop: median ") and "(IQR), n=5" in repr(result)


def test_benchmark_measures_time() -> None:
    result = cu.benchmark(lambda: time.sleep(0.002), repeats=3, warmup=0)
    assert result.median_s >= 0.0015
    assert result.iqr_s >= 0 and result.std_s >= 0
    assert result.per_second(1.0) == pytest.approx(1 / result.median_s)
    data = result.to_dict()
    assert data["n"] == 3 and data["median_s"] == result.median_s


def test_result_statistics_are_exact() -> None:
    result = cu.BenchmarkResult("x", (1e-3, 2e-3, 3e-3, 4e-3, 5e-3))
    assert result.median_ms == pytest.approx(3.0)
    assert result.quartiles_s == pytest.approx((2e-3, 4e-3))
    assert str(result) == "median 3 ms ± 2 (IQR), n=5"
    single = cu.BenchmarkResult("one", (1.0,))
    assert single.iqr_s == 0 and single.std_s == 0


def test_format_seconds() -> None:
    assert cu.format_seconds(1.5) == "1.5 s"
    assert cu.format_seconds(0.00118) == "1.18 ms"
    assert cu.format_seconds(4.5e-5) == "45 µs"
    assert cu.format_seconds(8e-7) == "800 ns"
    with pytest.raises(cu.CourseError, match="finite"):
        cu.format_seconds(-1.0)


def test_cuda_detection_without_gpu() -> None:
    assert bm._is_cuda("cuda:0") and not bm._is_cuda("cpu")

    class FakeTensor:
        is_cuda = True

    assert bm._is_cuda([1, {"a": FakeTensor()}])
    assert not bm._is_cuda(np.ones(2))


def test_compare_table_and_ratios() -> None:
    slow = cu.BenchmarkResult("slow", (2e-3,) * 3)
    fast = cu.BenchmarkResult("fast", (1e-3,) * 3)
    table = cu.compare([slow, fast])
    assert table.ratio("fast") == pytest.approx(0.5) and table.speedup("fast") == pytest.approx(2)
    assert table.fastest.name == "fast"
    assert "vs slow" in str(table) and "0.50x" in repr(table)
    header, slow_row, fast_row = str(table).splitlines()
    assert "time vs slow" in header and header.rstrip().endswith("speed-up")
    assert slow_row.split()[-2:] == ["1.00x", "1.00x"]
    assert fast_row.split()[-2:] == ["0.50x", "2.00x"]  # half the time = twice the speed
    assert cu.compare([slow, fast], baseline="fast").ratio("slow") == pytest.approx(2)


def test_autotune_picks_fastest_and_checks_outputs() -> None:
    a = np.arange(6.0)
    tuned = cu.autotune({"slow": lambda: (time.sleep(0.003), a)[1], "fast": lambda: a.copy()},
                        repeats=3, atol=0.0)
    assert tuned.winner == "fast" and tuned.max_abs_diff["fast"] == 0.0
    assert "winner: fast" in repr(tuned)
    with pytest.raises(cu.CourseError, match="differs"):
        cu.autotune({"ref": lambda: a, "wrong": lambda: a + 1}, atol=1e-6)
    with pytest.raises(cu.CourseError, match="differs"):
        cu.autotune({"ref": lambda: a, "shape": lambda: a[:2]}, atol=1e-6)


def test_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="function to call"):
        cu.benchmark(42)
    with pytest.raises(cu.CourseError, match="repeats must be an integer >= 1"):
        cu.benchmark(lambda: None, repeats=0)
    with pytest.raises(cu.CourseError, match="warmup"):
        cu.benchmark(lambda: None, warmup=-1)
    with pytest.raises(cu.CourseError, match="number"):
        cu.benchmark(lambda: None, number=1.5)
    with pytest.raises(cu.CourseError, match="non-empty"):
        cu.compare([])
    one = cu.BenchmarkResult("a", (1.0,))
    with pytest.raises(cu.CourseError, match="distinct"):
        cu.compare([one, one])
    with pytest.raises(cu.CourseError, match="baseline"):
        cu.compare([one], baseline="b")
    with pytest.raises(cu.CourseError, match="No result named"):
        cu.compare([one])["b"]
    with pytest.raises(cu.CourseError, match="at least one"):
        cu.autotune({})


# --- known answers and the planted bugs of issue 17 -------------------------------------------

def test_statistics_known_answers_for_an_even_number_of_samples() -> None:
    result = cu.BenchmarkResult("x", (4e-3, 1e-3, 3e-3, 2e-3))  # order does not matter
    assert result.median_s == pytest.approx(2.5e-3)
    assert result.quartiles_s == pytest.approx((1.75e-3, 3.25e-3))  # inclusive quartiles
    assert result.iqr_s == pytest.approx(1.5e-3)
    assert result.std_s == pytest.approx(1.2909944e-3)  # sample standard deviation
    assert (result.min_s, result.max_s) == (1e-3, 4e-3)
    assert result.per_second(5.0) == pytest.approx(2000.0)
    assert result.to_dict() == {"name": "x", "device": "cpu", "clock": "wall", "n": 4, "number": 1,
                                "median_s": result.median_s, "iqr_s": result.iqr_s, "min_s": 1e-3,
                                "max_s": 4e-3, "std_s": result.std_s}


def test_compare_summary_prints_one_ratio() -> None:
    base = cu.BenchmarkResult("unfused", (2.0e-3, 2.0e-3, 2.2e-3))
    fused = cu.BenchmarkResult("fused", (1.0e-3, 1.0e-3, 1.05e-3))
    line = cu.compare([base, fused]).summary("fused")
    assert line == "fused: 1 ms vs 2 ms for unfused (medians, IQR up to 5%): 2.00x as fast"
    assert len(re.findall(r"\d+\.\d+x", line)) == 1  # one ratio, not three restatements
    with pytest.raises(cu.CourseError, match="No result named 'other'"):
        cu.compare([base, fused]).summary("other")


def test_benchmark_agrees_with_torch_utils_benchmark() -> None:
    """cu.benchmark and torch.utils.benchmark.Timer, timing the same work the same way (blocks of
    number_per_run calls, the same thread CPU clock, so that other programs on a busy machine
    cannot push one and not the other), agree within a factor 1.5: a real bug (not dividing by
    the calls per block, timing the warm-up) is off by 10x or more."""
    import torch
    import torch.utils.benchmark as torch_benchmark

    a = torch.randn(192, 192)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Timer runs with one thread unless told otherwise
    try:
        theirs = torch_benchmark.Timer("a @ a", globals={"a": a}, timer=time.thread_time
                                       ).blocked_autorange(min_run_time=0.1)
        ours = cu.benchmark(lambda: a @ a, repeats=10, warmup=3, number=theirs.number_per_run,
                            clock="thread")
    finally:
        torch.set_num_threads(threads)
    assert ours.clock == "thread" and ours.number == theirs.number_per_run
    assert 2 / 3 < ours.median_s / theirs.median < 1.5, (ours, theirs)


def _busy(seconds: float) -> None:
    """Spin the CPU for `seconds` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_thread_clock_ignores_time_the_thread_did_not_run() -> None:
    """A busy machine takes the core away from us; sleeping is the same from the thread's point of
    view (no CPU time passes). 2 ms of work with 6 ms of sleep in every other call: the wall clock
    sees the sleeps, the thread clock sees only the work. Planted bug: reading perf_counter for
    clock="thread" makes the thread median 5 ms and fails this test."""
    calls = []

    def disturbed() -> None:
        _busy(0.002)
        calls.append(1)
        if len(calls) % 2:
            time.sleep(0.006)

    wall = cu.benchmark(disturbed, repeats=8, warmup=1)
    thread = cu.benchmark(disturbed, repeats=8, warmup=1, clock="thread")
    assert thread.clock == "thread" and wall.clock == "wall"
    assert wall.max_s > 0.0075  # the sleeps are in the wall clock's samples
    assert 0.0019 < thread.median_s < 0.0035 and thread.max_s < 0.005  # and not in the thread clock's
    assert str(thread).endswith("n=8, thread CPU time") and "clock" in thread.to_dict()
    summary = cu.compare([thread, cu.benchmark(lambda: _busy(0.001), repeats=3, clock="thread",
                                               name="half")]).summary("half")
    assert "(CPU-time medians, IQR up to" in summary and summary.endswith("x as fast")


def test_thread_clock_falls_back_where_it_is_too_coarse(monkeypatch) -> None:
    """Windows' thread clock ticks every 15.6 ms: useless for a kernel. There the wall clock is used
    and the result says so."""
    real = time.get_clock_info

    def coarse(name):
        info = real(name)
        if name == "thread_time":
            info.resolution = 0.015625
        return info

    monkeypatch.setattr(bm.time, "get_clock_info", coarse)
    assert cu.benchmark(lambda: None, repeats=2, clock="thread").clock == "wall"


def test_clock_bad_input_and_gpu_work() -> None:
    with pytest.raises(cu.CourseError, match="clock='cpu'.*use one of"):
        cu.benchmark(lambda: None, clock="cpu")

    class FakeCudaTensor:
        is_cuda = True

    with pytest.raises(cu.CourseError, match="cannot time GPU work"):
        cu.benchmark(lambda: FakeCudaTensor(), clock="thread", device="cpu")
    wall = cu.BenchmarkResult("wall", (1e-3,))
    thread = cu.BenchmarkResult("thread", (1e-3,), clock="thread")
    with pytest.raises(cu.CourseError, match="different clocks"):
        cu.compare([wall, thread])
    tuned = cu.autotune({"a": lambda: _busy(0.0005), "b": lambda: None}, repeats=2, clock="thread")
    assert tuned.winner == "b" and {r.clock for r in tuned.comparison.results} == {"thread"}


def test_autotune_rejects_a_nan_output() -> None:
    """Planted bug (issue 17): `if diff > atol` lets NaN through (NaN > x is False); the gate must
    ask `diff <= atol`, which NaN fails."""
    a = np.arange(4.0)
    nan_out = a.copy()
    nan_out[2] = np.nan
    with pytest.raises(cu.CourseError, match="'broken' differs"):
        cu.autotune({"ref": lambda: a, "broken": lambda: nan_out}, atol=1e-3, repeats=1)
    with pytest.raises(cu.CourseError, match="'inf' differs"):
        cu.autotune({"ref": lambda: a, "inf": lambda: a + np.inf}, atol=1e-3, repeats=1)
    with pytest.raises(cu.CourseError, match="reference candidate 'ref'"):
        cu.autotune({"ref": lambda: nan_out, "other": lambda: nan_out}, atol=1e-3, repeats=1)


def test_autotune_gate_on_torch_tensors_and_tolerance_edges() -> None:
    import torch

    x = torch.arange(6, dtype=torch.bfloat16)
    tuned = cu.autotune({"a": lambda: x, "b": lambda: x.clone(), "c": lambda: x + 0.5},
                        atol=0.5, repeats=1)
    assert tuned.max_abs_diff == {"b": 0.0, "c": 0.5}  # exactly at the tolerance is eligible
    with pytest.raises(cu.CourseError, match="'c' differs .* by 0.5"):
        cu.autotune({"a": lambda: x, "c": lambda: x + 0.5}, atol=0.49, repeats=1)
    nan = torch.tensor([1.0, float("nan")])
    with pytest.raises(cu.CourseError, match="'nan' differs"):
        cu.autotune({"a": lambda: torch.ones(2), "nan": lambda: nan}, atol=10.0, repeats=1)
    with pytest.raises(cu.CourseError, match="atol must be"):
        cu.autotune({"a": lambda: x}, atol=-1.0)
    unchecked = cu.autotune({"a": lambda: x, "c": lambda: x + 100}, repeats=1)  # no atol: no gate
    assert unchecked.max_abs_diff == {}


def test_autotune_winner_is_the_smallest_median() -> None:
    def sleeper(seconds):
        return lambda: (time.sleep(seconds), np.zeros(1))[1]

    tuned = cu.autotune({"slow": sleeper(0.004), "fast": sleeper(0.0), "middle": sleeper(0.002)},
                        repeats=3, atol=0.0)
    medians = {r.name: r.median_s for r in tuned.comparison.results}
    assert tuned.winner == min(medians, key=medians.get) == "fast"
    assert tuned.comparison.baseline == "slow"


def test_autotune_gate_needs_outputs_to_compare() -> None:
    """Candidates that work in place and return None cannot be compared: say so, not "differs by nan"."""
    with pytest.raises(cu.CourseError, match="returned None"):
        cu.autotune({"a": lambda: None, "b": lambda: None}, atol=1.0, repeats=1)
    assert cu.autotune({"a": lambda: None, "b": lambda: None}, repeats=1).winner in ("a", "b")  # no gate
