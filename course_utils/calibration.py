"""Calibration (校准) for INT8 and the checks around Q/DQ models: what TensorRT 11 consumes.

TensorRT 11 has no calibrator any more: precision lives in the ONNX file, INT8 as
QuantizeLinear/DequantizeLinear (Q/DQ) pairs whose scales someone chose before the build.
Choosing a scale means choosing the clipping value `amax` of each tensor (scale = amax / 127,
symmetric, zero point 0). Three classic ways, each on real activations collected from the model:

- `amax_minmax(x)`: max |x|. Nothing is clipped; one outlier stretches the grid for everyone.
- `amax_percentile(x, 99.99)`: that percentile of |x|. The rarest 0.01 % are clipped.
- `amax_entropy(x)`: the clipping value whose 128-level quantized histogram is closest, in
  KL divergence (相对熵), to the histogram of |x| with the clipped tail folded in: the search NVIDIA
  described for TensorRT's INT8 calibration (GTC 2017, "8-bit Inference with TensorRT") as
  NVIDIA's pytorch-quantization implements it (2048 bins; the spike of exact zeros that ReLU
  leaves in bin 0 is flattened to bin 1's count, so it does not drag the search).
  `entropy_search(x)` returns the whole KL curve.

onnxruntime's calibrators do the same inside `quantize_static` for a whole model; notebook 09 runs
them and checks that these helpers agree (min-max exactly, percentile within one of onnxruntime's
2048 histogram bins). What this module adds is what onnxruntime lacks: the ranges of one array
(to draw them on its histogram, `plot_ranges`), a working entropy search (onnxruntime's, as
`quantize_static` calls it, has as many bins as quantized bins and so one candidate: the max),
`qdq_summary` (every Q/DQ pair of a model: weight or activation, type, zero points, per-channel
axis, and what TensorRT would reject), `fp16_overflows` (the nodes whose values leave FP16's
range, ready for onnxconverter-common's `node_block_list`), and `score_model` / `precision_table`
(accuracy, size, onnxruntime latency and agreement with FP32, one row per model).
Taught in: 09_quantization_in_practice.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CourseError
from .quantization import QuantParams, integer_range, make_qparams

__all__ = [
    "CALIBRATORS", "FP16_MAX", "amax_minmax", "amax_percentile", "amax_entropy", "EntropySearch",
    "entropy_search", "calibrate_amax", "symmetric_qparams", "plot_ranges", "QdqTensor", "QdqSummary",
    "qdq_summary", "Fp16Overflow", "fp16_overflows", "ModelScore", "score_model", "precision_table",
]

#: The calibration methods of this module, by the names `calibrate_amax` takes.
CALIBRATORS = ("minmax", "percentile", "entropy")
#: The largest finite FP16 value; anything larger becomes infinity.
FP16_MAX = 65504.0


# --- calibration ranges ----------------------------------------------------------------------

def _magnitudes(name: str, x: Any) -> np.ndarray:
    """|x| as a flat float64 array, refusing what cannot be calibrated."""
    if x is None:
        raise CourseError(f"{name} is None: pass the activation values (an array) to calibrate on.")
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    if isinstance(x, list | tuple) and x and all(hasattr(a, "shape") for a in x):
        x = np.concatenate([np.asarray(a).ravel() for a in x])  # batches, as onnxruntime collects them
    try:
        array = np.asarray(x, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise CourseError(f"{name} must be an array of numbers, got {type(x).__name__} ({error}).") from None
    if array.size == 0:
        raise CourseError(f"{name} is empty: there is no calibration data to choose a range from. "
                          "Run the model on some calibration inputs first.")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int((~finite).sum())
        raise CourseError(f"{name} holds {bad} NaN or infinite value(s) out of {array.size}: the FP32 model "
                          "already misbehaves on these inputs (or they were not preprocessed); fix that "
                          "before calibrating.")
    magnitudes = np.abs(array)
    if magnitudes.max() == 0:
        raise CourseError(f"{name} is all zeros: any scale represents it, none can be calibrated from it "
                          "(a dead layer, or calibration inputs that are all zero?).")
    return magnitudes


def _spread_magnitudes(name: str, x: Any, method: str) -> np.ndarray:
    magnitudes = _magnitudes(name, x)
    if magnitudes.min() == magnitudes.max():
        raise CourseError(f"{name} has {magnitudes.size} values of the same magnitude {magnitudes[0]:.6g}: "
                          f"{method} calibration needs a spread of values to choose from; use "
                          "amax_minmax (the range is then exactly that magnitude).")
    return magnitudes


def amax_minmax(x: Any) -> float:
    """The min-max clipping value: max |x| (symmetric, nothing is clipped).

    Taught in: 09_quantization_in_practice.
    """
    return float(_magnitudes("x", x).max())


def amax_percentile(x: Any, percentile: float = 99.99) -> float:
    """The smallest |x| that at least `percentile` % of the values do not exceed: clips the rarest.

    (numpy's "inverted_cdf" percentile: always one of the data's own magnitudes.) onnxruntime's
    percentile calibrator reads the same point off a 2048-bin histogram of |x| and returns the left
    edge of its bin, so the two agree to within one bin (max|x| / 2048).
    Taught in: 09_quantization_in_practice.
    """
    if isinstance(percentile, bool) or not isinstance(percentile, int | float) or not 50 <= percentile <= 100:
        raise CourseError(f"percentile must be a number from 50 to 100 (e.g. 99.99), got {percentile!r}.")
    magnitudes = _spread_magnitudes("x", x, "percentile")
    return float(np.percentile(magnitudes, percentile, method="inverted_cdf"))


@dataclass(frozen=True)
class EntropySearch:
    """The KL-divergence search of `entropy_search`: every candidate and the one chosen."""

    amax: float  # the chosen clipping value
    max_abs: float  # max |x|, for comparison
    thresholds: np.ndarray  # candidate clipping values (right edge of the last kept bin)
    divergences: np.ndarray  # KL(P || Q) of each candidate (inf where Q misses part of P)

    @property
    def clipped_fraction(self) -> float:
        """How far below the maximum the chosen value sits: 1 - amax / max|x|."""
        return 1.0 - self.amax / self.max_abs

    def __repr__(self) -> str:
        return (f"EntropySearch(amax={self.amax:.4g} of max {self.max_abs:.4g}, "
                f"{len(self.thresholds)} candidates)")


def entropy_search(x: Any, bins: int = 2048, levels: int = 128) -> EntropySearch:
    """Search the clipping value that keeps the histogram of |x| best: minimum KL divergence.

    Histogram |x| into `bins` bins on [0, max|x|]. For each candidate i (levels..bins bins kept):
    P = the first i bins with everything beyond folded into bin i-1; Q = the same i bins merged
    into `levels` groups (the INT8 levels) and spread back evenly over the group's non-empty bins.
    Both normalised; KL(P || Q) = sum P log(P / Q). The last minimum wins (as in NVIDIA's
    pytorch-quantization); bin 0's count is set to bin 1's first, so the exact zeros of a ReLU do not
    dominate. Taught in: 09_quantization_in_practice.
    """
    for label, value, low in (("bins", bins, 2), ("levels", levels, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise CourseError(f"{label} must be an integer >= {low}, got {value!r}.")
    if levels > bins:
        raise CourseError(f"levels ({levels}) cannot exceed bins ({bins}): the search needs at least as many "
                          "histogram bins as quantization levels (2048 and 128 are the classic choice).")
    magnitudes = _spread_magnitudes("x", x, "entropy")
    max_abs = float(magnitudes.max())
    hist, edges = np.histogram(magnitudes, bins=bins, range=(0.0, max_abs))
    hist = hist.astype(np.float64)
    hist[0] = hist[1]
    candidates = np.arange(levels, bins + 1)
    divergences = np.full(candidates.size, np.inf)
    for k, kept in enumerate(candidates):
        reference = hist[:kept].copy()
        reference[-1] += hist[kept:].sum()  # the clipped tail lands in the last kept bin
        group = (np.arange(kept) * levels) // kept  # which INT8 level each bin falls into
        nonzero = hist[:kept] > 0
        totals = np.bincount(group, weights=hist[:kept], minlength=levels)
        filled = np.bincount(group, weights=nonzero, minlength=levels)
        expanded = np.where(nonzero, totals[group] / np.maximum(filled[group], 1), 0.0)
        present = reference > 0
        if not present.any() or np.any(expanded[present] == 0):
            continue  # Q misses mass that P has: infinite divergence
        p = reference / reference.sum()
        q = expanded / expanded.sum()
        divergences[k] = float(np.sum(p[present] * np.log(p[present] / q[present])))
    if not np.isfinite(divergences).any():
        best = len(candidates) - 1  # nothing comparable: keep everything
    else:
        best = len(divergences) - 1 - int(np.argmin(divergences[::-1]))
    thresholds = edges[candidates]
    return EntropySearch(float(thresholds[best]), max_abs, thresholds, divergences)


def amax_entropy(x: Any, bins: int = 2048, levels: int = 128) -> float:
    """The entropy (KL-divergence) clipping value of |x|; see `entropy_search`.

    Taught in: 09_quantization_in_practice.
    """
    return entropy_search(x, bins, levels).amax


def calibrate_amax(x: Any, method: str, **options: Any) -> float:
    """The clipping value of `x` by `method` ("minmax", "percentile" or "entropy").

    `options` go to the method (`percentile=`, or `bins=` / `levels=`).
    Taught in: 09_quantization_in_practice.
    """
    functions = {"minmax": amax_minmax, "percentile": amax_percentile, "entropy": amax_entropy}
    if method not in functions:
        raise CourseError(f"Unknown calibration method {method!r}; choose one of {CALIBRATORS}.")
    try:
        return functions[method](x, **options)
    except TypeError as error:
        raise CourseError(f"calibrate_amax({method!r}): {error}") from None


def symmetric_qparams(amax: Any, bits: int = 8, axis: int | None = None) -> QuantParams:
    """QuantParams for a symmetric scheme with clipping value `amax`: scale = amax / (2^(b-1) - 1).

    One amax per tensor, or one per channel with `axis`. Feeds `cu.quantize` / `cu.fake_quantize`.
    Taught in: 09_quantization_in_practice.
    """
    values = np.atleast_1d(np.asarray(amax, dtype=np.float64))
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise CourseError(f"amax must be positive and finite, got {values.ravel()[:4]}: calibrate on data "
                          "that is not all zero.")
    _, qmax = integer_range(bits, True)
    return make_qparams(values / qmax, 0, bits=bits, symmetric=True, axis=axis)


_COLOURS = {"minmax": "#c44e52", "percentile": "#dd8452", "entropy": "#55a868"}


def plot_ranges(x: Any, ranges: Mapping[str, float], *, title: str = "", bins: int = 100) -> Any:
    """Histogram of x (log counts) with each clipping range drawn as a pair of lines at ±amax.

    `ranges` maps a label ("minmax", "percentile", "entropy" or any) to its amax; the legend says
    what share of the values each one clips. Taught in: 09_quantization_in_practice.
    """
    from matplotlib.figure import Figure

    magnitudes = _magnitudes("x", x)
    values = np.concatenate([np.asarray(a).ravel() for a in x]) if isinstance(x, list | tuple) else (
        np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64).ravel())
    if not ranges:
        raise CourseError("plot_ranges needs at least one range, e.g. {'minmax': amax}.")
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color="#4c72b0", alpha=0.85)
    ax.set_yscale("log")
    for label, amax in ranges.items():
        amax = float(amax)
        if not math.isfinite(amax) or amax <= 0:
            raise CourseError(f"range {label!r} must be a positive number, got {amax!r}.")
        clipped = float(np.mean(magnitudes > amax))
        colour = _COLOURS.get(label.split()[0], "#8172b3")
        ax.axvline(amax, color=colour, lw=1.6, label=f"{label}: ±{amax:.3g} (clips {clipped:.3%})")
        if values.min() < 0:
            ax.axvline(-amax, color=colour, lw=1.6)
    ax.set_xlabel("value")
    ax.set_ylabel("count (log)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- Q/DQ models -------------------------------------------------------------------------------

def _load(model: Any) -> Any:
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, str | os.PathLike):
        from .onnx_io import load_model

        return load_model(model)
    raise CourseError(f"Expected an ONNX model or a path to an .onnx file, got {type(model).__name__}.")


@dataclass(frozen=True)
class QdqTensor:
    """One quantized tensor of a Q/DQ model: what TensorRT turns into an INT8 tensor."""

    tensor: str  # the float tensor that is quantized (a weight or an activation)
    role: str  # "weight", "activation" or "bias"
    dtype: str  # the integer type: "int8", "uint8", "int32", ...
    scales: int  # how many scales (1: per tensor; >1: per channel)
    axis: int | None  # the channel axis of a per-channel scale
    zero_points: tuple[int, ...]  # the distinct zero points
    nodes: tuple[str, ...]  # "QuantizeLinear", "DequantizeLinear" or both, in graph order
    scale: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.ones(1))

    @property
    def amax(self) -> np.ndarray:
        """The clipping value(s) these scales stand for: scale * 127 for INT8 (scale * 7 for INT4), symmetric."""
        qmax = {"int4": 7.0, "uint4": 15.0, "uint8": 255.0, "int16": 32767.0}.get(self.dtype, 127.0)
        return np.asarray(self.scale, dtype=np.float64).ravel() * qmax

    @property
    def symmetric(self) -> bool:
        return self.zero_points == (0,)

    @property
    def granularity(self) -> str:
        return "per-tensor" if self.scales == 1 else f"per-channel (axis {self.axis}, {self.scales})"


@dataclass
class QdqSummary:
    """Every Q/DQ pair of a model, and what TensorRT would make of them."""

    name: str
    tensors: list[QdqTensor]
    op_counts: dict[str, int]

    @property
    def quantize_nodes(self) -> int:
        return self.op_counts.get("QuantizeLinear", 0)

    @property
    def dequantize_nodes(self) -> int:
        return self.op_counts.get("DequantizeLinear", 0)

    def of_role(self, role: str) -> list[QdqTensor]:
        return [t for t in self.tensors if t.role == role]

    def problems_for_tensorrt(self) -> list[str]:
        """What stops this model from being an INT8 model TensorRT builds as intended."""
        problems = []
        if not self.tensors:
            problems.append("no QuantizeLinear/DequantizeLinear nodes: TensorRT 11 builds this model in the "
                            "precision of its tensors (FP32 or FP16 casts); INT8 needs Q/DQ nodes in the file")
        for t in self.tensors:
            if t.dtype == "int32":
                problems.append(f"{t.tensor}: INT32 through DequantizeLinear (a quantized bias); TensorRT-RTX "
                                "rejects it (quantize_static: extra_options={'QuantizeBias': False})")
            elif t.dtype not in ("int8", "float8e4m3fn", "int4"):
                problems.append(f"{t.tensor}: {t.dtype} Q/DQ; TensorRT's INT8 is signed int8 "
                                "(quantize_static: activation_type=weight_type=QuantType.QInt8)")
            if not t.symmetric:
                problems.append(f"{t.tensor}: zero point(s) {list(t.zero_points)[:4]}; TensorRT needs 0 "
                                "(symmetric: extra_options={'ActivationSymmetric': True})")
        return problems

    def check_tensorrt(self) -> None:
        """Raise CourseError listing every problem of `problems_for_tensorrt` (nothing if none)."""
        problems = self.problems_for_tensorrt()
        if problems:
            raise CourseError(f"{self.name} is not an INT8 Q/DQ model TensorRT builds as intended:\n  - "
                              + "\n  - ".join(problems[:8]) + ("\n  ..." if len(problems) > 8 else ""))

    def table(self, limit: int | None = 30) -> str:
        rows = self.tensors if limit is None else self.tensors[:limit]
        width = max([len("tensor")] + [min(len(t.tensor), 44) for t in rows])
        lines = [f"{'tensor':{width}}  {'role':10}  {'type':5}  {'zero pt':7}  granularity"]
        for t in rows:
            zero = "0" if t.symmetric else ",".join(str(z) for z in t.zero_points[:3])
            lines.append(f"{t.tensor[:44]:{width}}  {t.role:10}  {t.dtype:5}  {zero:7}  {t.granularity}")
        if limit is not None and len(self.tensors) > limit:
            lines.append(f"... {len(self.tensors) - limit} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        roles = Counter(t.role for t in self.tensors)
        head = (f"{self.name}: {self.quantize_nodes} QuantizeLinear, {self.dequantize_nodes} DequantizeLinear; "
                f"{roles.get('weight', 0)} weights, {roles.get('activation', 0)} activations, "
                f"{roles.get('bias', 0)} biases quantized")
        return head if not self.tensors else head + "\n" + self.table()


def _constant_values(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:  # in graph order, so an Identity of a Constant resolves
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
        elif node.op_type == "Identity" and node.input and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]  # exporters share equal constants this way
    return values


def qdq_summary(model: Any, name: str | None = None) -> QdqSummary:
    """List every quantized tensor of an ONNX model: role, integer type, zero points, axis.

    A tensor counts once whether it has a QuantizeLinear/DequantizeLinear pair (activations, QAT
    weights) or only a DequantizeLinear of stored integers (PTQ weights). A weight feeds input 1 of a
    Conv/Gemm/MatMul through its DequantizeLinear, a bias input 2; everything else is an activation.
    Taught in: 09_quantization_in_practice.
    """
    from onnx import helper

    proto = _load(model)
    label = name or (Path(model).name if isinstance(model, str | os.PathLike) else (proto.graph.name or "model"))
    constants = _constant_values(proto)
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in proto.graph.node:
        for index, tensor in enumerate(node.input):
            consumers.setdefault(tensor, []).append((node, index))
    producer_of = {out: node for node in proto.graph.node for out in node.output}
    found: dict[str, dict[str, Any]] = {}
    for node in proto.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) < 2 or node.input[1] not in constants:
            raise CourseError(f"{node.op_type} node {node.name or node.output[0]!r} has no constant scale: "
                              "TensorRT needs scales known at build time.")
        scale = constants[node.input[1]]
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), None)
        if node.op_type == "QuantizeLinear":
            source = node.input[0]
            declared = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "output_dtype"), 0)
            # without a zero point (and output_dtype) ONNX quantizes to uint8
            dtype = zero.dtype if zero is not None else helper.tensor_dtype_to_np_dtype(declared or 2)
        else:
            stored = node.input[0]
            upstream = producer_of.get(stored)
            source = upstream.input[0] if upstream is not None and upstream.op_type == "QuantizeLinear" else stored
            dtype = constants[stored].dtype if stored in constants else (zero.dtype if zero is not None else None)
        entry = found.setdefault(source, {"nodes": [], "scale": scale, "zero": zero, "axis": axis,
                                          "dtype": dtype, "dq_outputs": []})
        entry["nodes"].append(node.op_type)
        if node.op_type == "DequantizeLinear":
            entry["dq_outputs"].append(node.output[0])
        if entry["dtype"] is None:
            entry["dtype"] = dtype
    tensors = []
    for source, entry in found.items():
        role = "activation"
        for output in entry["dq_outputs"]:
            for consumer, index in consumers.get(output, []):
                if consumer.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and index == 1:
                    role = "weight"
                elif consumer.op_type in ("Conv", "ConvTranspose", "Gemm") and index == 2:
                    role = "bias"
        scales = int(np.asarray(entry["scale"]).size)
        zeros = np.zeros(1, dtype=np.int64) if entry["zero"] is None else np.asarray(entry["zero"]).astype(np.int64)
        dtype = np.dtype(entry["dtype"]).name if entry["dtype"] is not None else "int8"
        axis = (1 if entry["axis"] is None else int(entry["axis"])) if scales > 1 else None
        tensors.append(QdqTensor(source, role, dtype, scales, axis, tuple(sorted({int(z) for z in zeros.ravel()})),
                                 tuple(entry["nodes"]), np.asarray(entry["scale"], dtype=np.float32).ravel()))
    ops = Counter(node.op_type for node in proto.graph.node)
    return QdqSummary(label, tensors, {op: ops[op] for op in ("QuantizeLinear", "DequantizeLinear") if ops[op]})


# --- FP16 overflow ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fp16Overflow:
    """A node that reads or writes values beyond FP16's range on the given inputs."""

    node: str
    op_type: str
    tensor: str  # its input or output with the largest magnitude
    max_abs: float

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): |{self.tensor}| reaches {self.max_abs:.3g}"


def fp16_overflows(model: Any, feed: Mapping[str, np.ndarray], limit: float = FP16_MAX) -> list[Fp16Overflow]:
    """Run the FP32 model and list the nodes whose inputs or outputs exceed `limit` (FP16's 65504).

    A node whose output overflows must stay FP32, and so must every node that reads such a value
    (the converter would cast it back to FP16 on the way in). Pass the node names to
    onnxconverter-common's `convert_float_to_float16(..., node_block_list=[...])`.
    Taught in: 09_quantization_in_practice.
    """
    from onnx import TensorProto

    from .graphs import check_feed, intermediate_values

    proto = _load(model)
    if not isinstance(feed, Mapping) or not feed:
        raise CourseError("feed must be a dict {input name: array} with real inputs (the values decide what "
                          "overflows).")
    if not (isinstance(limit, int | float) and limit > 0):
        raise CourseError(f"limit must be a positive number (FP16's largest value is {FP16_MAX}), got {limit!r}.")
    check_feed(proto, dict(feed))  # also when no node output is a float and the model need not run
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    float_tensors = {v.name for v in list(inferred.graph.value_info) + list(inferred.graph.output)
                     if v.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE)}
    float_tensors |= {v.name for v in inferred.graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    names = [out for node in proto.graph.node for out in node.output if out in float_tensors]
    for key, value in feed.items():
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise CourseError(f"feed[{key!r}] holds NaN or infinite values: the question is which nodes overflow "
                              "on real inputs, so feed finite ones.")
    values = intermediate_values(proto, names, dict(feed)) if names else {}
    values.update({k: np.asarray(v) for k, v in feed.items()})
    peaks = {name: float(np.max(np.abs(v))) if np.size(v) else 0.0 for name, v in values.items()
             if np.issubdtype(np.asarray(v).dtype, np.floating)}
    found = []
    for node in proto.graph.node:
        touched = [(peaks[t], t) for t in list(node.input) + list(node.output) if t in peaks]
        if not touched:
            continue
        peak, tensor = max(touched)
        if not math.isfinite(peak) or peak > limit:
            found.append(Fp16Overflow(node.name or node.output[0], node.op_type, tensor, peak))
    return found


# --- the comparison table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelScore:
    """One row of the precision table: a model file, how right it is and how fast onnxruntime runs it."""

    name: str
    path: Path
    accuracy: float  # fraction of correct predictions
    agreement: float | None  # fraction of predictions equal to the reference model's
    size_bytes: int
    latency: Any  # cu.BenchmarkResult of one batch
    predictions: np.ndarray = field(repr=False)
    logits: np.ndarray = field(repr=False)
    evaluator: str = "onnxruntime"  # what computed the outputs: "onnxruntime" or "reference" (onnx.reference)

    @property
    def size_kib(self) -> float:
        return self.size_bytes / 1024


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise CourseError(f"onnxruntime cannot load {path.name}: {str(error).splitlines()[0][:300]}") from None


def score_model(
    name: str, path: str | os.PathLike[str], images: np.ndarray, labels: Sequence[int] | np.ndarray, *,
    reference: ModelScore | np.ndarray | None = None, latency_batch: int = 1, repeats: int = 30, number: int = 10,
    threads: int = 1, evaluator: str = "onnxruntime",
) -> ModelScore:
    """Accuracy on (images, labels), agreement with `reference` predictions, file size and latency.

    The outputs come from onnxruntime, or with `evaluator="reference"` from ONNX's reference evaluator
    (`onnx.reference.ReferenceEvaluator`), which computes every op in the element type the file
    declares: the way to see FP16 arithmetic on a CPU, where onnxruntime has no FP16 kernels for most
    ops and quietly computes them in FP32. Latency is always onnxruntime's: `cu.benchmark` of one call
    on `latency_batch` images (warm-up, `repeats` samples of `number` calls, median and IQR), in a
    session with `threads` intra-op threads, so every row is measured the same way in the same run.
    A row with NaN or inf predicts nothing (counts as wrong). Taught in: 09_quantization_in_practice.
    """
    if evaluator not in ("onnxruntime", "reference"):
        raise CourseError(f"evaluator must be 'onnxruntime' or 'reference', got {evaluator!r}.")
    from .timing import benchmark

    model_path = Path(path)
    if not model_path.is_file():
        raise CourseError(f"No ONNX file at {model_path}; write the model first.")
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim < 2 or images.shape[0] == 0 or labels.shape != (images.shape[0],):
        raise CourseError(f"images ({images.shape}) and labels ({labels.shape}) must hold the same number (> 0) "
                          "of examples, one label per image.")
    if not np.issubdtype(images.dtype, np.number) or not np.isfinite(images).all():
        raise CourseError("images hold NaN, infinite or non-numeric values: scoring them would only measure the "
                          "bad input. Check the preprocessing.")
    session = _session(model_path, threads)
    input_name = session.get_inputs()[0].name
    try:
        if evaluator == "reference":
            from onnx.reference import ReferenceEvaluator

            evaluator_run = ReferenceEvaluator(str(model_path)).run
            with np.errstate(all="ignore"):  # an overflow is what this evaluator is for: no numpy warnings
                logits = np.asarray(evaluator_run(None, {input_name: images.astype(np.float32)})[0])
        else:
            logits = np.asarray(session.run(None, {input_name: images.astype(np.float32)})[0])
    except Exception as error:  # a shape the model does not take, an op the evaluator lacks: say which
        said = str(error).strip().splitlines()[0][:300]
        raise CourseError(f"{evaluator} could not run {model_path.name} on images of shape {images.shape}: "
                          f"{said}") from None
    if logits.shape[0] != images.shape[0] or logits.ndim != 2:
        raise CourseError(f"{model_path.name} returned shape {logits.shape}; expected (N, classes) logits.")
    # a row with NaN or inf predicts nothing (-1): it counts as wrong and as disagreeing
    predictions = np.where(np.isfinite(logits).all(axis=1), logits.argmax(axis=1), -1)
    agreement = None
    if reference is not None:
        wanted = reference.predictions if isinstance(reference, ModelScore) else np.asarray(reference)
        if wanted.shape != predictions.shape:
            raise CourseError(f"reference predictions have shape {wanted.shape}, this model's {predictions.shape}.")
        agreement = float(np.mean(predictions == wanted))
    batch = images[:latency_batch].astype(np.float32)
    latency = benchmark(lambda: session.run(None, {input_name: batch}), repeats=repeats, warmup=3, number=number,
                        name=name)
    return ModelScore(name, model_path, float(np.mean(predictions == labels)), agreement,
                      model_path.stat().st_size, latency, predictions, logits, evaluator)


def precision_table(scores: Iterable[ModelScore], baseline: str | None = None) -> str:
    """One line per model: accuracy (and change vs `baseline`), agreement, size, latency median ± IQR, and
    what computed the outputs (onnxruntime or ONNX's reference evaluator).

    Taught in: 09_quantization_in_practice.
    """
    from .timing import format_seconds

    rows = list(scores)
    if not rows or not all(isinstance(r, ModelScore) for r in rows):
        raise CourseError("precision_table needs a non-empty list of ModelScore (from score_model).")
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise CourseError(f"precision_table needs distinct names, got {names}.")
    base = next((r for r in rows if r.name == (baseline or names[0])), None)
    if base is None:
        raise CourseError(f"baseline {baseline!r} is not one of {names}.")
    width = max(len(n) for n in names)
    lines = [f"{'model':{width}}  {'accuracy':>8}  {'vs ' + base.name:>{max(9, len(base.name) + 3)}}  "
             f"{'agrees':>7}  {'size':>9}  {'onnxruntime latency':>22}  outputs by"]
    delta_width = max(9, len(base.name) + 3)
    for r in rows:
        delta = "" if r is base else f"{100 * (r.accuracy - base.accuracy):+.2f} pt"
        agree = "" if r.agreement is None else f"{100 * r.agreement:.1f}%"
        timing = f"{format_seconds(r.latency.median_s)} ± {format_seconds(r.latency.iqr_s)}"
        lines.append(f"{r.name:{width}}  {100 * r.accuracy:7.2f}%  {delta:>{delta_width}}  {agree:>7}  "
                     f"{r.size_kib:6.1f} KiB  {timing:>22}  {r.evaluator}")
    return "\n".join(lines)
