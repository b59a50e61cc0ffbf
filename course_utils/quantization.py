"""Quantization (量化) math: float tensors to 8- or 4-bit integers and back, and the error.

x_q = clamp(round(x / scale) + zero_point, q_min, q_max) and x_hat = (x_q - zero_point) * scale.
Symmetric quantization fixes zero_point = 0 and uses the narrow range [-(2^(b-1) - 1), 2^(b-1) - 1]
(what TensorRT's INT8 uses); asymmetric quantization uses [0, 2^b - 1] and a zero point so
that a one-sided range (ReLU outputs) uses every level. Scales can be one per tensor or one
per channel (`axis`). `compute_qparams` calibrates the scale from data (method "minmax";
notebook 09 adds percentile and entropy ranges in `cu.calibrate_amax` / `cu.symmetric_qparams`),
`quantize`/`dequantize` apply it, `fake_quantize` does the round trip, `cast_fp16` the FP16
round trip, and `quantization_error` measures max-abs, MSE and SQNR in dB.

Why not `torch.quantize_per_tensor`? It works on torch tensors only and uses the full range
([-128, 127] for qint8); these helpers take numpy arrays or tensors, use the narrow symmetric
range TensorRT uses ([-127, 127], zero point 0), round half to even as ONNX QuantizeLinear
does, and refuse NaN, empty tensors and mismatched scales with a clear message.
Taught in: 01_tensorrt_in_context (reused for calibration in 09_quantization_in_practice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CourseError

__all__ = [
    "SUPPORTED_BITS", "CALIBRATION_METHODS", "QuantParams", "integer_range", "compute_qparams",
    "make_qparams", "quantize", "dequantize", "fake_quantize", "cast_fp16", "QuantError",
    "quantization_error",
]

SUPPORTED_BITS = (4, 8)
CALIBRATION_METHODS = ("minmax",)


def _as_array(name: str, x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (any float type: bfloat16 has no numpy twin)
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()
    try:
        array = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be an array of numbers, got {type(x).__name__} "
                          f"{str(x)[:40]!r}.") from None
    if array.size == 0:
        raise CourseError(f"{name} is empty: there is nothing to quantize.")
    if not np.all(np.isfinite(array)):
        raise CourseError(f"{name} contains NaN or infinity; quantization needs finite values.")
    return array


def _check_bits(bits: Any) -> int:
    if bits not in SUPPORTED_BITS or isinstance(bits, bool):
        raise CourseError(f"Unsupported bit width {bits!r}: use one of {SUPPORTED_BITS} "
                          "(for 16-bit use cast_fp16, a float format, not an integer one).")
    return int(bits)


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """The integer levels used: symmetric -> [-(2^(b-1)-1), 2^(b-1)-1], asymmetric -> [0, 2^b-1].

    Taught in: 01_tensorrt_in_context.
    """
    bits = _check_bits(bits)
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


@dataclass(frozen=True)
class QuantParams:
    """How a tensor is quantized: scale and zero point (scalars or one per channel on `axis`)."""

    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    symmetric: bool
    axis: int | None = None

    @property
    def qmin(self) -> int:
        return integer_range(self.bits, self.symmetric)[0]

    @property
    def qmax(self) -> int:
        return integer_range(self.bits, self.symmetric)[1]

    @property
    def granularity(self) -> str:
        return "per-tensor" if self.axis is None else f"per-channel (axis {self.axis})"

    def describe(self) -> str:
        kind = "symmetric" if self.symmetric else "asymmetric"
        scales = self.scale.ravel()
        scale_text = (f"scale {scales[0]:.4g}" if scales.size == 1
                      else f"{scales.size} scales {scales.min():.3g}..{scales.max():.3g}")
        return (f"INT{self.bits} {kind} {self.granularity}, {scale_text}, "
                f"levels [{self.qmin}, {self.qmax}]")

    def __repr__(self) -> str:
        return f"QuantParams({self.describe()})"


def _broadcast_shape(ndim: int, axis: int | None, length: int) -> tuple[int, ...]:
    if axis is None:
        return ()
    shape = [1] * ndim
    shape[axis] = length
    return tuple(shape)


def _normalize_axis(axis: int | None, ndim: int) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise CourseError(f"axis={axis!r} is out of range for a tensor with {ndim} dimensions.")
    return axis % ndim


def make_qparams(
    scale: Any, zero_point: Any = 0, *, bits: int = 8, symmetric: bool = True,
    axis: int | None = None,
) -> QuantParams:
    """Build QuantParams from a known scale (and zero point), validating them.

    Scales must be positive and finite; a symmetric scheme needs zero_point 0.
    Taught in: 01_tensorrt_in_context.
    """
    bits = _check_bits(bits)
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    zero_point = np.atleast_1d(np.asarray(zero_point)).astype(np.int32)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise CourseError(f"scale must be positive and finite, got {scale.ravel()[:4]}...: "
                          "a zero or negative scale maps every value to one level.")
    qmin, qmax = integer_range(bits, symmetric)
    if symmetric and np.any(zero_point != 0):
        raise CourseError("a symmetric scheme has zero_point 0; use symmetric=False for others.")
    if np.any(zero_point < qmin) or np.any(zero_point > qmax):
        raise CourseError(f"zero_point must lie in [{qmin}, {qmax}] for INT{bits}.")
    if axis is None and scale.size != 1:
        raise CourseError(f"{scale.size} scales given for a per-tensor scheme; pass axis=.")
    if zero_point.size not in (1, scale.size):
        raise CourseError(f"{zero_point.size} zero points for {scale.size} scales.")
    if zero_point.size != scale.size:
        zero_point = np.full(scale.shape, zero_point.item(), dtype=np.int32)
    return QuantParams(scale, zero_point, bits, bool(symmetric), axis)


def compute_qparams(
    x: Any, *, bits: int = 8, symmetric: bool = True, axis: int | None = None,
    method: str = "minmax",
) -> QuantParams:
    """Calibrate scale and zero point from data: per tensor (axis=None) or per channel.

    method "minmax": symmetric scale = max|x| / q_max; asymmetric scale = (max - min) /
    (q_max - q_min) with the range widened to include 0 so that 0 is exact.
    Taught in: 01_tensorrt_in_context (09_quantization_in_practice adds methods).
    """
    x = _as_array("x", x)
    bits = _check_bits(bits)
    if method not in CALIBRATION_METHODS:
        raise CourseError(f"Unknown calibration method {method!r}; available: "
                          f"{CALIBRATION_METHODS}.")
    axis = _normalize_axis(axis, x.ndim)
    reduce_axes = tuple(range(x.ndim)) if axis is None else tuple(
        d for d in range(x.ndim) if d != axis)
    low = np.minimum(x.min(axis=reduce_axes), 0.0)
    high = np.maximum(x.max(axis=reduce_axes), 0.0)
    qmin, qmax = integer_range(bits, symmetric)
    tiny = np.float32(np.finfo(np.float32).tiny)  # an all-zero channel still gets a valid scale
    if symmetric:
        scale = np.maximum(np.maximum(-low, high) / qmax, tiny)
        zero_point = np.zeros_like(scale, dtype=np.int32)
    else:
        scale = np.maximum((high - low) / (qmax - qmin), tiny)
        zero_point = np.clip(np.round(qmin - low / scale), qmin, qmax).astype(np.int32)
    return make_qparams(scale, zero_point, bits=bits, symmetric=symmetric, axis=axis)


def _shaped(params: QuantParams, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if params.axis is not None:
        if params.axis >= x.ndim or x.shape[params.axis] != params.scale.size:
            raise CourseError(
                f"these QuantParams have {params.scale.size} scales on axis {params.axis}, "
                f"but the tensor has shape {x.shape}; calibrate on a tensor of this shape.")
    shape = _broadcast_shape(x.ndim, params.axis, params.scale.size)
    return params.scale.reshape(shape), params.zero_point.reshape(shape)


def quantize(x: Any, params: QuantParams) -> np.ndarray:
    """Float -> integer levels: clamp(round(x / scale) + zero_point, q_min, q_max) as int32.

    Taught in: 01_tensorrt_in_context.
    """
    if not isinstance(params, QuantParams):
        raise CourseError("quantize(x, params) needs QuantParams from compute_qparams().")
    x = _as_array("x", x)
    scale, zero_point = _shaped(params, x)
    q = np.round(x / scale) + zero_point
    return np.clip(q, params.qmin, params.qmax).astype(np.int32)


def dequantize(q: Any, params: QuantParams) -> np.ndarray:
    """Integer levels -> float: (q - zero_point) * scale. Taught in: 01_tensorrt_in_context."""
    if not isinstance(params, QuantParams):
        raise CourseError("dequantize(q, params) needs QuantParams from compute_qparams().")
    q = np.asarray(q)
    if q.size and (q.min() < params.qmin or q.max() > params.qmax):
        raise CourseError(f"levels outside [{params.qmin}, {params.qmax}] cannot come from "
                          f"INT{params.bits} {'symmetric' if params.symmetric else 'asymmetric'}.")
    scale, zero_point = _shaped(params, q)
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def fake_quantize(
    x: Any, *, bits: int = 8, symmetric: bool = True, axis: int | None = None,
    method: str = "minmax",
) -> tuple[np.ndarray, QuantParams]:
    """Calibrate, quantize and dequantize in one step: returns (x_hat, params).

    x_hat is what the network "sees" after quantization (QDQ in ONNX does the same).
    Taught in: 01_tensorrt_in_context.
    """
    params = compute_qparams(x, bits=bits, symmetric=symmetric, axis=axis, method=method)
    return dequantize(quantize(x, params), params), params


def cast_fp16(x: Any) -> np.ndarray:
    """Round trip through FP16 (float32 -> float16 -> float32): the error an FP16 engine adds.

    Values beyond FP16's range (65504) would become infinity, so they raise instead.
    Taught in: 01_tensorrt_in_context.
    """
    x = _as_array("x", x)
    if np.abs(x).max() > np.finfo(np.float16).max:
        raise CourseError(f"|x| reaches {np.abs(x).max():.3g}, beyond FP16's largest value 65504: "
                          "this tensor overflows in FP16 (keep it in FP32 or rescale).")
    return x.astype(np.float16).astype(np.float32)


@dataclass(frozen=True)
class QuantError:
    """How far an approximation is from the reference: max |error|, MSE, SQNR in dB."""

    max_abs: float
    mse: float
    sqnr_db: float

    def __repr__(self) -> str:
        return f"max|err| {self.max_abs:.3g}, MSE {self.mse:.3g}, SQNR {self.sqnr_db:.1f} dB"


def quantization_error(reference: Any, approx: Any) -> QuantError:
    """Compare a tensor with its quantized version.

    SQNR (signal-to-quantization-noise ratio) = 10 log10(sum x^2 / sum (x - x_hat)^2): each
    extra bit buys about 6 dB. Exact copies give infinity.
    Taught in: 01_tensorrt_in_context.
    """
    ref = _as_array("reference", reference).astype(np.float64)
    app = _as_array("approx", approx).astype(np.float64)
    if ref.shape != app.shape:
        raise CourseError(f"shape mismatch: reference {ref.shape} vs approx {app.shape}.")
    noise = ref - app
    noise_power = float(np.sum(noise**2))
    signal_power = float(np.sum(ref**2))
    if noise_power == 0:
        sqnr = math.inf
    elif signal_power == 0:
        sqnr = -math.inf
    else:
        sqnr = 10 * math.log10(signal_power / noise_power)
    return QuantError(float(np.max(np.abs(noise))), float(np.mean(noise**2)), sqnr)
