"""Tests for course_utils.plots: every figure builds (Agg backend), its text is readable at notebook
width, its legend covers no data, its numbers are the ones computed, and bad input is clear."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

import course_utils as cu  # noqa: E402

NOTEBOOK_WIDTH_PX = 850  # a notebook's output area; wider images are scaled down to it
MIN_TEXT_PX = 11  # smallest text height on screen that reads comfortably

POWER = {"Orin Nano": (7, 25), "AGX Orin": (15, 60), "Thor": (40, 130), "RTX 4090": (450, 450)}
STAGES = [("pre", 10.0, "CPU"), ("infer", 20.0, "GPU"), ("post", 5.0, "CPU")]


def _x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)


FIGURES = {  # every figure of the module, built only when a test asks for it
    "workflow": lambda: cu.plot_workflow(),
    "roofline": lambda: cu.plot_roofline(1e11, 1e10, {"1x1": (16.0, 3e10), "7x7": (500.0, 9e10)},
                                         title="cpu", extra_roofs={"fp16": 2e11}),
    "quantization": lambda: cu.plot_quantization(_x(), cu.compute_qparams(_x(), bits=4)),
    "timings": lambda: cu.plot_timings([cu.BenchmarkResult("a", (1e-3, 2e-3)),
                                        cu.BenchmarkResult("b", (3e-3, 4e-3))], title="t"),
    "frame_distance": lambda: cu.plot_frame_distance([50, 100, 130], np.linspace(5, 60, 50),
                                                     marks={"floor 15 fps": 15}),
    "pipeline": lambda: cu.plot_pipeline(STAGES, frames=4),
    "power": lambda: cu.plot_power_budget(POWER, 100),
}


def _texts(fig: Figure) -> list[Text]:
    fig.canvas.draw()  # creates the tick labels
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _screen_px(fig: Figure, fontsize_pt: float) -> float:
    width_px = fig.get_figwidth() * fig.dpi
    return fontsize_pt * fig.dpi / 72 * min(1.0, NOTEBOOK_WIDTH_PX / width_px)


@pytest.mark.parametrize("name", list(FIGURES))
def test_text_is_readable_at_notebook_width(name) -> None:
    fig = FIGURES[name]()
    assert fig.get_figwidth() * fig.dpi <= NOTEBOOK_WIDTH_PX + 1, "wider than a notebook: it would be shrunk"
    small = [(t.get_text()[:30], round(_screen_px(fig, t.get_fontsize()), 1)) for t in _texts(fig)
             if _screen_px(fig, t.get_fontsize()) < MIN_TEXT_PX]
    assert not small, f"{name}: text smaller than {MIN_TEXT_PX} px on screen: {small[:5]}"


def _data_points_px(ax) -> list[tuple[float, float]]:
    """Display coordinates of what an axes shows: line vertices, bar corners, scatter points."""
    points = []
    for line in ax.lines:
        xy = np.column_stack(line.get_data())
        if len(xy):
            points += [tuple(p) for p in ax.transData.transform(xy.astype(float))]
    for patch in ax.patches:
        box = patch.get_window_extent()
        if box.width < ax.bbox.width * 0.99:  # spans over the whole axes (axvspan) are background
            points += [(box.x0, box.y0), (box.x1, box.y1), ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)]
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if len(offsets):
            points += [tuple(p) for p in ax.transData.transform(np.asarray(offsets, dtype=float))]
    return points


@pytest.mark.parametrize("name", list(FIGURES))
def test_legends_cover_no_data(name) -> None:
    fig = FIGURES[name]()
    fig.canvas.draw()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            covered = [p for p in _data_points_px(ax) if box.contains(*p)]
            assert not covered, f"{name}: the legend covers {len(covered)} data point(s)"


def test_the_pipeline_legend_no_longer_covers_its_bars() -> None:
    """The old figure put the legend inside the serial timeline, over frame 3's bars."""
    fig = cu.plot_pipeline(STAGES, frames=5)
    fig.canvas.draw()
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert box.y0 >= ax.get_window_extent().y1 - 1, "the legend must sit above both timelines"


def test_workflow_diagram_names_the_tensorrt_11_objects(tmp_path) -> None:
    fig = cu.plot_workflow()
    assert isinstance(fig, Figure)
    text = " ".join(t.get_text() for t in _texts(fig))
    for name in ("OnnxParser", "IBuilderConfig", "deserialize_cuda_engine",
                 "IExecutionContext", "execute_async_v3", "strongly typed", "build_serialized_network"):
        assert name in text
    fig.savefig(tmp_path / "workflow.png")
    assert (tmp_path / "workflow.png").stat().st_size > 10_000


def test_roofline_plot_draws_the_roofline_it_is_given() -> None:
    fig = cu.plot_roofline(1e11, 1e10, {"1x1": (16.0, 3e10), "7x7": (500.0, 9e10)},
                           title="cpu", extra_roofs={"fp16": 2e11}, peak_label="FP32")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    roof = ax.lines[0]
    x, y = roof.get_data()
    np.testing.assert_allclose(y, np.minimum(1e11, x * 1e10))  # min(peak, I x bandwidth)
    assert x.min() < 10 < x.max()  # the ridge point (100 GFLOP/s / 10 GB/s) is in view
    handles, labels = ax.get_legend_handles_labels()
    assert labels[0] == "FP32:\n100 GFLOP/s, 10 GB/s" and "1x1" in labels and "7x7" in labels
    marker = handles[labels.index("7x7")]
    assert marker.get_data()[0][0] == 500.0 and marker.get_data()[1][0] == 9e10
    with pytest.raises(cu.CourseError, match="at least one kernel"):
        cu.plot_roofline(1e11, 1e10, {})
    with pytest.raises(cu.CourseError, match="positive intensity"):
        cu.plot_roofline(1e11, 1e10, {"bad": (0.0, 1.0)})
    with pytest.raises(cu.CourseError, match="peak_flops"):
        cu.plot_roofline(0, 1e10, {"a": (1.0, 1.0)})


def test_quantization_histogram() -> None:
    x = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    params = cu.compute_qparams(x, bits=4)
    fig = cu.plot_quantization(x, params)
    ax = fig.axes[0]
    assert "INT4" in ax.get_title() and len(ax.lines) == 15  # one line per level, -7..7
    level_x = sorted(line.get_xdata()[0] for line in ax.lines)
    np.testing.assert_allclose(level_x, np.arange(-7, 8) * params.scale.item(), rtol=1e-6)
    per_channel = cu.compute_qparams(x, axis=0)
    assert isinstance(cu.plot_quantization(x, per_channel, channel=2, title="c2"), Figure)
    with pytest.raises(cu.CourseError, match="out of range"):
        cu.plot_quantization(x, per_channel, channel=9)
    with pytest.raises(cu.CourseError, match="QuantParams"):
        cu.plot_quantization(x, None)
    with pytest.raises(cu.CourseError, match="non-empty"):
        cu.plot_quantization(np.array([]), cu.make_qparams(1.0))


def test_timings_plot_bars_are_the_medians_and_the_fastest_is_green() -> None:
    results = [cu.BenchmarkResult("a", (1e-3, 2e-3, 3e-3)), cu.BenchmarkResult("b", (4e-4, 5e-4, 6e-4))]
    fig = cu.plot_timings(results, title="t")
    bars = fig.axes[0].patches
    assert [round(b.get_width(), 6) for b in bars] == [2.0, 0.5]  # medians in ms
    assert bars[1].get_facecolor() != bars[0].get_facecolor()
    assert fig.axes[0].get_xlabel().startswith("median time per call")
    cpu = [cu.BenchmarkResult(r.name, r.times_s, clock="thread") for r in results]
    assert cu.plot_timings(cpu).axes[0].get_xlabel().startswith("median CPU time per call")
    with pytest.raises(cu.CourseError, match="BenchmarkResult"):
        cu.plot_timings([1.0])


def test_frame_distance_plot() -> None:
    fig = cu.plot_frame_distance([100, 50], [10, 15, 30], marks={"floor": 15})
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_ydata(), 100 / 3.6 / np.array([10, 15, 30]))
    with pytest.raises(cu.CourseError, match="positive"):
        cu.plot_frame_distance([100], [0])


def test_pipeline_plot_and_schedule() -> None:
    fig = cu.plot_pipeline(STAGES, frames=4)
    titles = [ax.get_title() for ax in fig.axes]
    assert "28.6 fps" in titles[0] and titles[0].endswith("latency 35.0 ms")  # serial: 35 ms per frame
    assert "50.0 fps" in titles[1]  # pipelined: the GPU's 20 ms sets the pace
    assert titles[1].endswith("latency 35.0 ms")  # and no frame waits longer than in the serial run
    with pytest.raises(cu.CourseError, match="stages"):
        cu.plot_pipeline([("x", 0.0, "CPU")])
    with pytest.raises(cu.CourseError, match="frames"):
        cu.plot_pipeline(STAGES, frames=1)


def test_pipelined_schedule_keeps_the_serial_latency_for_every_frame() -> None:
    """Notebook 01's stages (8 ms CPU, 22 ms GPU, 12 ms CPU). The old greedy schedule captured
    frame 1 at once and let it wait for the GPU: 56 ms from capture to plan, while the title
    printed frame 0's 42 ms. Released every 22 ms (the busiest resource), every frame takes 42 ms."""
    from course_utils.plots import _schedule

    stages = [("capture", 8.0, "CPU"), ("perception", 22.0, "GPU"), ("planning", 12.0, "CPU")]
    rows = _schedule(stages, 6, overlap=True)
    for frame in range(6):
        mine = sorted((r for r in rows if r[0] == frame), key=lambda r: r[1])
        assert [r[1] for r in mine] == [0, 1, 2]  # stages in order
        assert all(a[3] <= b[2] for a, b in zip(mine, mine[1:], strict=False))  # each after the one before
        assert mine[0][2] == 22.0 * frame and mine[-1][3] - mine[0][2] == 42.0
    for resource in ("CPU", "GPU"):  # one stage at a time on each resource
        busy = sorted((r[2], r[3]) for r in rows if stages[r[1]][2] == resource)
        assert all(a[1] <= b[0] for a, b in zip(busy, busy[1:], strict=False))
    title = cu.plot_pipeline(stages, frames=5).axes[1].get_title()
    assert "22.0 ms = 45.5 fps, latency 42.0 ms" in title


def test_pipeline_title_gives_the_latency_range_when_frames_differ() -> None:
    """Two CPU stages that collide: frame 2's planning waits for frame 3's capture (25 and 30 ms)."""
    stages = [("a", 5.0, "CPU"), ("b", 10.0, "GPU"), ("c", 10.0, "CPU")]
    title = cu.plot_pipeline(stages, frames=4).axes[1].get_title()
    assert title.endswith("latency 25.0-30.0 ms")


def test_roofline_styles_colour_roofs_and_points_by_label() -> None:
    fig = cu.plot_roofline(1e11, 1e10, {"1x1 fp16": (16.0, 3e10), "7x7 fp16": (500.0, 9e10)},
                           extra_roofs={"FP32 roof": 5e10}, peak_label="FP16 roof",
                           styles={"FP16 roof": {"color": "C2"}, "1x1 fp16": {"color": "C2", "marker": "o"},
                                   "FP32 roof": {"color": "C1"}})
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    by_label = dict(zip(labels, handles, strict=True))
    assert matplotlib.colors.same_color(by_label["FP16 roof:\n100 GFLOP/s, 10 GB/s"].get_color(), "C2")
    assert matplotlib.colors.same_color(by_label["1x1 fp16"].get_color(), "C2")
    assert by_label["1x1 fp16"].get_marker() == "o" and by_label["1x1 fp16"].get_linestyle() == "None"
    assert by_label["FP32 roof"].get_linestyle() == "--"  # a style keeps the dashes of an extra roof
    with pytest.raises(cu.CourseError, match="neither points nor roofs"):
        cu.plot_roofline(1e11, 1e10, {"a": (1.0, 1.0)}, styles={"b": {"color": "red"}})


def test_power_budget_colours_and_cooling_numbers() -> None:
    fig = cu.plot_power_budget(POWER, 100, air_c=60, limit_c=100)
    left, right = fig.axes
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert labels == list(POWER)
    colours = [matplotlib.colors.to_hex(b.get_facecolor()) for b in left.patches]
    assert colours == ["#55a868", "#55a868", "#dd8452"]  # fits, fits, only in a low-power mode
    assert matplotlib.colors.to_hex(left.lines[0].get_color()) == "#c44e52"  # 450 W: never
    values = right.collections[0].get_offsets()[:, 0]
    np.testing.assert_allclose(values, [40 / 25, 40 / 60, 40 / 130, 40 / 450])  # (100-60)/P
    shown = {t.get_text() for t in right.texts}
    assert {"1.6", "0.67", "0.31", "0.089"} <= shown


def test_power_budget_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="at least one device"):
        cu.plot_power_budget({})
    with pytest.raises(cu.CourseError, match="0 < low <= high"):
        cu.plot_power_budget({"x": (60, 15)})
    with pytest.raises(cu.CourseError, match="0 < low <= high"):
        cu.plot_power_budget({"x": (math.nan, 15)})
    with pytest.raises(cu.CourseError, match="budget_w"):
        cu.plot_power_budget({"x": (1, 2)}, budget_w=0)
    with pytest.raises(cu.CourseError, match="headroom"):
        cu.plot_power_budget({"x": (1, 2)}, air_c=90, limit_c=80)


def test_bad_input_nan_and_infinity_are_refused_not_drawn() -> None:
    """Found in review: a NaN speed drew an empty plot, a NaN tensor a histogram of nothing, an
    infinite stage crashed with ValueError. Each is now a clear CourseError."""
    with pytest.raises(cu.CourseError, match="finite"):
        cu.plot_frame_distance([float("nan")], [15])
    with pytest.raises(cu.CourseError, match="finite"):
        cu.plot_frame_distance([100], [float("inf")])
    with pytest.raises(cu.CourseError, match="NaN or infinity"):
        cu.plot_quantization(np.array([np.nan, 1.0]), cu.make_qparams(0.1))
    with pytest.raises(cu.CourseError, match="stages"):
        cu.plot_pipeline([("a", float("inf"), "CPU"), ("b", 1.0, "GPU")])
    with pytest.raises(cu.CourseError, match="stages"):
        cu.plot_pipeline([("a", float("nan"), "CPU")])
