"""A careful timer for notebooks and benchmarks: warm-up, GPU sync, repeats, median and spread.

Timing one call with `time.time()` lies in three ways: the first calls pay for lazy
initialisation (warm-up fixes it), CUDA kernels run asynchronously (synchronising the
device fixes it), and one sample hides the noise (repeats with a median and a spread fix
it). `benchmark` does all three and returns a `BenchmarkResult` whose repr reads like
"median 1.18 ms ± 0.05 (IQR), n=50"; `compare` puts several side by side (time relative to
a baseline, and speed-up over it) and `autotune` picks the fastest of several correct
implementations, as TensorRT does per layer.

Why a helper when `torch.utils.benchmark.Timer` exists (notebook 01 shows it once and checks that
both agree)? `Timer` times torch statements; this one times any Python callable (onnxruntime
sessions, TensorRT contexts, numpy), synchronises CUDA by itself when the work is on a GPU,
keeps every sample so that the spread (IQR) is printed beside the median, and feeds `compare`,
`autotune` and `cu.plot_timings` directly.
Taught in: 01_tensorrt_in_context (used by every notebook that times something).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import CourseError

__all__ = [
    "BenchmarkResult", "benchmark", "Comparison", "compare", "TuningResult", "autotune",
    "format_seconds", "CLOCKS",
]

#: What `benchmark(clock=...)` accepts: "wall" (time.perf_counter, what a user waits) and
#: "thread" (time.thread_time: CPU time of the calling thread, blind to other programs).
CLOCKS = ("wall", "thread")
#: thread_time is only used where it resolves a microsecond (Linux, macOS; Windows ticks 15.6 ms).
_FINE_ENOUGH_S = 1e-6


def format_seconds(seconds: float) -> str:
    """A duration with a readable unit: '812 ns', '45.3 µs', '1.18 ms', '2.40 s'.

    Taught in: 01_tensorrt_in_context.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise CourseError(f"format_seconds needs a finite duration >= 0, got {seconds!r}.")
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


@dataclass(frozen=True)
class BenchmarkResult:
    """Per-call times (seconds) of one benchmarked function, with robust summaries."""

    name: str
    times_s: tuple[float, ...]
    number: int = 1  # calls averaged inside each sample
    device: str = "cpu"
    clock: str = "wall"  # "wall" (perf_counter) or "thread" (CPU time of the calling thread)

    @property
    def n(self) -> int:
        return len(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def max_s(self) -> float:
        return max(self.times_s)

    @property
    def std_s(self) -> float:
        return statistics.stdev(self.times_s) if self.n > 1 else 0.0

    @property
    def quartiles_s(self) -> tuple[float, float]:
        """First and third quartile (equal to the median for one sample)."""
        if self.n < 2:
            return (self.median_s, self.median_s)
        q1, _, q3 = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return (q1, q3)

    @property
    def iqr_s(self) -> float:
        q1, q3 = self.quartiles_s
        return q3 - q1

    def per_second(self, amount: float) -> float:
        """`amount` (FLOPs, bytes, frames) divided by the median time: a rate."""
        return amount / self.median_s

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON files (times in seconds)."""
        return {
            "name": self.name, "device": self.device, "clock": self.clock, "n": self.n,
            "number": self.number, "median_s": self.median_s, "iqr_s": self.iqr_s,
            "min_s": self.min_s, "max_s": self.max_s, "std_s": self.std_s,
        }

    def __str__(self) -> str:
        median = format_seconds(self.median_s)
        unit = median.split()[1]
        scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}[unit]
        cpu_time = ", thread CPU time" if self.clock == "thread" else ""
        return f"median {median} ± {self.iqr_s / scale:.2g} (IQR), n={self.n}{cpu_time}"

    def __repr__(self) -> str:
        return f"{self.name}: {self}"


def _is_cuda(value: Any) -> bool:
    """True when `value` is (or holds) a CUDA tensor or names a CUDA device."""
    if isinstance(value, (list, tuple)):
        return any(_is_cuda(v) for v in value)
    if isinstance(value, Mapping):
        return any(_is_cuda(v) for v in value.values())
    if isinstance(value, str):
        return value.startswith("cuda")
    if isinstance(getattr(value, "is_cuda", None), bool):  # a torch tensor or module output
        return value.is_cuda
    return type(value).__name__ == "device" and getattr(value, "type", None) == "cuda"


def _synchronize() -> None:
    import torch

    torch.cuda.synchronize()


def _clock(clock: Any) -> tuple[str, Callable[[], float]]:
    """The clock `benchmark` reads: ("wall", perf_counter) or ("thread", thread_time)."""
    if clock not in CLOCKS:
        raise CourseError(f"clock={clock!r}: use one of {CLOCKS} ('thread' times CPU work "
                          "with this thread's CPU time, which other programs cannot inflate).")
    if clock == "thread" and time.get_clock_info("thread_time").resolution <= _FINE_ENOUGH_S:
        return "thread", time.thread_time
    return "wall", time.perf_counter  # also where thread_time is too coarse to time a kernel


def benchmark(
    fn: Callable[[], Any],
    *,
    repeats: int = 20,
    warmup: int = 3,
    number: int = 1,
    name: str | None = None,
    device: Any = None,
    clock: str = "wall",
) -> BenchmarkResult:
    """Time `fn()` properly: `warmup` untimed calls, then `repeats` samples of `number` calls.

    The GPU is synchronised before and after each sample when `device` is CUDA (a string
    like "cuda", a torch.device or a tensor) or when `fn` returns a CUDA tensor, because
    CUDA kernels run asynchronously and the clock would otherwise stop too early.
    Each sample is the mean of `number` calls (raise it for microsecond kernels).
    `clock="thread"` measures single-threaded CPU work in this thread's CPU time, which a busy
    machine cannot inflate (where the platform's thread clock is coarser than 1 µs, the wall
    clock is used; `result.clock` says which); GPU work must use the wall clock.
    Taught in: 01_tensorrt_in_context.
    """
    if not callable(fn):
        raise CourseError(f"benchmark() needs a function to call, got {type(fn).__name__}. "
                          "Wrap the work in a lambda: benchmark(lambda: model(x)).")
    checks = (("repeats", repeats, 1), ("warmup", warmup, 0), ("number", number, 1))
    for label, value, low in checks:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise CourseError(f"benchmark(): {label} must be an integer >= {low}, got {value!r}.")
    clock_name, now = _clock(clock)
    sync = _is_cuda(device)
    for _ in range(warmup):
        sync = _is_cuda(fn()) or sync
    if warmup == 0:  # still learn whether the work is on the GPU, from one untimed call
        sync = _is_cuda(fn()) or sync
    if sync and clock == "thread":
        raise CourseError("clock='thread' cannot time GPU work: the thread's CPU time stops while "
                          "it waits for the GPU. Use the default clock='wall' for CUDA.")
    times = []
    for _ in range(repeats):
        if sync:
            _synchronize()
        start = now()
        for _ in range(number):
            fn()
        if sync:
            _synchronize()
        times.append((now() - start) / number)
    label = name or getattr(fn, "__name__", "fn")
    return BenchmarkResult(label, tuple(times), number, "cuda" if sync else "cpu", clock_name)


@dataclass(frozen=True)
class Comparison:
    """Several results side by side, each against the baseline in two directions.

    `ratio` (column "time vs <baseline>") is this median over the baseline's: below 1 means
    faster. `speedup` (column "speed-up") is the baseline's median over this one: above 1
    means faster.
    """

    results: tuple[BenchmarkResult, ...]
    baseline: str

    def ratio(self, name: str) -> float:
        """How many times slower `name` is than the baseline (< 1 means faster)."""
        return self[name].median_s / self[self.baseline].median_s

    def speedup(self, name: str) -> float:
        """How many times faster `name` is than the baseline."""
        return 1.0 / self.ratio(name)

    @property
    def fastest(self) -> BenchmarkResult:
        return min(self.results, key=lambda r: r.median_s)

    def __getitem__(self, name: str) -> BenchmarkResult:
        for result in self.results:
            if result.name == name:
                return result
        raise CourseError(f"No result named {name!r}; have {[r.name for r in self.results]}.")

    def table(self) -> str:
        """One row per result: median, IQR, n, time relative to the baseline and speed-up.

        "time vs <baseline>" is this median over the baseline's (0.80x: takes 80 % of the
        time); "speed-up" is the inverse, baseline over this (1.25x: runs 1.25 times as fast).
        Taught in: 01_tensorrt_in_context.
        """
        width = max(len(r.name) for r in self.results)
        time_header = f"time vs {self.baseline}"
        lines = [f"{'':{width}}  {'median':>10}  {'IQR':>9}  {'n':>4}  "
                 f"{time_header:>{len(time_header)}}  {'speed-up':>8}"]
        for r in self.results:
            time_ratio = f"{self.ratio(r.name):.2f}x"
            lines.append(
                f"{r.name:{width}}  {format_seconds(r.median_s):>10}  "
                f"{format_seconds(r.iqr_s):>9}  {r.n:>4}  {time_ratio:>{len(time_header)}}  "
                f"{self.speedup(r.name):>7.2f}x"
            )
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        return self.table()

    def summary(self, name: str) -> str:
        """One line, one ratio: "fused: 2.78 ms vs 2.86 ms for unfused (median, IQR 1%): 1.03x as fast".

        The ratio is the speed-up over the baseline (baseline median / this median), the spread
        is the larger relative IQR of the two. Taught in: 01_tensorrt_in_context.
        """
        this, base = self[name], self[self.baseline]
        spread = max(this.iqr_s / this.median_s, base.iqr_s / base.median_s)
        medians = "CPU-time medians" if this.clock == base.clock == "thread" else "medians"
        return (f"{name}: {format_seconds(this.median_s)} vs {format_seconds(base.median_s)} for "
                f"{self.baseline} ({medians}, IQR up to {spread:.0%}): {self.speedup(name):.2f}x as fast")


def compare(results: Sequence[BenchmarkResult], baseline: str | None = None) -> Comparison:
    """Put results side by side: time vs `baseline` (default: the first result) and speed-up.

    Taught in: 01_tensorrt_in_context.
    """
    results = tuple(results)
    if not results or not all(isinstance(r, BenchmarkResult) for r in results):
        raise CourseError("compare() needs a non-empty list of BenchmarkResult (from benchmark()).")
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        raise CourseError(
            f"compare() needs distinct names, got {names}; pass name= to benchmark()."
        )
    if len({r.clock for r in results}) > 1:
        raise CourseError(f"compare() got timings from different clocks "
                          f"{sorted({r.clock for r in results})}: time them all with the same clock=.")
    baseline = baseline or names[0]
    if baseline not in names:
        raise CourseError(f"baseline {baseline!r} is not one of {names}.")
    return Comparison(results, baseline)


@dataclass(frozen=True)
class TuningResult:
    """What `autotune` measured: every candidate's timing and the winner."""

    comparison: Comparison
    winner: str
    outputs_agree: bool = True
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"{self.comparison.table()}\nwinner: {self.winner}"


def _as_numpy(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):  # a torch tensor, on any device, in any float type (bfloat16 too)
        x = x.detach().cpu()
        return (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def _all_finite(x: Any) -> bool:
    import numpy as np

    array = _as_numpy(x)
    return bool(np.all(np.isfinite(array))) if np.issubdtype(array.dtype, np.number) else True


def _max_abs_diff(a: Any, b: Any) -> float:
    import numpy as np

    a, b = _as_numpy(a), _as_numpy(b)
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def autotune(
    candidates: Mapping[str, Callable[[], Any]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    number: int = 1,
    atol: float | None = None,
    device: Any = None,
    clock: str = "wall",
) -> TuningResult:
    """Time every candidate implementation of the same operation and pick the fastest.

    This is kernel auto-tuning in miniature: TensorRT does the same per layer at build time,
    choosing among its "tactics". With `atol`, the candidates' outputs are first checked
    against the first one (a wrong kernel must never win): a `CourseError` is raised when one
    differs by more than `atol`, has another shape, or returns NaN or infinity (NaN compares
    False with every tolerance, so the gate asks "within tolerance?", never "beyond it?").
    `clock` is passed to `benchmark` ("thread" for CPU candidates on a shared machine).
    Taught in: 01_tensorrt_in_context.
    """
    if not candidates:
        raise CourseError("autotune() needs at least one candidate {name: function}.")
    diffs: dict[str, float] = {}
    if atol is not None:
        if not (isinstance(atol, (int, float)) and not isinstance(atol, bool) and atol >= 0):
            raise CourseError(f"atol must be a number >= 0, got {atol!r}.")
        names = list(candidates)
        reference = candidates[names[0]]()
        if reference is None:
            raise CourseError(f"the reference candidate {names[0]!r} returned None: with atol= every "
                              "candidate must return its result so that the results can be compared.")
        if not _all_finite(reference):
            raise CourseError(f"the reference candidate {names[0]!r} returned NaN or infinity: "
                              "it cannot vouch for the others.")
        for name in names[1:]:
            output = candidates[name]()
            diffs[name] = _max_abs_diff(reference, output)
            # NaN compares False with everything: test "within tolerance", never "beyond it".
            if not (_all_finite(output) and diffs[name] <= atol):
                raise CourseError(
                    f"candidate {name!r} differs from {names[0]!r} by {diffs[name]:.3g} "
                    f"(> atol={atol}, or NaN/inf in its output): a tactic must compute the same "
                    "result to be eligible."
                )
    results = [
        benchmark(fn, repeats=repeats, warmup=warmup, number=number, name=name, device=device,
                  clock=clock)
        for name, fn in candidates.items()
    ]
    comparison = compare(results)
    return TuningResult(comparison, comparison.fastest.name, True, diffs)
