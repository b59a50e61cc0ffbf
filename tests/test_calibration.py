"""Tests for course_utils.calibration: calibration ranges, Q/DQ summaries, FP16 overflow, the table."""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import course_utils as cu

# --- calibration ranges: known answers ------------------------------------------------------------


def test_minmax_is_the_largest_magnitude_including_negative_values() -> None:
    assert cu.amax_minmax([-3.0, 1.0, 2.0]) == 3.0
    assert cu.amax_minmax(np.array([[0.5], [-0.25]])) == 0.5
    assert cu.amax_minmax([np.array([1.0, -2.0]), np.array([4.0])]) == 4.0  # batches, as onnxruntime collects them


def test_percentile_is_a_data_value_that_enough_values_do_not_exceed() -> None:
    x = np.arange(1, 10001, dtype=np.float64)  # magnitudes 1..10000
    assert cu.amax_percentile(x, 99.99) == 9999.0  # 9999 of 10000 values are <= 9999
    assert cu.amax_percentile(x, 50) == 5000.0
    assert cu.amax_percentile(-x, 100) == 10000.0
    signed = np.concatenate([x, -x])
    assert cu.amax_percentile(signed, 99.99) == 9999.0


def test_percentile_of_a_gaussian_is_near_its_quantile() -> None:
    x = np.random.default_rng(0).standard_normal(400_000)
    assert cu.amax_percentile(x, 99.73) == pytest.approx(3.0, rel=0.02)  # |x| <= 3 sigma for 99.73 %


def test_entropy_keeps_the_whole_range_of_a_uniform_distribution() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, 200_000)
    assert cu.amax_entropy(x) >= 0.97 * cu.amax_minmax(x)


def test_entropy_and_percentile_clip_rare_outliers_min_max_does_not() -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(100_000), [50.0, -40.0, 45.0]])
    assert cu.amax_minmax(x) == 50.0
    search = cu.entropy_search(x)
    assert 3.0 < search.amax < 10.0 and search.clipped_fraction > 0.8
    assert 3.0 < cu.amax_percentile(x, 99.99) < 5.0


def test_entropy_search_shape_and_choice() -> None:
    x = np.random.default_rng(3).laplace(size=50_000)
    search = cu.entropy_search(x, bins=512, levels=64)
    assert search.thresholds.shape == search.divergences.shape == (512 - 64 + 1,)
    best = int(np.argmin(search.divergences))
    assert search.amax == pytest.approx(search.thresholds[best]) or search.divergences[best] == pytest.approx(
        search.divergences[list(search.thresholds).index(search.amax)])
    assert search.thresholds[-1] == pytest.approx(search.max_abs)
    assert "EntropySearch(amax=" in repr(search)


def test_entropy_breaks_a_tie_towards_the_wider_range() -> None:
    centers = (np.arange(8) + 0.5) / 8  # magnitudes in the middle of each of 8 bins on [0, 1]
    x = np.append(np.repeat(centers, [2, 0, 0, 0, 0, 2, 0, 1]), 1.0)
    search = cu.entropy_search(x, bins=8, levels=2)
    tied = search.thresholds[search.divergences == 0.0].tolist()
    assert tied == [0.75, 1.0] and search.amax == 1.0  # both lose nothing: clip as little as the data allows


def test_entropy_ignores_the_spike_of_exact_zeros() -> None:
    rng = np.random.default_rng(4)
    relu = np.maximum(rng.standard_normal(100_000), 0.0)
    assert (relu == 0).mean() > 0.4
    assert cu.amax_entropy(relu) == cu.amax_entropy(relu[relu > 0])  # bin 0 is replaced by bin 1's count


def _reference_entropy(x: np.ndarray, bins: int, levels: int) -> float:
    """The KL search written out with plain loops (slow, independent of the helper)."""
    a = np.abs(np.asarray(x, np.float64)).ravel()
    hist, edges = np.histogram(a, bins=bins, range=(0.0, a.max()))
    hist = hist.astype(float)
    hist[0] = hist[1]
    best_i, best_kl = bins, math.inf
    for i in range(levels, bins + 1):
        p = [hist[k] for k in range(i)]
        p[-1] += sum(hist[i:])
        q = [0.0] * i
        for level in range(levels):
            members = [k for k in range(i) if (k * levels) // i == level]
            filled = [k for k in members if hist[k] > 0]
            for k in filled:
                q[k] = sum(hist[m] for m in members) / len(filled)
        if any(p[k] > 0 and q[k] == 0 for k in range(i)):
            continue
        ps, qs = sum(p), sum(q)
        kl = sum(p[k] / ps * math.log((p[k] / ps) / (q[k] / qs)) for k in range(i) if p[k] > 0)
        if kl <= best_kl:  # the last minimum wins
            best_i, best_kl = i, kl
    return float(edges[best_i])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_matches_a_loop_by_loop_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.gamma(2.0, size=5000), rng.uniform(8, 12, size=5)])
    assert cu.amax_entropy(x, bins=96, levels=16) == pytest.approx(_reference_entropy(x, 96, 16), rel=1e-12)


def test_calibrate_amax_dispatches_and_rejects_unknown_methods() -> None:
    x = np.arange(1, 10001, dtype=np.float64)
    assert cu.calibrate_amax(x, "minmax") == 10000.0
    assert cu.calibrate_amax(x, "percentile", percentile=50) == 5000.0
    assert cu.calibrate_amax(x, "entropy", bins=256, levels=32) == cu.amax_entropy(x, 256, 32)
    assert cu.CALIBRATORS == ("minmax", "percentile", "entropy")
    with pytest.raises(cu.CourseError, match="Unknown calibration method 'mse'"):
        cu.calibrate_amax(x, "mse")
    with pytest.raises(cu.CourseError, match="calibrate_amax\\('minmax'\\)"):
        cu.calibrate_amax(x, "minmax", percentile=99)


# --- calibration ranges: bad input ---------------------------------------------------------------


@pytest.mark.parametrize("function", [cu.amax_minmax, cu.amax_percentile, cu.amax_entropy])
def test_empty_nan_and_zero_data_are_clear_errors(function) -> None:
    with pytest.raises(cu.CourseError, match="empty"):
        function(np.array([]))
    with pytest.raises(cu.CourseError, match="empty"):
        function([])
    with pytest.raises(cu.CourseError, match="NaN or infinite"):
        function(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(cu.CourseError, match="NaN or infinite"):
        function(np.array([1.0, np.inf]))
    with pytest.raises(cu.CourseError, match="all zeros"):
        function(np.zeros(100))
    with pytest.raises(cu.CourseError, match="array of numbers"):
        function(["a", "b"])
    with pytest.raises(cu.CourseError, match="x is None"):
        function(None)


def test_a_tensor_of_constants_has_a_minmax_range_but_no_distribution() -> None:
    constant = np.full(1000, -2.5)
    assert cu.amax_minmax(constant) == 2.5
    for function in (cu.amax_percentile, cu.amax_entropy):
        with pytest.raises(cu.CourseError, match="same magnitude 2.5.*use amax_minmax"):
            function(constant)
    with pytest.raises(cu.CourseError, match="same magnitude"):  # +c and -c: also one magnitude
        cu.amax_entropy(np.array([3.0, -3.0] * 50))


@pytest.mark.parametrize("bad", [101, 10, -1, True, "99.9", None])
def test_percentile_must_be_a_sensible_number(bad) -> None:
    with pytest.raises(cu.CourseError, match="percentile must be a number from 50 to 100"):
        cu.amax_percentile(np.arange(10.0), bad)


@pytest.mark.parametrize(("bins", "levels", "message"), [
    (100, 128, "cannot exceed bins"), (0, 2, "bins must be"), (2048, 1, "levels must be"), (2048.0, 128, "bins must"),
])
def test_entropy_search_options_are_checked(bins, levels, message) -> None:
    with pytest.raises(cu.CourseError, match=message):
        cu.entropy_search(np.arange(1.0, 100.0), bins=bins, levels=levels)


def test_symmetric_qparams_known_scales_and_levels() -> None:
    params = cu.symmetric_qparams(1.27)
    assert params.scale.item() == pytest.approx(0.01)
    assert params.zero_point.item() == 0 and params.symmetric
    assert cu.quantize(np.array([1.0, -1.27, 5.0]), params).tolist() == [100, -127, 127]  # 5.0 is clipped
    per_channel = cu.symmetric_qparams([1.27, 2.54], axis=0)
    assert per_channel.scale.tolist() == pytest.approx([0.01, 0.02])
    assert cu.symmetric_qparams(7.0, bits=4).scale.item() == pytest.approx(1.0)
    for bad in (0.0, -1.0, float("nan"), []):
        with pytest.raises(cu.CourseError, match="amax must be positive and finite"):
            cu.symmetric_qparams(bad)


# --- agreement with onnxruntime's calibrators ----------------------------------------------------


def _ort_threshold(method: str, x: np.ndarray, **options) -> float:
    from onnxruntime.quantization.calibrate import HistogramCollector

    defaults = {"symmetric": True, "num_bins": 2048, "num_quantized_bins": 128, "percentile": 99.99}
    settings = {**defaults, **options}
    collector = HistogramCollector(method, settings["symmetric"], settings["num_bins"],
                                   settings["num_quantized_bins"], settings["percentile"], "same")
    with contextlib.redirect_stdout(io.StringIO()):
        collector.collect({"t": [np.asarray(x, np.float32)]})
        low, high = collector.compute_collection_result()["t"][:2]
    return float(max(abs(low), abs(high)))


@pytest.mark.parametrize("seed", [0, 1])
def test_percentile_agrees_with_onnxruntime_within_one_bin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal(50_000), 0).astype(np.float32)
    ours, theirs = cu.amax_percentile(x, 99.99), _ort_threshold("percentile", x)
    assert abs(ours - theirs) <= cu.amax_minmax(x) / 2048 * 1.01


def test_onnxruntimes_default_entropy_search_has_one_candidate_the_maximum() -> None:
    x = np.concatenate([np.random.default_rng(5).standard_normal(20_000), [30.0]]).astype(np.float32)
    # what quantize_static builds: 128 bins and 128 quantized bins (the lesson's trap)
    assert _ort_threshold("entropy", x, num_bins=128, num_quantized_bins=128) == pytest.approx(30.0)
    assert cu.amax_entropy(x) < 10.0


def test_onnxruntimes_entropy_searches_when_given_more_bins_and_is_another_variant() -> None:
    """With 2048 bins onnxruntime's own search clips too; on a ReLU output (a spike of zeros and one
    signed window) it clips far harder than the |x| search of NVIDIA's toolkit that cu.amax_entropy follows."""
    x = np.concatenate([np.random.default_rng(5).standard_normal(20_000), [30.0]]).astype(np.float32)
    assert _ort_threshold("entropy", x, num_bins=2048) < 10.0  # a real search: the outlier is clipped
    relu = np.maximum(np.random.default_rng(6).standard_normal(50_000), 0).astype(np.float32)
    theirs, ours = _ort_threshold("entropy", relu, num_bins=2048), cu.amax_entropy(relu)
    assert theirs < 0.8 * ours < 0.8 * cu.amax_minmax(relu)


# --- Q/DQ summaries ---------------------------------------------------------------------------------


def _qdq_model(*, act_zero=0, act_type=np.int8, bias_int32=False, shared_zero=False, no_zero=False):
    """x -> Q/DQ -> Conv(DQ(int8 weight, per-channel)) -> y, in the forms PTQ and QAT tools write."""
    weights = (np.arange(3 * 2 * 3 * 3) % 7 - 3).astype(np.int8).reshape(3, 2, 3, 3)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
        numpy_helper.from_array(weights, "w_int8"),
        numpy_helper.from_array(np.array([0.01, 0.02, 0.04], np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(3, np.int8), "w_zero"),
    ]
    nodes = []
    act_inputs = ["x", "x_scale"]
    if not no_zero:
        inits.append(numpy_helper.from_array(np.array(act_zero, act_type), "x_zero_stored"))
        if shared_zero:  # exporters share equal constants through Identity nodes
            nodes.append(helper.make_node("Identity", ["x_zero_stored"], ["x_zero"]))
        else:
            inits[-1].name = "x_zero"
        act_inputs.append("x_zero")
    nodes += [
        helper.make_node("QuantizeLinear", act_inputs, ["x_q"], name="q_x"),
        helper.make_node("DequantizeLinear", ["x_q", *act_inputs[1:]], ["x_dq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zero"], ["w"], name="dq_w", axis=0),
    ]
    conv_inputs = ["x_dq", "w"]
    if bias_int32:
        inits += [numpy_helper.from_array(np.zeros(3, np.int32), "b_int32"),
                  numpy_helper.from_array(np.full(3, 0.0005, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(3, np.int32), "b_zero")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_int32", "b_scale", "b_zero"], ["b"], name="dq_b", axis=0))
        conv_inputs.append("b")
    nodes.append(helper.make_node("Conv", conv_inputs, ["y"], name="conv", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_qdq_summary_reads_roles_types_zero_points_and_axes() -> None:
    summary = cu.qdq_summary(_qdq_model(), name="ptq")
    weight, = summary.of_role("weight")
    activation, = summary.of_role("activation")
    assert (weight.tensor, weight.dtype, weight.scales, weight.axis) == ("w_int8", "int8", 3, 0)
    assert weight.zero_points == (0,)
    assert weight.granularity == "per-channel (axis 0, 3)" and weight.nodes == ("DequantizeLinear",)
    assert weight.amax.tolist() == pytest.approx([1.27, 2.54, 5.08])
    assert (activation.tensor, activation.granularity, activation.nodes) == ("x", "per-tensor",
                                                                            ("QuantizeLinear", "DequantizeLinear"))
    assert activation.amax.tolist() == pytest.approx([0.05 * 127]) and activation.symmetric
    assert summary.quantize_nodes == 1 and summary.dequantize_nodes == 2
    assert summary.problems_for_tensorrt() == []
    summary.check_tensorrt()  # no problem: no error
    text = str(summary)
    assert "ptq: 1 QuantizeLinear, 2 DequantizeLinear; 1 weights, 1 activations, 0 biases" in text
    assert "per-channel (axis 0, 3)" in text


def test_qdq_summary_names_what_tensorrt_rejects() -> None:
    problems = cu.qdq_summary(_qdq_model(act_zero=128, act_type=np.uint8, bias_int32=True)).problems_for_tensorrt()
    assert any("b_int32: INT32 through DequantizeLinear" in p and "QuantizeBias" in p for p in problems)
    assert any("x: uint8 Q/DQ" in p for p in problems)
    assert any("x: zero point(s) [128]" in p and "ActivationSymmetric" in p for p in problems)
    with pytest.raises(cu.CourseError, match="not an INT8 Q/DQ model TensorRT builds as intended"):
        cu.qdq_summary(_qdq_model(bias_int32=True)).check_tensorrt()
    assert cu.qdq_summary(_qdq_model(bias_int32=True)).of_role("bias")[0].dtype == "int32"


def test_amax_follows_the_integer_type() -> None:
    """scale * 127 for INT8, scale * 7 for INT4 (the largest level of a symmetric grid)."""
    int8 = cu.QdqTensor("t", "weight", "int8", 1, None, (0,), ("DequantizeLinear",), np.array([0.5], np.float32))
    int4 = cu.QdqTensor("t", "weight", "int4", 1, None, (0,), ("DequantizeLinear",), np.array([0.5], np.float32))
    assert int8.amax.tolist() == [63.5] and int4.amax.tolist() == [3.5]


def test_a_zero_point_shared_through_identity_keeps_its_type() -> None:
    summary = cu.qdq_summary(_qdq_model(shared_zero=True))
    assert summary.of_role("activation")[0].dtype == "int8"
    assert summary.problems_for_tensorrt() == []


def test_quantize_linear_without_zero_point_is_uint8_as_onnx_defines() -> None:
    activation = cu.qdq_summary(_qdq_model(no_zero=True)).of_role("activation")[0]
    assert activation.dtype == "uint8" and activation.zero_points == (0,)


def test_a_model_without_qdq_nodes_says_so() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    summary = cu.qdq_summary(model)
    assert summary.tensors == [] and summary.quantize_nodes == 0
    assert "no QuantizeLinear/DequantizeLinear nodes" in summary.problems_for_tensorrt()[0]


def test_qdq_summary_bad_input(tmp_path) -> None:
    model = _qdq_model()
    model.graph.initializer.remove(next(t for t in model.graph.initializer if t.name == "x_scale"))
    model.graph.input.append(helper.make_tensor_value_info("x_scale", TensorProto.FLOAT, []))
    with pytest.raises(cu.CourseError, match="has no constant scale"):
        cu.qdq_summary(model)
    with pytest.raises(cu.CourseError):
        cu.qdq_summary(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(cu.CourseError):
        cu.qdq_summary(garbage)
    with pytest.raises(cu.CourseError, match="Expected an ONNX model"):
        cu.qdq_summary(42)


def test_torch_fake_quantization_exports_as_symmetric_qdq_pairs(tmp_path) -> None:
    import torch

    class FakeQuantConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 4, 3)

        def forward(self, x):
            x = torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127)
            scale = torch.full((4,), 0.01)
            w = torch.fake_quantize_per_channel_affine(self.conv.weight, scale, torch.zeros(4, dtype=torch.int32),
                                                       0, -128, 127)
            return torch.nn.functional.conv2d(x, w, self.conv.bias)

    path = tmp_path / "qat.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(FakeQuantConv().eval(), torch.zeros(1, 2, 5, 5), path, dynamo=False, opset_version=17)
    summary = cu.qdq_summary(path)
    weight, = summary.of_role("weight")
    activation, = summary.of_role("activation")
    assert weight.nodes == activation.nodes == ("QuantizeLinear", "DequantizeLinear")
    assert (weight.axis, weight.scales, weight.dtype, weight.symmetric) == (0, 4, "int8", True)
    assert activation.amax.tolist() == pytest.approx([12.7])
    assert summary.problems_for_tensorrt() == []


def test_quantize_static_with_the_tensorrt_settings_writes_a_clean_file(tmp_path) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["h"], name="conv", pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["h"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3, 4, 4])], [weight])
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)

    class Reader:
        def __init__(self) -> None:
            self.batches = [{"x": rng.standard_normal((8, 2, 4, 4)).astype(np.float32)}]

        def get_next(self):
            return self.batches.pop() if self.batches else None

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": True, "QuantizeBias": False,
                                   "OpTypesToExcludeOutputQuantization": ["Conv"]})
    summary = cu.qdq_summary(int8)
    assert [t.role for t in summary.tensors].count("weight") == 1
    assert summary.of_role("weight")[0].granularity == "per-channel (axis 0, 3)"
    assert summary.problems_for_tensorrt() == []


# --- FP16 overflow ------------------------------------------------------------------------------------


def _overflowing_model() -> onnx.ModelProto:
    """y = (x * 1000 + 1) / 100: the product and the sum exceed 65504 for |x| > 65.5; y does not."""
    inits = [numpy_helper.from_array(np.array(1000.0, np.float32), "k"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(100.0, np.float32), "hundred")]
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "k"], ["big"], name="scale_up"),
             helper.make_node("Add", ["big", "one"], ["bigger"], name="add_one"),
             helper.make_node("Div", ["bigger", "hundred"], ["y"], name="scale_down")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fp16_overflows_lists_producers_and_consumers_of_large_values() -> None:
    found = cu.fp16_overflows(_overflowing_model(), {"x": np.array([[70.0, 1.0]], np.float32)})
    assert [(f.node, f.op_type, f.tensor) for f in found] == [
        ("scale_up", "Mul", "big"), ("add_one", "Add", "bigger"), ("scale_down", "Div", "bigger")]
    assert found[0].max_abs == pytest.approx(70000.0)
    assert "scale_up (Mul): |big| reaches 7e+04" == str(found[0])
    assert cu.fp16_overflows(_overflowing_model(), {"x": np.array([[60.0, 1.0]], np.float32)}) == []
    assert cu.fp16_overflows(_overflowing_model(), {"x": np.array([[6.0, 1.0]], np.float32)}, limit=5000) != []


def test_blocking_the_listed_nodes_makes_fp16_arithmetic_finite() -> None:
    from onnx.reference import ReferenceEvaluator
    from onnxconverter_common import float16

    feed = {"x": np.array([[70.0, 1.0]], np.float32)}
    naive = float16.convert_float_to_float16(_overflowing_model(), keep_io_types=True)
    blocked = [f.node for f in cu.fp16_overflows(_overflowing_model(), feed)]
    fixed = float16.convert_float_to_float16(_overflowing_model(), keep_io_types=True, node_block_list=blocked)
    with np.errstate(all="ignore"):
        assert np.isinf(ReferenceEvaluator(naive).run(None, feed)[0]).any()
        np.testing.assert_allclose(ReferenceEvaluator(fixed).run(None, feed)[0], [[700.01, 10.01]], rtol=1e-3)


def test_fp16_overflows_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="feed must be a dict"):
        cu.fp16_overflows(_overflowing_model(), {})
    with pytest.raises(cu.CourseError, match="limit must be a positive number"):
        cu.fp16_overflows(_overflowing_model(), {"x": np.ones((1, 2), np.float32)}, limit=0)
    with pytest.raises(cu.CourseError, match="feed must be a dict with exactly the model's inputs"):
        cu.fp16_overflows(_overflowing_model(), {"wrong": np.ones((1, 2), np.float32)})
    for bad in (np.nan, np.inf):  # NaN inputs would flag every node: refuse them instead
        with pytest.raises(cu.CourseError, match=r"feed\['x'\] holds NaN or infinite values"):
            cu.fp16_overflows(_overflowing_model(), {"x": np.array([[bad, 1.0]], np.float32)})


# --- the table ---------------------------------------------------------------------------------------


def _classifier(tmp_path, name: str = "clf.onnx"):
    """logits = x @ I (3 classes): the prediction is the largest input."""
    eye = numpy_helper.from_array(np.eye(3, dtype=np.float32), "eye")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "eye"], ["logits"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])], [eye])
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _normalising_classifier(tmp_path):
    """logits = x / sum(x) per row: the prediction is the largest input; a row of zeros gives 0/0 = NaN."""
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1),
             helper.make_node("Div", ["x", "total"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])], [axes])
    path = tmp_path / "normalising.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_score_model_accuracy_agreement_and_nan_rows(tmp_path) -> None:
    path = _normalising_classifier(tmp_path)
    x = np.array([[3, 1, 0], [0, 2, 1], [0, 0, 5], [0, 0, 0]], np.float32)
    labels = np.array([0, 1, 1, 0])
    score = cu.score_model("clf", path, x, labels, repeats=2, number=1)
    assert np.isnan(score.logits[3]).all() and np.isfinite(score.logits[:3]).all()
    assert score.predictions.tolist() == [0, 1, 2, -1]  # the NaN row predicts nothing (and counts as wrong)
    assert score.accuracy == 0.5 and score.agreement is None
    other = cu.score_model("again", path, x, labels, reference=score, repeats=2, number=1, evaluator="reference")
    assert other.agreement == 1.0 and other.evaluator == "reference"
    versus = cu.score_model("vs", path, x, labels, reference=np.array([0, 0, 0, 0]), repeats=1, number=1)
    assert versus.agreement == 0.25  # only the first prediction is 0
    assert score.size_bytes == path.stat().st_size and score.latency.n == 2


def test_score_model_bad_input(tmp_path) -> None:
    path = _classifier(tmp_path)
    x = np.ones((2, 3), np.float32)
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        cu.score_model("m", tmp_path / "none.onnx", x, [0, 1])
    with pytest.raises(cu.CourseError, match="one label per image"):
        cu.score_model("m", path, x, [0, 1, 2])
    with pytest.raises(cu.CourseError, match="one label per image"):
        cu.score_model("m", path, np.ones((0, 3), np.float32), [])
    with pytest.raises(cu.CourseError, match="evaluator must be"):
        cu.score_model("m", path, x, [0, 1], evaluator="tensorrt")
    with pytest.raises(cu.CourseError, match="reference predictions have shape"):
        cu.score_model("m", path, x, [0, 1], reference=np.zeros(5))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(cu.CourseError, match="onnxruntime cannot load garbage.onnx"):
        cu.score_model("m", garbage, x, [0, 1])
    for bad in (np.array([[np.nan, 0, 0], [1, 0, 0]], np.float32), np.array([[np.inf, 0, 0], [1, 0, 0]])):
        with pytest.raises(cu.CourseError, match="images hold NaN, infinite"):
            cu.score_model("m", path, bad, [0, 1])
    with pytest.raises(cu.CourseError, match="images hold NaN, infinite or non-numeric"):
        cu.score_model("m", path, np.array([["a", "b", "c"], ["d", "e", "f"]]), [0, 1])
    for evaluator in ("onnxruntime", "reference"):  # a shape the model does not take: a clear error, not a crash
        with pytest.raises(cu.CourseError, match=rf"{evaluator} could not run clf.onnx on images of shape \(2, 5\)"):
            cu.score_model("m", path, np.ones((2, 5), np.float32), [0, 1], evaluator=evaluator)


def test_precision_table_lines_up_rows_against_the_baseline(tmp_path) -> None:
    path = _classifier(tmp_path)
    x = np.array([[3, 1, 0], [0, 2, 1]], np.float32)
    base = cu.score_model("FP32", path, x, [0, 1], repeats=2, number=1)
    worse = cu.score_model("INT8", path, x, [0, 0], reference=base, repeats=2, number=1)
    table = cu.precision_table([base, worse])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["model", "accuracy", "vs"] and "outputs by" in lines[0]
    assert lines[1].startswith("FP32") and "100.00%" in lines[1]
    assert lines[2].startswith("INT8") and "50.00%" in lines[2] and "-50.00 pt" in lines[2] and "100.0%" in lines[2]
    with pytest.raises(cu.CourseError, match="non-empty list of ModelScore"):
        cu.precision_table([])
    with pytest.raises(cu.CourseError, match="distinct names"):
        cu.precision_table([base, base])
    with pytest.raises(cu.CourseError, match="baseline 'FP16' is not one of"):
        cu.precision_table([base, worse], baseline="FP16")


def test_plot_ranges_draws_each_range_with_its_clipped_share() -> None:
    x = np.arange(100, dtype=np.float64)  # 0..99
    fig = cu.plot_ranges(x, {"minmax": 99.0, "percentile": 49.5}, title="t")
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["minmax: ±99 (clips 0.000%)", "percentile: ±49.5 (clips 50.000%)"]
    with pytest.raises(cu.CourseError, match="at least one range"):
        cu.plot_ranges(x, {})
    with pytest.raises(cu.CourseError, match="must be a positive number"):
        cu.plot_ranges(x, {"minmax": -1.0})
    with pytest.raises(cu.CourseError, match="NaN"):
        cu.plot_ranges(np.array([np.nan, 1.0]), {"minmax": 1.0})
