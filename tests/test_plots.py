"""Tests for course_utils.plots: every figure builds (Agg backend) and bad input is clear."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import course_utils as cu  # noqa: E402


def _texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_workflow_diagram_names_the_tensorrt_11_objects(tmp_path) -> None:
    fig = cu.plot_workflow()
    assert isinstance(fig, Figure)
    text = _texts(fig)
    for name in ("OnnxParser", "IBuilderConfig", "deserialize_cuda_engine",
                 "IExecutionContext", "execute_async_v3", "strongly typed"):
        assert name in text
    fig.savefig(tmp_path / "workflow.png")
    assert (tmp_path / "workflow.png").stat().st_size > 10_000


def test_roofline_plot() -> None:
    fig = cu.plot_roofline(1e11, 1e10, {"1x1": (16.0, 3e10), "7x7": (500.0, 9e10)},
                           title="cpu", extra_roofs={"fp16": 2e11})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) >= 4
    assert "100 GFLOP/s, 10 GB/s" in ax.get_legend_handles_labels()[1][0]
    with pytest.raises(cu.CourseError, match="at least one kernel"):
        cu.plot_roofline(1e11, 1e10, {})
    with pytest.raises(cu.CourseError, match="positive intensity"):
        cu.plot_roofline(1e11, 1e10, {"bad": (0.0, 1.0)})
    with pytest.raises(cu.CourseError, match="peak_flops"):
        cu.plot_roofline(0, 1e10, {"a": (1.0, 1.0)})


def test_quantization_histogram() -> None:
    x = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)
    fig = cu.plot_quantization(x, cu.compute_qparams(x, bits=4))
    assert "INT4" in fig.axes[0].get_title() and len(fig.axes[0].lines) == 15
    per_channel = cu.compute_qparams(x, axis=0)
    assert isinstance(cu.plot_quantization(x, per_channel, channel=2, title="c2"), Figure)
    with pytest.raises(cu.CourseError, match="out of range"):
        cu.plot_quantization(x, per_channel, channel=9)
    with pytest.raises(cu.CourseError, match="QuantParams"):
        cu.plot_quantization(x, None)
    with pytest.raises(cu.CourseError, match="non-empty"):
        cu.plot_quantization(np.array([]), cu.make_qparams(1.0))


def test_timings_plot() -> None:
    results = [cu.BenchmarkResult("a", (1e-3, 2e-3)), cu.BenchmarkResult("b", (3e-3, 4e-3))]
    fig = cu.plot_timings(results, title="t")
    assert len(fig.axes[0].patches) == 2
    with pytest.raises(cu.CourseError, match="BenchmarkResult"):
        cu.plot_timings([1.0])


def test_frame_distance_plot() -> None:
    fig = cu.plot_frame_distance([100, 50], [10, 15, 30], marks={"floor": 15})
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_ydata(), 100 / 3.6 / np.array([10, 15, 30]))
    with pytest.raises(cu.CourseError, match="positive"):
        cu.plot_frame_distance([100], [0])


def test_pipeline_plot_and_schedule() -> None:
    stages = [("pre", 10.0, "CPU"), ("infer", 20.0, "GPU"), ("post", 5.0, "CPU")]
    fig = cu.plot_pipeline(stages, frames=4)
    titles = [ax.get_title() for ax in fig.axes]
    assert "28.6 fps" in titles[0]  # serial: 35 ms per frame
    assert "50.0 fps" in titles[1]  # pipelined: the GPU's 20 ms sets the pace
    with pytest.raises(cu.CourseError, match="stages"):
        cu.plot_pipeline([("x", 0.0, "CPU")])
    with pytest.raises(cu.CourseError, match="frames"):
        cu.plot_pipeline(stages, frames=1)
