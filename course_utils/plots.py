"""Figures for the course, drawn with matplotlib: each function returns a Figure (never shows it).

- `plot_workflow`: TensorRT's workflow from a framework to an execution context.
- `plot_roofline`: the roofline of a machine with measured kernels placed on it.
- `plot_quantization`: a tensor's histogram with the quantization grid and clipping range.
- `plot_timings`: a bar chart of benchmark results (auto-tuning, fusion).
- `plot_frame_distance`: metres travelled per frame against the frame rate (driving budgets).
- `plot_pipeline`: a perception pipeline run serially and with CPU/GPU asynchrony.
- `plot_power_budget`: power ranges against a budget, and the cooling that power needs.

Every figure is drawn at `DPI` pixels per inch and at most `MAX_WIDTH_IN` inches wide, so it
is shown at its real size in a notebook's output area (about 850 px), and with the text sizes
of `STYLE` (at least 8 points, 11 px on screen); legends sit where they cover no data.
Taught in: 01_tensorrt_in_context (reused wherever a figure is needed).
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from matplotlib.figure import Figure

from .errors import CourseError
from .quantization import QuantParams
from .timing import BenchmarkResult

__all__ = [
    "plot_workflow", "plot_roofline", "plot_quantization", "plot_timings", "plot_frame_distance",
    "plot_pipeline", "plot_power_budget", "DPI", "MAX_WIDTH_IN", "STYLE", "COOLING_CLASSES",
]

#: Pixels per inch of every course figure: 8.5 inches are 850 px, a notebook's output width.
DPI = 100
MAX_WIDTH_IN = 8.5
#: Text sizes in points (at DPI 100 one point is 1.39 px): nothing smaller than 8 points.
STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5, "legend.fontsize": 9, "figure.titlesize": 12,
}

_BUILD = "#dbe9f6"
_RUN = "#fde3c8"
_SIDE = "#e8e8e8"
_F = TypeVar("_F", bound=Callable[..., Figure])


def _styled(function: _F) -> _F:
    """Draw under the course's text sizes (they are read when each text is created)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(min(width, MAX_WIDTH_IN), height), dpi=DPI, layout="constrained")


def _box(ax: Any, x: float, y: float, text: str, color: str, width: float = 1.9,
         height: float = 0.84, fontsize: float = 9) -> None:
    ax.add_patch(_fancy_box(x - width / 2, y - height / 2, width, height, color))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _fancy_box(x: float, y: float, w: float, h: float, color: str) -> Any:
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", facecolor=color,
                          edgecolor="#444444", linewidth=1.0)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], label: str = "",
           style: str = "-|>", dashed: bool = False, label_side: str = "right") -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={
        "arrowstyle": style, "color": "#333333", "lw": 1.2,
        "linestyle": "--" if dashed else "-", "shrinkA": 2, "shrinkB": 2})
    if label:
        x, y = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(x + (0.12 if label_side == "right" else -0.12), y, label,
                ha="left" if label_side == "right" else "right", va="center", fontsize=8.5,
                color="#222266")


@_styled
def plot_workflow() -> Figure:
    """TensorRT's workflow: framework -> ONNX -> OnnxParser -> network (+ builder config) ->
    builder -> serialized plan -> runtime -> engine -> execution context.

    Build time (left column, once per target GPU and TensorRT version) and run time (right
    column, in the application), with the two ways around the parser (network API by hand,
    plugins) and what the builder does. Uses TensorRT 11 names. Taught in: 01_tensorrt_in_context.
    """
    fig = _figure(8.5, 6.4)
    ax = fig.add_subplot()
    ax.set_xlim(0.0, 10.6)
    ax.set_ylim(1.15, 8.5)
    ax.axis("off")
    rows = [7.2, 6.1, 5.0, 3.9, 2.8, 1.7]  # y of the six build steps, top to bottom
    build = ["PyTorch / TF / JAX / Paddle\n(train)", "model.onnx\n(torch.onnx.export)",
             "OnnxParser\nparse()", "INetworkDefinition\n(strongly typed)",
             "IBuilder + IBuilderConfig", "plan file\n(IHostMemory)"]
    bx, bw = 1.75, 3.2
    for y, text in zip(rows, build, strict=True):
        _box(ax, bx, y, text, _BUILD, width=bw, height=0.74)
    for (y0, y1), label in zip(zip(rows[:-1], rows[1:], strict=True),
                               ["export", "read", "fills", "+ config", "build_serialized_network()"],
                               strict=True):
        _arrow(ax, (bx, y0 - 0.39), (bx, y1 + 0.39), label)
    side = [(rows[2], "plugins (custom ops)\ntensorrt.plugin / IPluginV3"),
            (rows[3], "network API by hand\n(add_convolution, ...)"),
            (rows[4], "fusion, precision from\nthe ONNX (casts, Q/DQ),\ntactic timing + cache")]
    sx, sw = 5.15, 2.5
    for y, text in side:
        _box(ax, sx, y, text, _SIDE, width=sw, height=0.86, fontsize=8.5)
        _arrow(ax, (sx - sw / 2 - 0.05, y), (bx + bw / 2 + 0.06, y), dashed=True)
    run = [(rows[5], "IRuntime\ndeserialize_cuda_engine"), (rows[4], "ICudaEngine\n(kernels chosen)"),
           (rows[3], "IExecutionContext\nset_input_shape\nset_tensor_address"),
           (rows[2], "execute_async_v3\n(CUDA stream)"), (rows[1], "outputs ->\napplication")]
    rx, rw = 8.95, 2.9
    for y, text in run:
        _box(ax, rx, y, text, _RUN, width=rw, height=0.86)
    for (y0, _), (y1, _) in zip(run[:-1], run[1:], strict=True):
        _arrow(ax, (rx, y0 + 0.45), (rx, y1 - 0.45))
    _arrow(ax, (bx + bw / 2 + 0.06, rows[5]), (rx - rw / 2 - 0.06, rows[5]))
    ax.text((bx + bw / 2 + rx - rw / 2) / 2, rows[5] + 0.12, "load the plan (deploy)",
            ha="center", va="bottom", fontsize=8.5, color="#222266")
    ax.text(0.15, 8.25, "BUILD TIME (once per target GPU + TensorRT version)",
            fontsize=10, weight="bold", color="#1f4e79")
    ax.text(10.5, 7.45, "RUN TIME\n(in the application,\nPython or C++ API)", fontsize=10,
            weight="bold", color="#8a4b08", ha="right", va="top")
    ax.set_title("The TensorRT 11 workflow", fontsize=12)
    return fig


@_styled
def plot_roofline(
    peak_flops: float, bandwidth: float, points: Mapping[str, tuple[float, float]],
    *, title: str = "Roofline", extra_roofs: Mapping[str, float] | None = None,
    peak_label: str = "roof", styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Figure:
    """A log-log roofline: attainable FLOP/s = min(peak, intensity x bandwidth), with kernels
    placed at (intensity FLOP/byte, achieved FLOP/s) from `points` {label: (I, FLOP/s)}.

    `extra_roofs` adds dashed compute roofs (e.g. {"FP16 peak": 7.9e14}); `peak_label` names
    the main roof in the legend. `styles` {label: matplotlib keywords} styles a roof or a point
    by its label, e.g. the same colour for a precision's roof and its kernels:
    {"FP16 peak": {"color": "C2"}, "1x1 float16": {"color": "C2", "marker": "o"}}.
    Taught in: 01_tensorrt_in_context.
    """
    from .roofline import ridge_point

    ridge = ridge_point(peak_flops, bandwidth)
    if not points:
        raise CourseError("plot_roofline needs at least one kernel in points={label: (I, FLOP/s)}.")
    for label, (intensity, achieved) in points.items():
        if not (intensity > 0 and achieved > 0):
            raise CourseError(f"point {label!r} needs positive intensity and FLOP/s, got "
                              f"({intensity}, {achieved}).")
    roofs = dict(extra_roofs or {})
    styles = dict(styles or {})
    unknown = set(styles) - set(points) - set(roofs) - {peak_label}
    if unknown:
        raise CourseError(f"styles names {sorted(unknown)}, which are neither points nor roofs.")
    intensities = [p[0] for p in points.values()]
    top_ridge = max([ridge] + [r / bandwidth for r in roofs.values()])
    low = min(min(intensities), ridge) / 8
    high = max(max(intensities), top_ridge) * 8
    grid = np.logspace(np.log10(low), np.log10(high), 200)
    fig = _figure(8.5, 4.3)
    ax = fig.add_subplot()
    ax.loglog(grid, np.minimum(peak_flops, grid * bandwidth), **{
        "color": "black", "lw": 2, **styles.get(peak_label, {}),
        "label": f"{peak_label}:\n{_rate(peak_flops, 'FLOP/s')}, {_rate(bandwidth, 'B/s')}"})
    for name, roof in roofs.items():
        ax.loglog(grid, np.minimum(roof, grid * bandwidth), **{
            "ls": "--", "lw": 1.2, **styles.get(name, {}), "label": name})
    ax.axvline(ridge, color="grey", lw=0.8, ls=":")
    ax.text(ridge * 1.1, peak_flops / 1.15, f"ridge {ridge:.3g} FLOP/byte", ha="left", va="top",
            fontsize=9, color="#555555")
    markers = "os^Dvp*"
    for i, (label, (intensity, achieved)) in enumerate(points.items()):
        ax.loglog([intensity], [achieved], **{
            "marker": markers[i % len(markers)], "ls": "none", "ms": 9, **styles.get(label, {}),
            "label": label})
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes: covers no data
    return fig


def _rate(value: float, unit: str) -> str:
    """3.2e14 -> '320 TFLOP/s': the largest prefix that keeps the number >= 1."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


@_styled
def plot_quantization(
    x: Any, params: QuantParams, *, title: str = "", bins: int = 120, channel: int | None = None,
) -> Figure:
    """Histogram of a tensor with the dequantized levels (grid) and the clipping range.

    For per-channel params pass `channel` to draw that channel's grid (default: channel 0).
    Taught in: 01_tensorrt_in_context.
    """
    if not isinstance(params, QuantParams):
        raise CourseError("plot_quantization(x, params) needs QuantParams from compute_qparams().")
    values = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
    if values.size == 0:
        raise CourseError("plot_quantization needs a non-empty tensor.")
    if not np.all(np.isfinite(values)):
        raise CourseError("plot_quantization got NaN or infinity: such a tensor cannot be quantized.")
    index = 0
    if params.axis is not None:
        index = 0 if channel is None else channel
        if not 0 <= index < params.scale.size:
            raise CourseError(f"channel {index} is out of range (0..{params.scale.size - 1}).")
        values = np.take(values, index, axis=params.axis)
    scale = float(params.scale.ravel()[index])
    zero_point = int(params.zero_point.ravel()[index])
    levels = (np.arange(params.qmin, params.qmax + 1) - zero_point) * scale
    fig = _figure(8.0, 3.4)
    ax = fig.add_subplot()
    ax.hist(values.ravel(), bins=bins, color="#4c72b0", alpha=0.8)
    if levels.size <= 32:  # draw every level only when they are few enough to see
        for level in levels:
            ax.axvline(level, color="#dd8452", lw=0.6, alpha=0.7)
    ax.axvspan(levels[0], levels[-1], color="#dd8452", alpha=0.08,
               label=f"representable [{levels[0]:.3g}, {levels[-1]:.3g}]")
    ax.set_yscale("log")
    ax.set_xlabel("value")
    ax.set_ylabel("count (log)")
    ax.set_title(title or params.describe())
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes: covers no bar
    return fig


@_styled
def plot_timings(results: Sequence[BenchmarkResult], *, title: str = "") -> Figure:
    """Horizontal bars of median times with IQR whiskers; the fastest is highlighted. The axis
    says "CPU time" when every result was timed with `clock="thread"`.

    Taught in: 01_tensorrt_in_context.
    """
    results = list(results)
    if not results or not all(isinstance(r, BenchmarkResult) for r in results):
        raise CourseError("plot_timings needs a non-empty list of BenchmarkResult.")
    medians = np.array([r.median_s for r in results]) * 1e3
    q = np.array([r.quartiles_s for r in results]) * 1e3
    errors = np.vstack([medians - q[:, 0], q[:, 1] - medians])
    best = int(np.argmin(medians))
    colors = ["#55a868" if i == best else "#8c8c8c" for i in range(len(results))]
    fig = _figure(8.0, 1.3 + 0.42 * len(results))
    ax = fig.add_subplot()
    ax.barh([r.name for r in results], medians, xerr=errors, color=colors, capsize=3)
    ax.invert_yaxis()
    what = "CPU time" if all(r.clock == "thread" for r in results) else "time"
    ax.set_xlabel(f"median {what} per call (ms), whiskers = IQR; green = fastest")
    ax.set_title(title)
    return fig


@_styled
def plot_frame_distance(
    speeds_kmh: Sequence[float], fps_values: Sequence[float],
    *, marks: Mapping[str, float] | None = None,
) -> Figure:
    """Metres a vehicle travels between two frames, v / fps, for several speeds.

    `marks` labels frame rates with vertical lines (e.g. {"floor 15 fps": 15}).
    Taught in: 01_tensorrt_in_context.
    """
    speeds = np.asarray(speeds_kmh, dtype=float)
    fps = np.asarray(fps_values, dtype=float)
    if (speeds.size == 0 or fps.size == 0 or not np.all(np.isfinite(speeds)) or not np.all(np.isfinite(fps))
            or np.any(speeds <= 0) or np.any(fps <= 0)):
        raise CourseError("speeds_kmh and fps_values must be non-empty, finite and positive.")
    fig = _figure(8.0, 3.8)
    ax = fig.add_subplot()
    for speed in speeds:
        ax.plot(fps, speed / 3.6 / fps, label=f"{speed:g} km/h ({speed / 3.6:.1f} m/s)")
    top = ax.get_ylim()[1]
    for label, rate in (marks or {}).items():
        ax.axvline(rate, color="grey", ls="--", lw=0.8)
        ax.text(rate, top * 0.97, f" {label}", fontsize=9, va="top", rotation=90)
    ax.set_xlabel("frames per second")
    ax.set_ylabel("metres travelled per frame")
    ax.set_title("Blind distance between two frames")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes: covers no curve
    return fig


def _schedule(stages: Sequence[tuple[str, float, str]], frames: int, overlap: bool,
              ) -> list[tuple[int, int, float, float]]:
    """(frame, stage, start, end). Each resource runs one stage at a time, and a frame's stages
    run in order. Serial: a frame starts when the previous one is done. Overlapped: frame f is
    released at f x P, where P is the busiest resource's work per frame (the pace the pipeline
    can keep), so a frame never starts early only to wait for the busy resource; among the
    stages that may start, the earliest goes first."""
    period = max(sum(ms for _, ms, r in stages if r == resource) for resource in {s[2] for s in stages})
    next_stage = [0] * frames
    ready = [float(f * period) if overlap else 0.0 for f in range(frames)]  # next stage may start
    done = [math.inf] * frames
    free: dict[str, float] = {}
    rows: list[tuple[int, int, float, float]] = []
    while len(rows) < frames * len(stages):
        options = []
        for frame in range(frames):
            if next_stage[frame] == len(stages):
                continue
            if not overlap and frame > 0:
                if done[frame - 1] == math.inf:
                    continue
                ready[frame] = max(ready[frame], done[frame - 1])
            resource = stages[next_stage[frame]][2]
            options.append((max(ready[frame], free.get(resource, 0.0)), frame))
        start, frame = min(options)
        index = next_stage[frame]
        end = start + stages[index][1]
        free[stages[index][2]] = end
        rows.append((frame, index, start, end))
        ready[frame], next_stage[frame] = end, index + 1
        if next_stage[frame] == len(stages):
            done[frame] = end
    return rows


@_styled
def plot_pipeline(stages: Sequence[tuple[str, float, str]], *, frames: int = 4) -> Figure:
    """Timelines of a perception pipeline run serially and with CPU/GPU asynchrony.

    `stages` is [(name, milliseconds, resource)], e.g. ("preprocess", 8, "CPU"); each
    resource runs one stage at a time. The asynchronous timeline overlaps frame n+1's
    CPU work with frame n's GPU work, starting a frame every P ms (P: the busiest resource's
    work per frame); titles give the frames per second reached and the latency (capture of a
    frame to its last stage; the range when frames differ).
    Taught in: 01_tensorrt_in_context.
    """
    stages = list(stages)
    if not stages or any(len(s) != 3 or not (s[1] > 0 and math.isfinite(s[1])) for s in stages):
        raise CourseError("stages must be [(name, milliseconds > 0, resource), ...].")
    if not isinstance(frames, int) or frames < 2:
        raise CourseError(f"frames must be an integer >= 2, got {frames!r}.")
    resources = sorted({s[2] for s in stages})
    fig = _figure(8.5, 4.4)
    axes = fig.subplots(2, 1, sharex=True)
    colors = [f"C{i}" for i in range(len(stages))]
    for ax, overlap in zip(axes, (False, True), strict=True):
        rows = _schedule(stages, frames, overlap)
        ends = [max(r[3] for r in rows if r[0] == f) for f in range(frames)]
        starts = [min(r[2] for r in rows if r[0] == f) for f in range(frames)]
        latencies = [end - start for start, end in zip(starts, ends, strict=True)]
        low, high = min(latencies), max(latencies)
        latency = f"{low:.1f} ms" if high - low < 0.05 else f"{low:.1f}-{high:.1f} ms"
        period = (ends[-1] - ends[0]) / (frames - 1)
        for frame, index, start, end in rows:
            y = resources.index(stages[index][2])
            ax.barh(y, end - start, left=start, color=colors[index], edgecolor="black",
                    label=stages[index][0] if frame == 0 else None)
            ax.text((start + end) / 2, y, str(frame), ha="center", va="center", fontsize=9)
        ax.set_yticks(range(len(resources)), resources)
        ax.set_ylim(-0.6, len(resources) - 0.4)
        mode = "CPU/GPU asynchronous (pipelined)" if overlap else "serial"
        ax.set_title(f"{mode}: one frame every {period:.1f} ms = {1000 / period:.1f} fps, "
                     f"latency {latency}")
    # Above both timelines, outside the axes, so that no bar is covered.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncol=len(stages))
    axes[1].set_xlabel("time (ms); numbers are frame indices")
    return fig


#: Rough thermal resistance (chip to air, °C per watt) that each way of cooling reaches: a
#: passive finned heat sink about 0.5 and up, a heat sink with a fan about 0.1-0.5, below about
#: 0.1 large multi-fan coolers or liquid. Orders of magnitude for the figure, not a data sheet.
COOLING_CLASSES = (("passive heat sink", 0.5, math.inf), ("heat sink + fan", 0.1, 0.5),
                   ("big fans or liquid", 0.0, 0.1))


@_styled
def plot_power_budget(
    power_w: Mapping[str, tuple[float, float]], budget_w: float = 100.0, *,
    air_c: float = 60.0, limit_c: float = 100.0,
) -> Figure:
    """Two panels, one row per device: its power range against `budget_w` (left), and the
    cooling its top power needs (right).

    All the electrical power becomes heat. To keep the chip at `limit_c` in air at `air_c`, the
    path from chip to air may have at most R = (limit_c - air_c) / P °C per watt; the right
    panel shows R for each device over rough bands of what passive heat sinks, fans and liquid
    cooling reach (`COOLING_CLASSES`). Taught in: 01_tensorrt_in_context.
    """
    items = list(power_w.items())
    if not items:
        raise CourseError("plot_power_budget needs at least one device: {name: (low_w, high_w)}.")
    for name, bounds in items:
        if (not isinstance(bounds, (tuple, list)) or len(bounds) != 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bounds)
                or not 0 < bounds[0] <= bounds[1]):
            raise CourseError(f"{name!r}: power must be (low_w, high_w) with 0 < low <= high, got {bounds!r}.")
    if not (isinstance(budget_w, (int, float)) and budget_w > 0):
        raise CourseError(f"budget_w must be a positive number of watts, got {budget_w!r}.")
    if not limit_c > air_c:
        raise CourseError(f"limit_c ({limit_c}) must be above air_c ({air_c}): no headroom, no cooling.")
    headroom = limit_c - air_c
    fig = _figure(8.5, 1.6 + 0.42 * len(items))
    left, right = fig.subplots(1, 2, sharey=True)
    names = [name for name, _ in items]
    rows = np.arange(len(items))
    for row, (_, (low, high)) in zip(rows, items, strict=True):
        color = "#55a868" if high <= budget_w else ("#dd8452" if low <= budget_w else "#c44e52")
        if high > low:
            left.barh(row, high - low, left=low, color=color, height=0.55)
        else:  # one fixed power: a marker, a bar of zero width would not show
            left.plot([high], [row], "D", color=color, ms=9)
    all_w = [v for _, bounds in items for v in bounds] + [budget_w]
    left.set_xscale("log")
    left.set_xlim(min(all_w) / 1.6, max(all_w) * 1.6)
    left.axvline(budget_w, color="black", ls="--", lw=1.2)
    left.text(budget_w * 1.08, -0.62, f"budget {budget_w:g} W", fontsize=9, va="top")
    left.set_yticks(rows, names)
    left.set_xlabel("power range (W); green fits, orange\nonly in a low-power mode, red never")
    left.set_title("Power")
    required = [headroom / high for _, (_, high) in items]
    low_r, high_r = min(min(required) / 3, 0.02), max(max(required) * 3, 3.0)
    band_colors = ("#e5f5e0", "#fff7bc", "#deebf7")
    for (label, lo, hi), color in zip(COOLING_CLASSES, band_colors, strict=True):
        right.axvspan(max(lo, low_r), min(hi, high_r), color=color, zorder=0)
        right.text(math.sqrt(max(lo, low_r) * min(hi, high_r)), len(items) + 0.25,
                   textwrap.fill(label, 10), ha="center", va="bottom", fontsize=8.5)
    right.scatter(required, rows, color="black", zorder=3)
    for row, value in zip(rows, required, strict=True):
        right.text(value * 1.12, row, f"{value:.2g}", va="center", fontsize=9)
    right.set_xscale("log")
    right.set_xlim(low_r, high_r)
    right.set_ylim(len(items) + 0.35, -0.7)
    right.set_xlabel(f"allowed chip-to-air resistance (°C/W)\n"
                     f"= ({limit_c:g} °C chip - {air_c:g} °C air) / top power")
    right.set_title("Heat: the cooling that power needs")
    return fig
