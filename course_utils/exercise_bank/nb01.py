"""Checks for the exercises of 01_tensorrt_in_context: each applies a lesson of the notebook to a
layer or a tensor the lesson did not show.

1. (easy) vertical fusion of a Linear + BatchNorm1d pair;
2. (medium) a MobileNet depthwise convolution on the recorded GPU roofline (groups count!);
3. (medium) horizontal fusion of a transformer's Q, K and V projections;
4. (hard) choosing an INT4 clipping range for long-tailed weights (calibration by search).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import torch
from torch import nn

from ..exercises import Wrong, exercise, expect_array, expect_close, expect_equal, expect_true, expect_type
from ..paths import repo_root
from ..quantization import dequantize, make_qparams, quantization_error, quantize
from ..roofline import bound_by, conv2d_cost, roofline_bound

# --- exercise 1: fold BatchNorm1d into the Linear before it -------------------------------------


def ex1_layers() -> tuple[nn.Linear, nn.BatchNorm1d]:
    """Exercise 1's layers: nn.Linear(16, 8) then nn.BatchNorm1d(8) with inference statistics
    as if trained (not the identity), both in eval mode. A fresh pair on every call."""
    generator = torch.Generator().manual_seed(101)
    linear, bn = nn.Linear(16, 8), nn.BatchNorm1d(8)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(8, 16, generator=generator) / 4)
        linear.bias.copy_(torch.randn(8, generator=generator))
        bn.running_mean.copy_(torch.rand(8, generator=generator) * 2 - 1)
        bn.running_var.copy_(torch.rand(8, generator=generator) * 1.5 + 0.5)
        bn.weight.copy_(torch.rand(8, generator=generator) + 0.5)
        bn.bias.copy_(torch.rand(8, generator=generator) * 2 - 1)
    return linear.eval(), bn.eval()


def _ex1_input() -> torch.Tensor:
    return torch.randn(64, 16, generator=torch.Generator().manual_seed(102))


def _linear_from(weight: Any, bias: Any) -> nn.Linear:
    weight, bias = torch.as_tensor(np.asarray(weight, np.float32)), torch.as_tensor(np.asarray(bias, np.float32))
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer.eval()


def _ex1_forgot_the_mean() -> nn.Linear:
    linear, bn = ex1_layers()
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return _linear_from(linear.weight * scale[:, None], linear.bias * scale + bn.bias)


@exercise(
    "01.1",
    answers={"ex1_linear": "torch.nn.Linear(16, 8) equal to ex1_bn(ex1_fc(x)) in eval mode"},
    hint="BatchNorm1d after a Linear is the same per-channel affine map as after a Conv2d: step 3's two "
         "formulas, W' = s W and b' = s (b - mean) + beta, with s = gamma / sqrt(var + eps).",
    hint2="cu.fold_batchnorm(ex1_fc.weight, ex1_fc.bias, ex1_bn.running_mean, ex1_bn.running_var, "
          "ex1_bn.weight, ex1_bn.bias, ex1_bn.eps) returns (W', b'); copy them into a new nn.Linear(16, 8) "
          "under torch.no_grad().",
    wrong=[
        ({"ex1_linear": ex1_layers()[0]}, r"elements differ; the worst is `ex1_linear\(x\)\["),
        ({"ex1_linear": nn.Sequential(*ex1_layers())}, r"should be a torch\.nn\.Linear, but it is Sequential"),
        ({"ex1_linear": _ex1_forgot_the_mean()}, r"elements differ"),
        ({"ex1_linear": nn.Linear(8, 16)}, r"`ex1_linear\.in_features` is 8, expected 16"),
    ],
)
def _fold_batchnorm_into_linear(ex1_linear: object) -> str:
    expect_type("ex1_linear", ex1_linear, nn.Linear, "a torch.nn.Linear")
    expect_equal("ex1_linear.in_features", ex1_linear.in_features, 16)
    expect_equal("ex1_linear.out_features", ex1_linear.out_features, 8)
    linear, bn = ex1_layers()  # fresh copies: changing the notebook's pair cannot fool the check
    x = _ex1_input()
    with torch.no_grad():
        want = bn(linear(x)).numpy()
        got = ex1_linear.eval()(x).float().numpy()
    expect_array("ex1_linear(x)", got, want, rtol=1e-4, atol=1e-5)
    return "One layer now does the work of two: TensorRT folds BN into a fully connected layer the same way."


# --- exercise 2: a depthwise convolution on the GPU roofline ------------------------------------

#: MobileNet's depthwise 3x3 convolution of exercise 2: (batch, channels, size, kernel), FP16.
EX2_CONV = {"batch": 1, "channels": 256, "size": 56, "kernel_size": 3}


def _ex2_cost() -> Any:
    c = EX2_CONV
    return conv2d_cost(c["batch"], c["channels"], c["channels"], c["size"], c["size"], c["kernel_size"],
                       groups=c["channels"], dtype="float16")


def _ex2_weight_bytes() -> int:
    c = EX2_CONV
    return c["channels"] * c["kernel_size"] ** 2 * 2  # 256 x 1 x 3 x 3 FP16 values


def _ex2_dense_weight_bytes() -> int:
    c = EX2_CONV
    return c["channels"] ** 2 * c["kernel_size"] ** 2 * 2  # 256 x 256 x 3 x 3: groups forgotten


def _recorded_gpu_report() -> dict[str, Any]:
    """The GPU roofline notebook 01 shows where no GPU is present (recorded on an H200)."""
    return json.loads((repo_root() / "benchmarks" / "results" / "conv_roofline_h200.json").read_text())


def _ex2_wrong_values() -> dict[str, float]:
    c = EX2_CONV
    right = _ex2_cost()
    dense = conv2d_cost(c["batch"], c["channels"], c["channels"], c["size"], c["size"], c["kernel_size"],
                        dtype="float16")
    weights_ignoring_groups = right.bytes + (dense.bytes - right.bytes)  # full 256 x 256 x 3 x 3 weights
    report = _recorded_gpu_report()
    peak, bandwidth = report["peaks_flops"]["float16"], report["bandwidth_Bps"]
    return {"intensity": right.intensity, "intensity_dense_weights": right.flops / weights_ignoring_groups,
            "attainable": roofline_bound(right.intensity, peak, bandwidth) / 1e12, "peak": peak / 1e12}


_EX2 = _ex2_wrong_values()


def _near(value: object, target: float, rtol: float = 0.02) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value - target) <= rtol * abs(target)


def _diagnose_ex2(ex2_intensity: object, ex2_attainable_tflops: object, cost: Any, dense_intensity: float,
                  attainable: float, peak_tflops: float) -> None:
    """Name the usual slips of exercise 2 before the generic "off by" message."""
    def wrong(name: str, value: float, want: float, unit: str, why: str) -> Wrong:
        return Wrong(f"`{name}` = {value:.4g} {unit}, expected {want:.4g} {unit}: {why}")

    want = cost.intensity
    if _near(ex2_intensity, dense_intensity):
        raise wrong("ex2_intensity", ex2_intensity, want, "FLOP/byte", "your bytes hold 256 x 256 x 3 x 3 weights, "
                    "but with groups = 256 each output channel has its own 1 x 3 x 3 filter (256 x 1 x 3 x 3).")
    if _near(ex2_intensity, want / 2):
        raise wrong("ex2_intensity", ex2_intensity, want, "FLOP/byte", "exactly half. A multiply-add is 2 FLOPs, "
                    "and an FP16 element is 2 bytes (not 4): which of the two did you miss?")
    if _near(ex2_intensity, want * 2):
        raise wrong("ex2_intensity", ex2_intensity, want, "FLOP/byte", "exactly twice. Did you count 1 byte per "
                    "element, or 4 FLOPs per multiply-add? FP16 is 2 bytes, a multiply-add 2 FLOPs.")
    if isinstance(ex2_attainable_tflops, (int, float)) and not isinstance(ex2_attainable_tflops, bool):
        if _near(ex2_attainable_tflops, attainable * 1e12):
            raise wrong("ex2_attainable_tflops", ex2_attainable_tflops, attainable, "TFLOP/s",
                        "that is the right speed in FLOP/s; the answer is in TFLOP/s (divide by 1e12).")
        if _near(ex2_attainable_tflops, peak_tflops):
            raise wrong("ex2_attainable_tflops", ex2_attainable_tflops, attainable, "TFLOP/s",
                        "that is the FP16 peak, the compute roof. Left of the ridge point the memory roof, "
                        "intensity x bandwidth, is the lower one.")


@exercise(
    "01.2",
    answers={"ex2_intensity": "float, FLOP per byte", "ex2_bound": "str, 'memory' or 'compute'",
             "ex2_attainable_tflops": "float, the TFLOP/s the FP16 roofline allows"},
    hint="A depthwise convolution has groups = channels: each output channel reads one input channel, "
         "so its weights are 256 x 1 x 3 x 3. cu.conv2d_cost takes groups= and dtype=.",
    hint2="Use gpu_report['peaks_flops']['float16'] and gpu_report['bandwidth_Bps'] as the roofs; "
          "cu.bound_by and cu.roofline_bound (FLOP/s, divide by 1e12) give the verdict and the ceiling.",
    wrong=[
        ({"ex2_intensity": _EX2["intensity_dense_weights"], "ex2_bound": "memory",
          "ex2_attainable_tflops": _EX2["attainable"]},
         r"`ex2_intensity` = 3\.\d+ FLOP/byte, expected 4\.\d+ FLOP/byte"),
        ({"ex2_intensity": _EX2["intensity"], "ex2_bound": "compute", "ex2_attainable_tflops": _EX2["attainable"]},
         r"`ex2_bound` is 'compute', expected 'memory'"),
        ({"ex2_intensity": _EX2["intensity"], "ex2_bound": "memory", "ex2_attainable_tflops": _EX2["peak"]},
         r"`ex2_attainable_tflops` = 740\.\d+ TFLOP/s, expected 18\.\d+ TFLOP/s: that is the FP16 peak"),
        ({"ex2_intensity": "4.5", "ex2_bound": "memory", "ex2_attainable_tflops": 13.0},
         r"`ex2_intensity` should be a number, but it is str"),
        ({"ex2_intensity": _EX2["intensity"] / 2, "ex2_bound": "memory",
          "ex2_attainable_tflops": _EX2["attainable"] / 2},
         r"exactly half\. A multiply-add is 2 FLOPs, and an FP16 element is 2 bytes"),
        ({"ex2_intensity": _EX2["intensity"], "ex2_bound": "memory",
          "ex2_attainable_tflops": _EX2["attainable"] * 1e12},
         r"the right speed in FLOP/s; the answer is in TFLOP/s"),
    ],
    context=lambda: {"gpu_report": _recorded_gpu_report()},
)
def _depthwise_conv_on_the_roofline(ex2_intensity: object, ex2_bound: object, ex2_attainable_tflops: object,
                                    gpu_report: dict[str, Any]) -> str:
    cost = _ex2_cost()
    peak, bandwidth = gpu_report["peaks_flops"]["float16"], gpu_report["bandwidth_Bps"]
    values = [v.item() if isinstance(v, np.generic) else v for v in (ex2_intensity, ex2_attainable_tflops)]
    _diagnose_ex2(*values, cost, cost.flops / (cost.bytes + (_ex2_dense_weight_bytes() - _ex2_weight_bytes())),
                  roofline_bound(cost.intensity, peak, bandwidth) / 1e12, peak / 1e12)
    expect_close("ex2_intensity", ex2_intensity, cost.intensity, rtol=0.02, unit="FLOP/byte")
    expect_equal("ex2_bound", ex2_bound, bound_by(cost.intensity, peak, bandwidth))
    attainable = roofline_bound(cost.intensity, peak, bandwidth) / 1e12
    expect_close("ex2_attainable_tflops", ex2_attainable_tflops, attainable, rtol=0.02, unit="TFLOP/s")
    ridge = peak / bandwidth
    return (f"At {cost.intensity:.1f} FLOP/byte the depthwise conv sits {ridge / cost.intensity:.0f}x left of the "
            f"ridge: at most {attainable / (peak / 1e12):.1%} of the FP16 peak. Fusing it with the 1x1 conv "
            "after it (one kernel, no round trip through memory) is what helps.")


# --- exercise 3: one projection for Q, K and V ---------------------------------------------------


def ex3_projections() -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    """Exercise 3's query, key and value projections of one attention head: three nn.Linear(64, 64)
    that read the same input. A fresh triple on every call."""
    generator = torch.Generator().manual_seed(103)
    layers = []
    for _ in range(3):
        layer = nn.Linear(64, 64)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(64, 64, generator=generator) / 8)
            layer.bias.copy_(torch.randn(64, generator=generator))
        layers.append(layer.eval())
    return layers[0], layers[1], layers[2]


def _ex3_stacked(order: tuple[int, ...], with_bias: bool = True) -> nn.Linear:
    layers = ex3_projections()
    weight = torch.cat([layers[i].weight for i in order]).detach()
    bias = torch.cat([layers[i].bias for i in order]).detach() if with_bias else torch.zeros(192)
    return _linear_from(weight.numpy(), bias.numpy())


@exercise(
    "01.3",
    answers={"ex3_qkv": "torch.nn.Linear(64, 192): its output split into 3 chunks of 64 is (q(x), k(x), v(x))"},
    hint="Horizontal fusion (step 4) for Linear layers: the three read the same x, so stack their weights "
         "along the output axis (axis 0), and their biases too.",
    hint2="cu.merge_conv_weights works on any weights whose axis 0 is the output: pass [q.weight, k.weight, "
          "v.weight] and [q.bias, k.bias, v.bias], then copy the result into nn.Linear(64, 192).",
    wrong=[
        ({"ex3_qkv": _ex3_stacked((2, 1, 0))}, r"elements differ; the worst is `q chunk, ex3_qkv\(x\)\[:, :64\]"),
        ({"ex3_qkv": _ex3_stacked((0, 1, 2), with_bias=False)}, r"elements differ"),
        ({"ex3_qkv": nn.Linear(64, 64)}, r"`ex3_qkv\.out_features` is 64, expected 192"),
        ({"ex3_qkv": [ex3_projections()]}, r"should be a torch\.nn\.Linear"),
    ],
)
def _fuse_qkv(ex3_qkv: object) -> str:
    expect_type("ex3_qkv", ex3_qkv, nn.Linear, "a torch.nn.Linear")
    expect_equal("ex3_qkv.in_features", ex3_qkv.in_features, 64)
    expect_equal("ex3_qkv.out_features", ex3_qkv.out_features, 192)
    x = torch.randn(10, 64, generator=torch.Generator().manual_seed(104))
    with torch.no_grad():
        fused = ex3_qkv.eval()(x).float().numpy()
        for index, (label, layer) in enumerate(zip("qkv", ex3_projections(), strict=True)):
            columns = f"{index * 64 or ''}:{(index + 1) * 64}"
            expect_array(f"{label} chunk, ex3_qkv(x)[:, {columns}]", fused[:, index * 64:(index + 1) * 64],
                         layer(x).numpy(), rtol=1e-4, atol=1e-5)
    return "One 64 -> 192 product instead of three 64 -> 64: the fused QKV projection every transformer engine uses."


# --- exercise 4: an INT4 clipping range for weights with a long tail ----------------------------


def ex4_weights() -> np.ndarray:
    """Exercise 4's tensor: 20,000 weights (float32) with a long tail (Student's t, 3 degrees of
    freedom, scaled like a layer's weights): most are small, a few are far out."""
    rng = np.random.default_rng(105)
    return (0.02 * rng.standard_t(3, size=20_000)).astype(np.float32)


def _sqnr_for_clip(x: np.ndarray, clip: float) -> float:
    params = make_qparams(clip / 7, bits=4, symmetric=True)
    return quantization_error(x, dequantize(quantize(x, params), params)).sqnr_db


@functools.lru_cache(maxsize=1)
def _ex4_best() -> tuple[float, float, float]:
    """(best clip, its SQNR, the min-max SQNR), by a coarse then a fine search."""
    x = ex4_weights()
    peak = float(np.abs(x).max())
    coarse = np.geomspace(peak / 200, peak, 300)
    scores = [_sqnr_for_clip(x, c) for c in coarse]
    best = int(np.argmax(scores))
    fine = np.linspace(coarse[max(best - 1, 0)], coarse[min(best + 1, len(coarse) - 1)], 100)
    fine_scores = [_sqnr_for_clip(x, c) for c in fine]
    top = int(np.argmax(fine_scores))
    return float(fine[top]), float(fine_scores[top]), _sqnr_for_clip(x, peak)


@exercise(
    "01.4",
    answers={"ex4_clip": "float > 0: the clipping value c; INT4 symmetric, levels -7..7, scale c / 7"},
    hint="Min-max (c = max |w|) spreads the 15 levels over a range that a handful of far-out weights set; a "
         "smaller c saturates those few but shrinks the step for all the others (the crest-factor argument of "
         "step 6). Measure the SQNR for many values of c and keep the best.",
    hint2="For a candidate c: p = cu.make_qparams(c / 7, bits=4); approx = cu.dequantize(cu.quantize(w, p), p); "
          "cu.quantization_error(w, approx).sqnr_db. Try e.g. np.geomspace(c_max / 100, c_max, 300).",
    wrong=[
        ({"ex4_clip": float(np.abs(ex4_weights()).max())},
         r"gives SQNR -?\d+\.\d dB; the best clip reaches \d+\.\d dB"),
        ({"ex4_clip": -1.0}, r"`ex4_clip` must be > 0"),
        ({"ex4_clip": 0.001}, r"`ex4_clip` = 0\.001 gives SQNR"),
        ({"ex4_clip": "0.1"}, r"should be a number, but it is str"),
        ({"ex4_clip": 0.1547 / 7}, r"looks like the scale c / 7: 0\.15\d+, seven times it"),  # best c: 0.1547
    ],
)
def _int4_clipping_range(ex4_clip: object) -> str:
    if isinstance(ex4_clip, np.generic) or (isinstance(ex4_clip, torch.Tensor) and ex4_clip.ndim == 0):
        ex4_clip = ex4_clip.item()  # a numpy scalar or a 0-d tensor holds one number: accept it
    expect_type("ex4_clip", ex4_clip, (int, float), "a number")
    expect_true(np.isfinite(ex4_clip) and ex4_clip > 0, f"`ex4_clip` must be > 0 and finite, got {ex4_clip!r}.")
    best_clip, best_sqnr, minmax_sqnr = _ex4_best()
    w = ex4_weights()
    sqnr = _sqnr_for_clip(w, float(ex4_clip))
    if sqnr < best_sqnr - 0.25:
        scale_slip = ""
        if _sqnr_for_clip(w, 7 * float(ex4_clip)) >= best_sqnr - 0.25:
            scale_slip = (f" Your value looks like the scale c / 7: {7 * ex4_clip:.4g}, seven times it, "
                          "would be a good clipping value c.")
        raise Wrong(f"`ex4_clip` = {ex4_clip:.4g} gives SQNR {sqnr:.1f} dB; the best clip reaches {best_sqnr:.1f} dB "
                    f"({best_sqnr - sqnr:.1f} dB more). Min-max would give {minmax_sqnr:.1f} dB.{scale_slip}")
    saturated = int(np.sum(np.abs(w) > ex4_clip))
    return (f"SQNR {sqnr:.1f} dB against {minmax_sqnr:.1f} dB for min-max: {sqnr - minmax_sqnr:.1f} dB gained by "
            f"saturating {saturated} of {w.size} weights. This is why INT4 weights are calibrated (and quantized "
            "in small groups) rather than scaled by their maximum.")
