"""Tests for course_utils.quantization: scales, zero points, round trips, error metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import course_utils as cu


def test_integer_ranges() -> None:
    assert cu.integer_range(8, True) == (-127, 127)
    assert cu.integer_range(8, False) == (0, 255)
    assert cu.integer_range(4, True) == (-7, 7)
    assert cu.integer_range(4, False) == (0, 15)


def test_symmetric_per_tensor_round_trip() -> None:
    x = np.array([-1.0, -0.5, 0.0, 0.25, 1.27], dtype=np.float32)
    params = cu.compute_qparams(x, bits=8, symmetric=True)
    assert params.scale.item() == pytest.approx(0.01)
    q = cu.quantize(x, params)
    assert q.tolist() == [-100, -50, 0, 25, 127]
    np.testing.assert_allclose(cu.dequantize(q, params), x, atol=1e-6)
    assert "INT8 symmetric per-tensor" in repr(params)


def test_asymmetric_uses_zero_point_and_beats_symmetric_on_relu() -> None:
    x = np.random.default_rng(0).exponential(size=10_000).astype(np.float32)  # one-sided
    sym, _ = cu.fake_quantize(x, bits=8, symmetric=True)
    asym, params = cu.fake_quantize(x, bits=8, symmetric=False)
    assert params.zero_point.item() == 0 and params.qmin == 0
    assert (cu.quantization_error(x, asym).sqnr_db
            > cu.quantization_error(x, sym).sqnr_db + 4)
    shifted = x - 1.0
    params = cu.compute_qparams(shifted, symmetric=False)
    assert 0 < params.zero_point.item() < 255
    zero = cu.quantize(np.zeros(1), params)
    assert cu.dequantize(zero, params).item() == 0.0  # zero is exactly representable


def test_per_channel_beats_per_tensor_when_ranges_differ() -> None:
    rng = np.random.default_rng(1)
    spread = np.array([1, 10, 100, 1000], dtype=np.float32)[:, None, None, None]
    w = rng.normal(size=(4, 8, 3, 3)).astype(np.float32) * spread
    per_tensor, _ = cu.fake_quantize(w, bits=8)
    per_channel, params = cu.fake_quantize(w, bits=8, axis=0)
    assert params.scale.shape == (4,) and "per-channel" in params.describe()
    # the small channel is wiped out by one shared scale and kept by its own
    assert (cu.quantization_error(w[0], per_channel[0]).sqnr_db
            > cu.quantization_error(w[0], per_tensor[0]).sqnr_db + 20)
    negative_axis = cu.compute_qparams(w, axis=-4)
    assert negative_axis.axis == 0


def test_int4_is_coarser_than_int8_and_fp16_finer() -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    e8 = cu.quantization_error(x, cu.fake_quantize(x, bits=8)[0])
    e4 = cu.quantization_error(x, cu.fake_quantize(x, bits=4)[0])
    e16 = cu.quantization_error(x, cu.cast_fp16(x))
    assert e16.sqnr_db > e8.sqnr_db > e4.sqnr_db
    assert 15 < e8.sqnr_db - e4.sqnr_db < 30  # about 6 dB per bit


def test_make_qparams_and_all_zero_tensor() -> None:
    params = cu.make_qparams([0.5, 0.25], [0, 0], bits=4, axis=1)
    q = cu.quantize(np.ones((3, 2)), params)
    assert q[0].tolist() == [2, 4]
    zeros = cu.compute_qparams(np.zeros(5))
    assert zeros.scale.item() > 0
    assert cu.quantization_error(np.zeros(3), np.zeros(3)).sqnr_db == math.inf


def test_error_metrics_values() -> None:
    err = cu.quantization_error([3.0, 4.0], [3.0, 3.0])
    assert err.max_abs == 1.0 and err.mse == 0.5
    assert err.sqnr_db == pytest.approx(10 * math.log10(25.0))
    assert "SQNR" in repr(err)


def test_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="Unsupported bit width 3"):
        cu.compute_qparams([1.0], bits=3)
    with pytest.raises(cu.CourseError, match="cast_fp16"):
        cu.integer_range(16, True)
    with pytest.raises(cu.CourseError, match="positive"):
        cu.make_qparams(0.0)
    with pytest.raises(cu.CourseError, match="positive"):
        cu.make_qparams(-1.0)
    with pytest.raises(cu.CourseError, match="zero_point 0"):
        cu.make_qparams(1.0, 3, symmetric=True)
    with pytest.raises(cu.CourseError, match="zero_point must lie"):
        cu.make_qparams(1.0, 300, symmetric=False)
    with pytest.raises(cu.CourseError, match="pass axis"):
        cu.make_qparams([1.0, 2.0])
    with pytest.raises(cu.CourseError, match="zero points"):
        cu.make_qparams([1.0, 2.0, 3.0], [1, 2], symmetric=False, axis=0)
    with pytest.raises(cu.CourseError, match="out of range"):
        cu.compute_qparams(np.ones((2, 2)), axis=2)
    with pytest.raises(cu.CourseError, match="calibration method"):
        cu.compute_qparams([1.0], method="entropy")
    with pytest.raises(cu.CourseError, match="empty"):
        cu.compute_qparams([])
    with pytest.raises(cu.CourseError, match="NaN"):
        cu.compute_qparams([np.nan])
    with pytest.raises(cu.CourseError, match="shape"):
        cu.quantize(np.ones((3, 3)), cu.compute_qparams(np.ones((2, 3)), axis=0))
    with pytest.raises(cu.CourseError, match="QuantParams"):
        cu.quantize([1.0], {"scale": 1})
    with pytest.raises(cu.CourseError, match="QuantParams"):
        cu.dequantize([1], None)
    with pytest.raises(cu.CourseError, match="levels outside"):
        cu.dequantize([200], cu.make_qparams(1.0))
    with pytest.raises(cu.CourseError, match="65504"):
        cu.cast_fp16([1e6])
    with pytest.raises(cu.CourseError, match="shape mismatch"):
        cu.quantization_error([1.0, 2.0], [1.0])


# --- known answers and the planted bugs of issue 17 -------------------------------------------

def test_quantize_rounds_to_nearest_ties_to_even() -> None:
    """Planted bug (issue 17): floor instead of round shifts every value down by half a step on
    average (SQNR about 6 dB worse). ONNX QuantizeLinear rounds half to even, and so do we."""
    params = cu.make_qparams(1.0)
    x = np.array([0.6, -0.6, 1.4, -1.4, 0.5, 1.5, 2.5, -2.5, 126.7, 300.0, -300.0])
    assert cu.quantize(x, params).tolist() == [1, -1, 1, -1, 0, 2, 2, -2, 127, 127, -127]


def test_uniform_sqnr_follows_the_crest_factor_formula() -> None:
    """SQNR = 6.02 b + 4.77 - 20 log10(max/rms): 6.02 b for a uniform fill (crest factor sqrt 3),
    6.02 b + 1.76 for a full-scale sine (crest factor sqrt 2). The narrow symmetric range
    has 2^(b-1) - 1 levels a side, hence the small correction 20 log10(levels / 2^(b-1))."""
    rng = np.random.default_rng(0)
    uniform = rng.uniform(-1, 1, 200_000).astype(np.float32)
    sine = np.sin(np.linspace(0, 200 * np.pi, 200_000, endpoint=False)).astype(np.float32)
    cases = [(8, uniform, 6.02 * 8), (8, sine, 6.02 * 8 + 1.76), (4, uniform, 6.02 * 4)]
    for bits, x, expected in cases:  # (INT4 on a sine: 15 levels are too coarse for noise to be uniform)
        side = 2 ** (bits - 1)
        narrow = 20 * np.log10((side - 1) / side)
        approx, _ = cu.fake_quantize(x, bits=bits)
        measured = cu.quantization_error(x, approx).sqnr_db
        assert measured == pytest.approx(expected + narrow, abs=0.25), (bits, expected)


def test_rounding_error_is_at_most_half_a_step_and_unbiased() -> None:
    x = np.random.default_rng(1).normal(size=50_000).astype(np.float32)
    approx, params = cu.fake_quantize(x, bits=8)
    error = approx - x
    assert np.abs(error).max() <= params.scale.item() / 2 * (1 + 1e-5)
    assert abs(error.mean()) < params.scale.item() / 50  # floor would give -scale / 2


def test_asymmetric_parameters_known_answer() -> None:
    params = cu.compute_qparams(np.array([-1.0, 3.0]), bits=8, symmetric=False)
    assert params.scale.item() == pytest.approx(4 / 255)
    assert params.zero_point.item() == 64  # round(0 - (-1) / (4/255)) = round(63.75)
    np.testing.assert_array_equal(cu.quantize([-1.0, 0.0, 3.0], params), [0, 64, 255])
    np.testing.assert_allclose(cu.dequantize([0, 64, 255], params), [-64 * 4 / 255, 0.0, 191 * 4 / 255],
                               rtol=1e-6)


def test_per_channel_scales_known_answer() -> None:
    w = np.array([[0.5, -1.27], [254.0, 3.0]], dtype=np.float32)
    params = cu.compute_qparams(w, bits=8, axis=0)
    np.testing.assert_allclose(params.scale, [0.01, 2.0], rtol=1e-6)
    assert cu.quantize(w, params).tolist() == [[50, -127], [127, 2]]  # 3 / 2 = 1.5 -> 2 (even)


def test_fp16_round_trip_error_is_relative() -> None:
    x = np.array([1e-3, 1.0, 1000.0, -3.14159], dtype=np.float32)
    relative = np.abs(cu.cast_fp16(x) - x) / np.abs(x)
    assert relative.max() <= 2.0**-11  # 11-bit significand: half an ulp at most
    assert cu.cast_fp16(np.array([65504.0])).item() == 65504.0


def test_sqnr_known_answer_for_a_halved_error() -> None:
    x = np.array([1.0, -1.0, 1.0, -1.0])
    assert cu.quantization_error(x, x * 1.1).sqnr_db == pytest.approx(20.0)  # noise 1 % of signal
    assert cu.quantization_error(x, x * 1.05).sqnr_db == pytest.approx(20 + 20 * math.log10(2))


def test_values_that_are_not_numbers_are_refused() -> None:
    with pytest.raises(cu.CourseError, match="array of numbers"):
        cu.compute_qparams("not a tensor")
    with pytest.raises(cu.CourseError, match="array of numbers"):
        cu.quantization_error([1.0, 2.0], [[1.0], 2.0])
    with pytest.raises(cu.CourseError, match="NaN"):
        cu.quantize([np.inf], cu.make_qparams(1.0))
    with pytest.raises(cu.CourseError, match="NaN"):
        cu.quantization_error([1.0], [np.nan])
    bf16 = torch.tensor([1.0, -2.0], dtype=torch.bfloat16)
    assert cu.quantize(bf16, cu.make_qparams(0.5)).tolist() == [2, -4]
