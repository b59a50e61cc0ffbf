"""Checks for the exercises of 09_quantization_in_practice: read a Q/DQ file, write one, make FP16 safe."""

from __future__ import annotations

import functools
import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import amax_minmax, amax_percentile, qdq_summary
from ..errors import CourseError
from ..exercises import Wrong, exercise, expect_close, expect_equal, expect_set, expect_true, expect_type
from ..paths import MODELS_DIR_ENV, repo_root

# --- small models the unit tests judge against (built on demand, never at import) -----------------


def _context_file(name: str) -> Path:
    """Where the tests' context models live: models/exercises/, without creating anything at import."""
    root = Path(os.environ.get(MODELS_DIR_ENV) or repo_root() / "models")
    return root / "exercises" / name


def _run(path: Path, x: np.ndarray, reference: bool = False) -> np.ndarray:
    """Outputs of an ONNX file: onnxruntime, or ONNX's reference evaluator (every op in its declared type)."""
    import onnxruntime as ort

    if reference:
        from onnx.reference import ReferenceEvaluator

        try:
            evaluator = ReferenceEvaluator(str(path))
            with np.errstate(all="ignore"):  # overflows are what the check looks for
                return np.asarray(evaluator.run(None, {evaluator.input_names[0]: x.astype(np.float32)})[0])
        except Exception as error:
            why = str(error).splitlines()[0][:200]
            raise Wrong(f"ONNX's reference evaluator cannot run {path.name}: {why}") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0])
    except Exception as error:  # a broken file is the learner's to fix: say what onnxruntime said
        raise Wrong(f"onnxruntime cannot run {path.name}: {str(error).splitlines()[0][:200]}") from None


def _quiet_quantize(fp32: Path, out: Path, data: np.ndarray, percentile: float, exclude: list[str]) -> None:
    import contextlib
    import io
    import logging

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.done = False

        def get_next(self) -> dict | None:
            if self.done:
                return None
            self.done = True
            return {"image": data}

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "Gemm"], calibrate_method=CalibrationMethod.Percentile,
                            nodes_to_exclude=exclude,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                           "QuantizeBias": False, "CalibPercentile": percentile,
                                           "OpTypesToExcludeOutputQuantization": ["Conv", "Gemm"]})
    finally:
        logging.getLogger().setLevel(level)


def _export(module: Any, path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), torch.zeros(1, 1, 8, 8), str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["output"],
                          dynamic_axes={"image": {0: "batch"}, "output": {0: "batch"}})
    return path


def _tiny_net(seed: int) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    block = OrderedDict(conv=nn.Conv2d(1, 4, 3, padding=1), relu=nn.ReLU())
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(block), body=nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU()),
        pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(8, 10)))


# --- exercise 1 --------------------------------------------------------------------------------------

_EX1_SCALE = 0.02  # the Gemm input's scale in the tests' hand-built file: amax 2.54, 1.0 -> level 50


@functools.lru_cache(maxsize=1)
def _context_1() -> dict[str, Any]:
    """A hand-written Q/DQ file: x -> Q/DQ (scale 0.02) -> Gemm with per-channel INT8 weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.int8).reshape(3, 4) - 6
    initializers = [
        numpy_helper.from_array(np.array(_EX1_SCALE, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "x_zero"),
        numpy_helper.from_array(weights, "w_int8"),
        numpy_helper.from_array(np.array([0.01, 0.02, 0.03], np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(3, np.int8), "w_zero"),
        numpy_helper.from_array(np.zeros(3, np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zero"], ["w"], axis=0),
        helper.make_node("Gemm", ["x_dq", "w", "bias"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "ex1", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = _context_file("nb09_ex1_qdq.onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return {"model_path": path}


def _gemm_input(model_path: Any) -> Any:
    import onnx

    path = Path(model_path)
    graph = onnx.load(path).graph
    producers = {out: node for node in graph.node for out in node.output}
    gemm = next((node for node in graph.node if node.op_type == "Gemm"), None)
    if gemm is None:
        raise CourseError(f"{path.name} has no Gemm node.")
    dequantize = producers.get(gemm.input[0])
    if dequantize is None or dequantize.op_type != "DequantizeLinear":
        raise CourseError(f"the Gemm of {path.name} does not read a DequantizeLinear output.")
    upstream = producers.get(dequantize.input[0])
    source = upstream.input[0] if upstream is not None and upstream.op_type == "QuantizeLinear" else dequantize.input[0]
    return next(t for t in qdq_summary(path).tensors if t.tensor == source)


@exercise(
    "09.1",
    answers={"ex1_amax": "float, the clipping value of the Gemm's input activation",
             "ex1_level": "int, the INT8 level that 1.0 becomes in that tensor"},
    hint="cu.qdq_summary(path).tensors lists every quantized tensor with .amax and .scale; the Gemm node's first "
         "input comes from a DequantizeLinear whose input comes from a QuantizeLinear: that Q's input is the tensor.",
    hint2="amax = scale * 127 (symmetric INT8); a value x becomes q = round(x / scale), clamped to [-128, 127].",
    wrong=[
        ({"ex1_amax": _EX1_SCALE, "ex1_level": 50}, r"that is the scale"),
        ({"ex1_amax": _EX1_SCALE * 127, "ex1_level": 0}, r"q = round\(x / scale\)"),
        ({"ex1_amax": "2.54", "ex1_level": 50}, r"`ex1_amax` should be a number, but it is str"),
        ({"ex1_amax": _EX1_SCALE * 127, "ex1_level": 50.0}, r"`ex1_level` should be an int"),
    ],
    context=_context_1,
)
def _read_the_scales(ex1_amax: object, ex1_level: object, model_path: Any) -> str:
    entering = _gemm_input(model_path)
    scale = float(entering.scale[0])
    want_amax = float(entering.amax[0])
    expect_type("ex1_amax", ex1_amax, (int, float, np.floating), "a number")
    if abs(float(ex1_amax) - scale) <= 1e-6 + 1e-4 * scale:
        raise Wrong(f"`ex1_amax` = {float(ex1_amax):.6g}: that is the scale; the clipping value is scale * 127 "
                    f"= {want_amax:.6g}.")
    expect_close("ex1_amax", float(ex1_amax), want_amax, rtol=1e-4)
    if isinstance(ex1_level, bool) or not isinstance(ex1_level, int | np.integer):
        raise Wrong(f"`ex1_level` should be an int (an INT8 level), but it is {type(ex1_level).__name__} "
                    f"{ex1_level!r}.")
    want_level = int(np.clip(np.round(1.0 / scale), -128, 127))
    if int(ex1_level) != want_level and int(ex1_level) == int(np.round(1.0 / want_amax)):
        raise Wrong(f"`ex1_level` = {int(ex1_level)}: you divided by amax; q = round(x / scale) with scale = "
                    f"amax / 127 = {scale:.6g}.")
    expect_equal("ex1_level", int(ex1_level), want_level)
    return (f"{entering.tensor} is clipped at ±{want_amax:.3g}; one INT8 step is {scale:.3g}, so 1.0 is stored "
            f"as {want_level}.")


# --- exercise 2 --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _context_2() -> dict[str, Any]:
    """A tiny untrained CNN, its calibration activations, and three wrong INT8 files made from it."""
    from onnxruntime.quantization import qdq_loss_debug

    fp32 = _export(_tiny_net(0), _context_file("nb09_ex2_fp32.onnx"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    every = _context_file("nb09_ex2_every_tensor.onnx")
    qdq_loss_debug.modify_model_output_intermediate_tensors(str(fp32), str(every))

    class Reader:
        def __init__(self) -> None:
            self.done = False

        def get_next(self) -> dict | None:
            if self.done:
                return None
            self.done = True
            return {"image": x}

        def __iter__(self) -> Any:
            return iter(lambda: self.get_next(), None)

    activations = {k: np.concatenate(v) for k, v in qdq_loss_debug.collect_activations(str(every), Reader()).items()}
    first = _first_conv(fp32)
    _quiet_quantize(fp32, _context_file("nb09_ex2_all_int8.onnx"), x, 99.9, [])
    _quiet_quantize(fp32, _context_file("nb09_ex2_p9999.onnx"), x, 99.99, [first])
    return {"fp32_path": fp32, "activations": activations, "x_test": x, "y_test": y}


def _first_conv(fp32_path: Path) -> str:
    import onnx

    node = next((n for n in onnx.load(fp32_path).graph.node if n.op_type == "Conv"), None)
    if node is None:
        raise CourseError(f"{Path(fp32_path).name} has no Conv node.")
    return node.name


def _check_path(name: str, value: object) -> Path:
    expect_type(name, value, Path, "a pathlib.Path")
    path = Path(value)  # type: ignore[arg-type]
    expect_true(path.is_file(), f"there is no file at `{name}` ({path.name}); save the model first.")
    return path


@exercise(
    "09.2",
    answers={"ex2_path": "pathlib.Path of your INT8 file"},
    hint="ptq(path, CalibrationMethod.Percentile, nodes_to_exclude=[...], CalibPercentile=...) from step 3 does it "
         "in one call; the node names are those of the FP32 file.",
    hint2="nodes_to_exclude takes ONNX node names ('/stem/conv/Conv'); the percentile goes in extra_options as "
          "CalibPercentile; keep ActivationSymmetric, per_channel=True and QuantizeBias=False.",
    wrong=[
        ({"ex2_path": "digits_int8.onnx"}, r"should be a pathlib\.Path, but it is str"),
        ({"ex2_path": _context_file("nb09_ex2_fp32.onnx")}, r"no QuantizeLinear/DequantizeLinear nodes"),
        ({"ex2_path": _context_file("nb09_ex2_all_int8.onnx")}, r"is quantized: its weight comes from a Dequantize"),
        ({"ex2_path": _context_file("nb09_ex2_p9999.onnx")}, r"99\.99th percentile"),
    ],
    context=_context_2,
)
def _first_layer_in_fp32(ex2_path: object, fp32_path: Any, activations: dict, x_test: np.ndarray,
                         y_test: np.ndarray) -> str:
    import onnx

    path = _check_path("ex2_path", ex2_path)
    try:
        summary = qdq_summary(path)
    except CourseError as error:
        raise Wrong(f"{path.name} is not a Q/DQ model TensorRT can read: {error}") from None
    problems = summary.problems_for_tensorrt()
    expect_true(not problems, f"{path.name}: {problems[0] if problems else ''}")
    graph = onnx.load(path).graph
    producers = {out: node for node in graph.node for out in node.output}
    nodes = {node.name: node for node in graph.node}
    first = _first_conv(Path(fp32_path))
    expect_true(first in nodes, f"{path.name} has no node named {first!r}: quantize the FP32 file itself.")

    def from_dequantize(tensor: str) -> bool:
        node = producers.get(tensor)
        return node is not None and node.op_type == "DequantizeLinear"

    if from_dequantize(nodes[first].input[1]):
        raise Wrong(f"{first} is quantized: its weight comes from a DequantizeLinear. Exclude it "
                    f"(nodes_to_exclude=[{first!r}]).")
    layers = [n.name for n in onnx.load(fp32_path).graph.node if n.op_type in ("Conv", "Gemm") and n.name != first]
    float_layers = [name for name in layers if name not in nodes or not from_dequantize(nodes[name].input[1])]
    expect_true(not float_layers, f"{float_layers[:3]} should be INT8 but are not: exclude only {first}.")
    for tensor in summary.of_role("activation"):
        if tensor.tensor not in activations:
            continue
        values = activations[tensor.tensor]
        got, want = float(tensor.amax[0]), amax_percentile(values, 99.9)
        bin_width = amax_minmax(values) / 2048
        if abs(got - want) > bin_width * 1.01 + 1e-6 * want:
            if abs(got - amax_percentile(values, 99.99)) <= bin_width * 1.01:
                raise Wrong(f"{tensor.tensor} is clipped at {got:.4g}, the 99.99th percentile; the task asks for the "
                            f"99.9th ({want:.4g}).")
            raise Wrong(f"{tensor.tensor} is clipped at {got:.4g}; its 99.9th percentile on x_calib is {want:.4g} "
                        f"(calibrate on x_calib with CalibrationMethod.Percentile).")
    accuracy = float(np.mean(_run(path, x_test).argmax(axis=1) == y_test))
    reference = float(np.mean(_run(Path(fp32_path), x_test).argmax(axis=1) == y_test))
    expect_true(accuracy >= reference - 0.01, f"accuracy {accuracy:.2%} against FP32's {reference:.2%}: more than one "
                                              "point lost.")
    return f"accuracy {accuracy:.2%} (FP32 {reference:.2%}) with {first} in FP32 and 99.9th-percentile ranges."


# --- exercise 3 --------------------------------------------------------------------------------------


def _probabilities_net(stable: bool) -> Any:
    import torch
    from torch import nn

    class Probabilities(nn.Module):
        def forward(self, logits: Any) -> Any:
            e = torch.exp(logits - logits.amax(dim=1, keepdim=True) if stable else logits)
            return e / e.sum(dim=1, keepdim=True)

    net = _tiny_net(1)
    with torch.no_grad():
        net.fc.weight.mul_(200.0)  # logits in the tens: exp overflows FP16 as in the lesson's trained model
    return nn.Sequential(net, Probabilities())


@functools.lru_cache(maxsize=1)
def _context_3() -> dict[str, Any]:
    import onnx
    from onnxconverter_common import float16

    from ..calibration import fp16_overflows

    fp32 = _export(_probabilities_net(stable=False), _context_file("nb09_ex3_fp32.onnx"))
    stable = _export(_probabilities_net(stable=True), _context_file("nb09_ex3_stable_fp32.onnx"))
    x = np.random.default_rng(1).standard_normal((32, 1, 8, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source, name, block in ((fp32, "naive", False), (fp32, "blocked", True), (stable, "stable", False)):
            blocked = [found.node for found in fp16_overflows(source, {"image": x})] if block else []
            onnx.save(float16.convert_float_to_float16(onnx.load(source), keep_io_types=True, node_block_list=blocked),
                      _context_file(f"nb09_ex3_{name}_fp16.onnx"))
    return {"fp32_path": fp32, "x_test": x}


def _fp32_nodes(model: Any) -> set[str]:
    """Nodes (other than Cast) that write an FP32 tensor: the ones the file computes in FP32."""
    import onnx
    from onnx import TensorProto

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    return {node.name or node.output[0] for node in model.graph.node if node.op_type != "Cast"
            and any(types.get(out) == TensorProto.FLOAT for out in node.output)}


@exercise(
    "09.3",
    answers={"ex3_path": "pathlib.Path of your FP16 file",
             "ex3_fp32_nodes": "list[str], the nodes your file computes in FP32 ([] if none)"},
    hint="cu.fp16_overflows(softmax_path, {'image': x_test}) says which nodes see values beyond 65504; step 9 "
         "shows what to do with that list.",
    hint2="exp(x) exceeds 65504 for x > 11.09. A block list alone does not save this graph: onnxconverter-common "
          "1.16 leaves an FP16 Cast after a blocked node that feeds two nodes, and declares a graph output FP16 when a "
          "blocked node writes it. Subtracting the largest logit before exp (exp(x - max) <= 1) cannot overflow.",
    wrong=[
        ({"ex3_path": "probabilities_fp16.onnx", "ex3_fp32_nodes": []}, r"should be a pathlib\.Path"),
        ({"ex3_path": _context_file("nb09_ex3_naive_fp16.onnx"), "ex3_fp32_nodes": []}, r"NaN or inf"),
        ({"ex3_path": _context_file("nb09_ex3_fp32.onnx"), "ex3_fp32_nodes": []}, r"Conv .* FP32"),
        ({"ex3_path": _context_file("nb09_ex3_blocked_fp16.onnx"), "ex3_fp32_nodes": []},
         r"inputs and outputs are not all FP32"),
        ({"ex3_path": _context_file("nb09_ex3_stable_fp16.onnx"), "ex3_fp32_nodes": ["/1/Exp"]}, r"unexpected"),
    ],
    context=_context_3,
)
def _fp16_without_nan(ex3_path: object, ex3_fp32_nodes: object, fp32_path: Any, x_test: np.ndarray) -> str:
    import onnx
    from onnx import TensorProto

    path = _check_path("ex3_path", ex3_path)
    model = onnx.load(path)
    not_fp32 = {v.name: TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()
                for v in list(model.graph.input) + list(model.graph.output)
                if v.type.tensor_type.elem_type != TensorProto.FLOAT}
    if not_fp32:
        writers = [node.name or node.op_type for node in model.graph.node if set(node.output) & set(not_fp32)]
        raise Wrong(f"{path.name}'s inputs and outputs are not all FP32: {not_fp32} (written by {writers}). Convert "
                    "with keep_io_types=True; if you did, the converter itself changed them: onnxconverter-common "
                    "1.16 declares a graph output FP16 when a node of the block list writes it.")
    got = _run(path, x_test, reference=True)  # FP16 arithmetic as the file declares it (onnxruntime's CPU uses FP32)
    want = _run(Path(fp32_path), x_test)
    broken = int((~np.isfinite(got)).any(axis=1).sum()) if got.ndim == 2 else int((~np.isfinite(got)).sum())
    expect_true(broken == 0, f"{broken} of {len(got)} rows of {path.name} hold NaN or inf: something still "
                             "overflows in FP16.")
    expect_equal("the output shape", tuple(got.shape), tuple(want.shape))
    worst = float(np.max(np.abs(got.astype(np.float64) - want)))
    expect_true(worst <= 0.01, f"the probabilities differ from the FP32 file's by up to {worst:.3g} (allowed 0.01).")
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = initializers.get(node.input[1])
            if weight is not None and weight.data_type != TensorProto.FLOAT16:
                raise Wrong(f"Conv {node.name} still computes in FP32; only the nodes that overflow should stay FP32.")
    expect_type("ex3_fp32_nodes", ex3_fp32_nodes, (list, tuple, set), "a list of node names")
    expect_set("ex3_fp32_nodes", ex3_fp32_nodes, _fp32_nodes(model))
    return f"no NaN, probabilities within {worst:.1e} of FP32, every Conv in FP16."
