"""Tests for course_utils.timing: the timer, comparisons, auto-tuning."""

from __future__ import annotations

import importlib
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
