"""Figures for the course, drawn with matplotlib: each function returns a Figure (never shows it).

- `plot_workflow`: TensorRT's workflow from a framework to an execution context.
- `plot_roofline`: the roofline of a machine with measured kernels placed on it.
- `plot_quantization`: a tensor's histogram with the quantization grid and clipping range.
- `plot_timings`: a bar chart of benchmark results (auto-tuning, fusion).
- `plot_frame_distance`: metres travelled per frame against the frame rate (driving budgets).
Taught in: 01_tensorrt_in_context (reused wherever a figure is needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .errors import CourseError
from .quantization import QuantParams
from .timing import BenchmarkResult

__all__ = [
    "plot_workflow", "plot_roofline", "plot_quantization", "plot_timings", "plot_frame_distance",
    "plot_pipeline",
]

_BUILD = "#dbe9f6"
_RUN = "#fde3c8"
_SIDE = "#e8e8e8"


def _box(ax: Any, x: float, y: float, text: str, color: str, width: float = 1.9) -> None:
    ax.add_patch(_fancy_box(x - width / 2, y - 0.42, width, 0.84, color))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _fancy_box(x: float, y: float, w: float, h: float, color: str) -> Any:
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", facecolor=color,
                          edgecolor="#444444", linewidth=1.0)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], label: str = "",
           style: str = "-|>", dashed: bool = False) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={
        "arrowstyle": style, "color": "#333333", "lw": 1.2,
        "linestyle": "--" if dashed else "-", "shrinkA": 2, "shrinkB": 2})
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.5, label,
                ha="center", va="bottom", fontsize=7, color="#222266")


def plot_workflow() -> Figure:
    """TensorRT's workflow: framework -> ONNX -> OnnxParser -> network (+ builder config) ->
    builder -> serialized plan -> runtime -> engine -> execution context.

    Build time (top row, once per GPU/TensorRT version) and run time (bottom row, in the
    application), with the two ways around the parser (network API by hand, plugins).
    Uses TensorRT 11 names. Taught in: 01_tensorrt_in_context.
    """
    fig = Figure(figsize=(13, 5.2))
    ax = fig.add_subplot()
    ax.set_xlim(-0.2, 15.2)
    ax.set_ylim(-0.3, 5.4)
    ax.axis("off")
    top = [
        (1.0, "PyTorch / TF /\nJAX / Paddle\n(train)"),
        (3.5, "model.onnx\n(torch.onnx.export)"),
        (6.0, "OnnxParser\nparse()"),
        (8.5, "INetworkDefinition\n(strongly typed)"),
        (11.0, "IBuilder +\nIBuilderConfig"),
        (13.7, "plan file\n(IHostMemory)"),
    ]
    for x, text in top:
        _box(ax, x, 4.0, text, _BUILD)
    labels = ["export", "read", "fills", "+ config", "build_serialized\n_network()"]
    for (x0, _), (x1, _), label in zip(top[:-1], top[1:], labels, strict=True):
        _arrow(ax, (x0 + 0.97, 4.0), (x1 - 0.97, 4.0), label)
    bottom = [
        (13.7, "IRuntime\ndeserialize_cuda_engine"),
        (10.6, "ICudaEngine\n(kernels chosen)"),
        (7.5, "IExecutionContext\nset_input_shape\nset_tensor_address"),
        (4.4, "execute_async_v3\n(CUDA stream)"),
        (1.3, "outputs ->\napplication"),
    ]
    for x, text in bottom:
        _box(ax, x, 1.2, text, _RUN, width=2.2)
    _arrow(ax, (13.7, 3.55), (13.7, 1.65))
    ax.text(13.8, 2.6, "load plan\n(deploy)", fontsize=7, color="#222266")
    for (x0, _), (x1, _) in zip(bottom[:-1], bottom[1:], strict=True):
        _arrow(ax, (x0 - 1.12, 1.2), (x1 + 1.12, 1.2))
    _box(ax, 8.5, 2.55, "network API by hand\n(add_convolution, ...)", _SIDE, width=2.3)
    _arrow(ax, (8.5, 2.97), (8.5, 3.56), dashed=True)
    _box(ax, 6.0, 2.55, "plugins (custom ops)\ntensorrt.plugin / IPluginV3", _SIDE, width=2.3)
    _arrow(ax, (6.0, 2.97), (6.0, 3.56), dashed=True)
    _box(ax, 11.0, 2.55, "fusion, precision from\nthe ONNX (casts, Q/DQ),\ntactic timing + cache",
         _SIDE, width=2.3)
    _arrow(ax, (11.0, 2.97), (11.0, 3.56), dashed=True)
    ax.text(0.0, 5.15, "BUILD TIME (offline, once per GPU model + TensorRT version)",
            fontsize=10, weight="bold", color="#1f4e79")
    ax.text(0.0, 0.2, "RUN TIME (in the deployed application; Python or C++ API)",
            fontsize=10, weight="bold", color="#8a4b08")
    fig.suptitle("The TensorRT 11 workflow", fontsize=12)
    fig.tight_layout()
    return fig


def plot_roofline(
    peak_flops: float, bandwidth: float, points: Mapping[str, tuple[float, float]],
    *, title: str = "Roofline", extra_roofs: Mapping[str, float] | None = None,
) -> Figure:
    """A log-log roofline: attainable FLOP/s = min(peak, intensity x bandwidth), with kernels
    placed at (intensity FLOP/byte, achieved FLOP/s) from `points` {label: (I, FLOP/s)}.

    `extra_roofs` adds dashed compute roofs (e.g. {"FP16 peak": 7.9e14}).
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
    intensities = [p[0] for p in points.values()]
    top_ridge = max([ridge] + [r / bandwidth for r in roofs.values()])
    low = min(min(intensities), ridge) / 8
    high = max(max(intensities), top_ridge) * 8
    grid = np.logspace(np.log10(low), np.log10(high), 200)
    fig = Figure(figsize=(9.5, 4.8))
    ax = fig.add_subplot()
    ax.loglog(grid, np.minimum(peak_flops, grid * bandwidth), color="black", lw=2,
              label=f"roof: {_rate(peak_flops, 'FLOP/s')}, {_rate(bandwidth, 'B/s')}")
    for name, roof in roofs.items():
        ax.loglog(grid, np.minimum(roof, grid * bandwidth), "--", lw=1.2, label=name)
    ax.axvline(ridge, color="grey", lw=0.8, ls=":")
    ax.text(ridge, peak_flops * 1.15, f"ridge {ridge:.3g}", ha="center", fontsize=8)
    markers = "os^Dvp*"
    for i, (label, (intensity, achieved)) in enumerate(points.items()):
        ax.loglog([intensity], [achieved], markers[i % len(markers)], ms=9, label=label)
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _rate(value: float, unit: str) -> str:
    """3.2e14 -> '320 TFLOP/s': the largest prefix that keeps the number >= 1."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


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
    index = 0
    if params.axis is not None:
        index = 0 if channel is None else channel
        if not 0 <= index < params.scale.size:
            raise CourseError(f"channel {index} is out of range (0..{params.scale.size - 1}).")
        values = np.take(values, index, axis=params.axis)
    scale = float(params.scale.ravel()[index])
    zero_point = int(params.zero_point.ravel()[index])
    levels = (np.arange(params.qmin, params.qmax + 1) - zero_point) * scale
    fig = Figure(figsize=(7.5, 3.4))
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
    ax.set_title(title or params.describe(), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_timings(results: Sequence[BenchmarkResult], *, title: str = "") -> Figure:
    """Horizontal bars of median times with IQR whiskers; the fastest is highlighted.

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
    fig = Figure(figsize=(7, 0.5 + 0.45 * len(results)))
    ax = fig.add_subplot()
    ax.barh([r.name for r in results], medians, xerr=errors, color=colors, capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel("median time per call (ms), whiskers = IQR")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


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
    if speeds.size == 0 or fps.size == 0 or np.any(speeds <= 0) or np.any(fps <= 0):
        raise CourseError("speeds_kmh and fps_values must be non-empty and positive.")
    fig = Figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    for speed in speeds:
        ax.plot(fps, speed / 3.6 / fps, label=f"{speed:g} km/h ({speed / 3.6:.1f} m/s)")
    for label, rate in (marks or {}).items():
        ax.axvline(rate, color="grey", ls="--", lw=0.8)
        ax.text(rate, ax.get_ylim()[1] * 0.92, f" {label}", fontsize=8)
    ax.set_xlabel("frames per second")
    ax.set_ylabel("metres travelled per frame")
    ax.set_title("Blind distance between two frames")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _schedule(stages: Sequence[tuple[str, float, str]], frames: int, overlap: bool,
              ) -> list[tuple[int, int, float, float]]:
    """(frame, stage, start, end). Each resource runs one stage at a time. Serial: a frame
    starts when the previous one is done. Overlapped: up to two frames in flight (double
    buffering), the earliest startable stage runs first."""
    in_flight = 2 if overlap else 1
    next_stage = [0] * frames
    ready = [0.0] * frames  # when each frame's next stage may start
    done = [float("inf")] * frames
    free: dict[str, float] = {}
    rows: list[tuple[int, int, float, float]] = []
    while len(rows) < frames * len(stages):
        options = []
        for frame in range(frames):
            if next_stage[frame] == len(stages):
                continue
            if frame >= in_flight and done[frame - in_flight] == float("inf"):
                continue
            gate = done[frame - in_flight] if frame >= in_flight else 0.0
            resource = stages[next_stage[frame]][2]
            options.append((max(ready[frame], gate, free.get(resource, 0.0)), frame))
        start, frame = min(options)
        index = next_stage[frame]
        end = start + stages[index][1]
        free[stages[index][2]] = end
        rows.append((frame, index, start, end))
        ready[frame], next_stage[frame] = end, index + 1
        if next_stage[frame] == len(stages):
            done[frame] = end
    return rows


def plot_pipeline(stages: Sequence[tuple[str, float, str]], *, frames: int = 4) -> Figure:
    """Timelines of a perception pipeline run serially and with CPU/GPU asynchrony.

    `stages` is [(name, milliseconds, resource)], e.g. ("preprocess", 8, "CPU"); each
    resource runs one stage at a time. The asynchronous timeline overlaps frame n+1's
    CPU work with frame n's GPU work; titles give the frames per second reached.
    Taught in: 01_tensorrt_in_context.
    """
    stages = list(stages)
    if not stages or any(len(s) != 3 or not s[1] > 0 for s in stages):
        raise CourseError("stages must be [(name, milliseconds > 0, resource), ...].")
    if not isinstance(frames, int) or frames < 2:
        raise CourseError(f"frames must be an integer >= 2, got {frames!r}.")
    resources = sorted({s[2] for s in stages})
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(2, 1, sharex=True)
    colors = [f"C{i}" for i in range(len(stages))]
    for ax, overlap in zip(axes, (False, True), strict=True):
        rows = _schedule(stages, frames, overlap)
        ends = [max(r[3] for r in rows if r[0] == f) for f in range(frames)]
        period = (ends[-1] - ends[0]) / (frames - 1)
        for frame, index, start, end in rows:
            y = resources.index(stages[index][2])
            ax.barh(y, end - start, left=start, color=colors[index], edgecolor="black",
                    label=stages[index][0] if frame == 0 else None)
            ax.text((start + end) / 2, y, str(frame), ha="center", va="center", fontsize=7)
        ax.set_yticks(range(len(resources)), resources)
        mode = "CPU/GPU asynchronous (pipelined)" if overlap else "serial"
        ax.set_title(f"{mode}: one frame every {period:.1f} ms = {1000 / period:.1f} fps, "
                     f"latency {ends[0]:.1f} ms", fontsize=9)
    axes[0].legend(fontsize=7, ncol=len(stages), loc="upper right")
    axes[1].set_xlabel("time (ms); numbers are frame indices")
    fig.tight_layout()
    return fig
