"""Checks for the exercises of 02_pytorch_to_onnx: a bias, one self-contained file, two inputs.

Each judge reads the learner's ONNX file the way a deployment would: it loads it, runs it in
onnxruntime and compares it with PyTorch (`cu.verify_onnx_export`). The planted wrong answers
need real files; they are exported on first use (`_Planted`), so importing this bank stays
light (no torch until a test reads them).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import CourseError
from ..exercises import Wrong, exercise, expect_array, expect_sequence, expect_type

#: The seed's weights (notebook 02, step 2), the bias of exercise 1 and the seed's input.
SEED_WEIGHTS = ((1.0, 2.0, 3.0, 4.0), (2.0, 3.0, 4.0, 5.0), (3.0, 4.0, 5.0, 6.0))
EXERCISE1_BIAS = (1.0, 1.0, 1.0)
SEED_INPUT = (1.0, 2.0, 3.0, 4.0)


class _Planted(Mapping):
    """Planted wrong answers whose values are built when first read (files, torch modules)."""

    def __init__(self, **build: Callable[[], Any]) -> None:
        self._build = build
        self._made: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._made:
            self._made[name] = self._build[name]()
        return self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._build)

    def __len__(self) -> int:
        return len(self._build)


def _planted_dir() -> Path:
    from ..paths import build_dir

    return build_dir("exercise_bank", "nb02")


# --------------------------------------------------------------------------- shared checks
def _onnx_file(name: str, value: object) -> Any:
    """The learner's file as a ModelProto (graph only); Wrong with the loader's message if bad."""
    from ..onnx_io import load_model

    expect_type(name, value, Path, "a pathlib.Path (for example cu.model_path('ex.onnx'))")
    path = Path(value)
    if not path.is_file():
        raise Wrong(f"there is no file at `{name}` ({path.name}); run your export first.")
    try:
        return load_model(path, load_external_data=False)
    except CourseError as error:
        raise Wrong(f"`{name}` is not a readable ONNX file: {error}") from None


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _dims(value_info: Any) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


def _run(path: Path, feed: dict[str, Any]) -> list[Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _needs_dynamo(name: str, model: Any, path: Path) -> None:
    opset = _opset(model)
    if opset < 18:
        raise Wrong(f"{path.name} (`{name}`) is at opset {opset}: the legacy exporter made it. The task "
                    "asks for the dynamo exporter (dynamo=True, opset 18 or newer).")


# --------------------------------------------------------------------------- exercise 1
def _seed_linear(bias: tuple[float, ...] | None) -> Any:
    import torch
    from torch import nn

    model = nn.Linear(4, 3, bias=bias is not None)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(SEED_WEIGHTS))
        if bias is not None:
            model.bias.copy_(torch.tensor(bias))
    return model.eval()


def _legacy_file(name: str, module: Any, opset: int = 12) -> Path:
    import warnings

    import torch

    path = _planted_dir() / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 1, 1, 4),), str(path), input_names=["input0"],
                          output_names=["output0"], opset_version=opset, dynamo=False)
    return path


@exercise(
    "02.1",
    answers={"ex1_path": "pathlib.Path of your .onnx file",
             "ex1_ops": "list[str], the file's node op types in node order"},
    hint="Build the seed's Model with bias=True, copy [1, 1, 1] into model.linear.bias under "
         "torch.no_grad(), export it as in step 3 (dynamo=False, opset_version=12), then read "
         "[node.op_type for node in onnx.load(path).graph.node].",
    hint2="The input must be named 'input0' and the output 'output0'; the file must return "
          "[31, 41, 51] for [1, 2, 3, 4] in onnxruntime (the seed's 30, 40, 50 plus the bias).",
    wrong=[
        ({"ex1_path": "models/exercise_bias.onnx", "ex1_ops": ["MatMul", "Add"]}, r"should be a pathlib\.Path"),
        (_Planted(ex1_path=lambda: _legacy_file("no_bias.onnx", _seed_linear(None)),
                  ex1_ops=lambda: ["MatMul"]), r"\[30, 40, 50\] .* without its bias"),
        (_Planted(ex1_path=lambda: _legacy_file("bias.onnx", _seed_linear(EXERCISE1_BIAS)),
                  ex1_ops=lambda: ["Gemm"]), r"`ex1_ops\[0\]` is 'Gemm', expected 'MatMul'"),
        (_Planted(ex1_path=lambda: _legacy_file("bias13.onnx", _seed_linear(EXERCISE1_BIAS), opset=13),
                  ex1_ops=lambda: ["MatMul", "Add"]), r"opset 13; the task asks for .*opset_version=12"),
    ],
)
def _seed_model_with_a_bias(ex1_path: object, ex1_ops: object) -> str:
    import numpy as np

    model = _onnx_file("ex1_path", ex1_path)
    path = Path(ex1_path)  # type: ignore[arg-type]
    opset = _opset(model)
    if opset != 12:
        raise Wrong(f"{path.name} is at opset {opset}; the task asks for the legacy exporter "
                    "(dynamo=False) with opset_version=12, the seed's call.")
    expect_sequence("the file's input names", [i.name for i in model.graph.input], ["input0"])
    expect_sequence("the file's output names", [o.name for o in model.graph.output], ["output0"])
    weights = np.array(SEED_WEIGHTS, np.float32)
    x = np.array(SEED_INPUT, np.float32)
    want = weights @ x + np.array(EXERCISE1_BIAS, np.float32)  # [31, 41, 51]
    got = np.asarray(_run(path, {"input0": x.reshape(1, 1, 1, 4)})[0]).ravel()
    if got.shape == want.shape and np.allclose(got, weights @ x):
        raise Wrong(f"onnxruntime returns {[int(v) for v in got]} for [1, 2, 3, 4]: that is the seed's "
                    "model without its bias. Build it with bias=True and copy [1, 1, 1] into its bias.")
    expect_array("onnxruntime's output for [1, 2, 3, 4]", got, want)
    ops = [node.op_type for node in model.graph.node]
    expect_sequence("ex1_ops", ex1_ops, ops)
    if ops == ["MatMul", "Add"]:
        return ("ONNX Gemm multiplies 2-D matrices only, so for the 4-D input the exporter wrote a "
                "MatMul and a separate Add for the bias (a 2-D input would give one Gemm).")
    return ""


# --------------------------------------------------------------------------- exercise 2
def _classifier() -> Any:
    """The model of exercise 2 (the same as the notebook's `classifier`), fixed weights."""
    import torch
    from torch import nn

    with torch.random.fork_rng():
        torch.manual_seed(2)
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    return model.eval()


def _external_data_file(name: str, module: Any) -> Path:
    import onnx

    path = _legacy_file_2d(name, module)
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=256)
    return path


def _legacy_file_2d(name: str, module: Any, opset: int = 17) -> Path:
    import warnings

    import torch

    path = _planted_dir() / name
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 32),), str(path), input_names=["x"],
                          output_names=["logits"], opset_version=opset, dynamo=False)
    return path


@exercise(
    "02.2",
    answers={"ex2_path": "pathlib.Path of one .onnx file that works without any other file"},
    hint="Export `classifier` with dynamo=True as in step 7 and look at what was written next to "
         "the .onnx. Then make one self-contained file: export again with external_data=False, or "
         "save the returned ONNXProgram with program.save(path, external_data=False).",
    hint2="The check copies your file alone into an empty folder, loads it in onnxruntime and "
          "compares it with `classifier`: no tensor may live in a .onnx.data file.",
    wrong=[
        ({"ex2_path": "classifier.onnx"}, r"should be a pathlib\.Path"),
        (_Planted(ex2_path=lambda: _external_data_file("classifier_external.onnx", _classifier())),
         r"keeps \d tensor\(s\) .* in 'classifier_external\.onnx\.data': copied alone"),
        (_Planted(ex2_path=lambda: _legacy_file_2d("classifier_other.onnx", _other_classifier())),
         r"differs from `model`"),
        (_Planted(ex2_path=lambda: _legacy_file_2d("classifier_legacy.onnx", _classifier())),
         r"opset 17: the legacy exporter made it"),
    ],
    context=lambda: {"model": _classifier()},
)
def _one_self_contained_file(ex2_path: object, model: Any) -> str:
    from onnx.external_data_helper import uses_external_data

    from ..export import verify_onnx_export

    onnx_model = _onnx_file("ex2_path", ex2_path)
    path = Path(ex2_path)  # type: ignore[arg-type]
    external = [t for t in onnx_model.graph.initializer if uses_external_data(t)]
    if external:
        where = sorted({e.value for t in external for e in t.external_data if e.key == "location"})
        raise Wrong(f"{path.name} keeps {len(external)} tensor(s) (e.g. {external[0].name!r}) in "
                    f"{', '.join(repr(w) for w in where)}: copied alone it cannot load. Write the "
                    "weights inside the file (external_data=False).")
    with tempfile.TemporaryDirectory() as folder:
        alone = Path(folder) / path.name
        shutil.copy(path, alone)
        try:
            result = verify_onnx_export(alone, model, raise_on_mismatch=False)
        except CourseError as error:
            raise Wrong(f"copied alone, {path.name} does not run: {error}") from None
    if not result.ok:
        raise Wrong(f"{path.name} runs on its own but differs from `model` (max abs error "
                    f"{result.max_abs_error:.3g}): export `classifier` itself, in eval mode.")
    _needs_dynamo("ex2_path", onnx_model, path)
    return ("One file is easiest to ship. Above 2 GB protobuf forbids it; then the .onnx and its "
            ".onnx.data always travel together.")


def _other_classifier() -> Any:
    import torch
    from torch import nn

    with torch.random.fork_rng():
        torch.manual_seed(3)
        return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


# --------------------------------------------------------------------------- exercise 3
def _scaled_scores() -> Any:
    """The model of exercise 3 (the same as the notebook's `scaled`): two inputs, fixed weights."""
    import torch
    from torch import nn

    class ScaledScores(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, features, scale):
            return self.linear(features) * scale

    with torch.random.fork_rng():
        torch.manual_seed(4)
        return ScaledScores().eval()


def _two_input_file(name: str, axes: dict[str, dict[int, str]] | None, opset: int = 17) -> Path:
    import warnings

    import torch

    path = _planted_dir() / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_scaled_scores(), (torch.zeros(2, 4), torch.ones(3)), str(path),
                          input_names=["features", "scale"], output_names=["scores"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return path


@exercise(
    "02.3",
    answers={"ex3_path": "pathlib.Path of your .onnx file"},
    hint="dynamic_shapes mirrors the arguments of forward(features, scale): one entry per argument, "
         "{0: torch.export.Dim('batch')} for `features` and None for `scale`, which stays fixed.",
    hint2="Name the inputs 'features' and 'scale' and the output 'scores' (input_names=..., "
          "output_names=...), export with dynamo=True, and keep `scale` at shape [3].",
    wrong=[
        (_Planted(ex3_path=lambda: _two_input_file("scaled_static.onnx", None)),
         r"dimension 0 of 'features' is fixed at 2"),
        (_Planted(ex3_path=lambda: _two_input_file(
            "scaled_both.onnx", {"features": {0: "batch"}, "scale": {0: "batch"}, "scores": {0: "batch"}})),
         r"'scale' should keep its fixed shape \[3\], got \['batch'\]"),
        (_Planted(ex3_path=lambda: _two_input_file(
            "scaled_n.onnx", {"features": {0: "N"}, "scores": {0: "N"}})),
         r"dimension 0 of 'features' is named 'N'"),
        (_Planted(ex3_path=lambda: _two_input_file(
            "scaled_legacy.onnx", {"features": {0: "batch"}, "scores": {0: "batch"}})),
         r"opset 17: the legacy exporter made it"),
    ],
    context=lambda: {"model": _scaled_scores()},
)
def _two_inputs_one_dynamic(ex3_path: object, model: Any) -> str:
    from ..export import verify_onnx_export

    onnx_model = _onnx_file("ex3_path", ex3_path)
    path = Path(ex3_path)  # type: ignore[arg-type]
    inputs = {i.name: _dims(i) for i in onnx_model.graph.input}
    expect_sequence("the file's input names", list(inputs), ["features", "scale"])
    expect_sequence("the file's output names", [o.name for o in onnx_model.graph.output], ["scores"])
    batch = inputs["features"][0] if inputs["features"] else None
    if isinstance(batch, int):
        raise Wrong(f"dimension 0 of 'features' is fixed at {batch}: mark it dynamic "
                    "(dynamic_shapes={'features': {0: torch.export.Dim('batch')}, 'scale': None}).")
    if batch != "batch":
        raise Wrong(f"dimension 0 of 'features' is named {batch!r}; name it 'batch' "
                    "(torch.export.Dim('batch')) so a TensorRT profile can refer to it.")
    if inputs["scale"] != [3]:
        raise Wrong(f"'scale' should keep its fixed shape [3], got {inputs['scale']}: give it None "
                    "in dynamic_shapes.")
    scores = _dims(onnx_model.graph.output[0])
    if not scores or scores[0] != "batch":
        raise Wrong(f"the output 'scores' has dims {scores}; its dimension 0 should be 'batch' too.")
    _needs_dynamo("ex3_path", onnx_model, path)
    result = verify_onnx_export(path, model, batch_sizes=(1, 7), raise_on_mismatch=False)
    if not result.ok:
        raise Wrong(f"{path.name} differs from `model` (max abs error {result.max_abs_error:.3g}): "
                    "export `scaled` itself, with its inputs in forward's order.")
    return ("dynamic_shapes has the structure of forward's arguments; None marks an argument whose "
            "every dimension stays fixed.")
