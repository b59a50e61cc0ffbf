"""Checks for the exercises of 03_what_export_does: BatchNorm after the activation, onnx-simplifier
with a fixed input shape, and a model rewritten so that its export needs no shape computation.

The judges export with the legacy exporter themselves (milliseconds for these small models) and
compare the learner's answer with what the exporter and onnx-simplifier really do in this
environment, so no expected node count is typed in here. Planted wrong answers that need torch
or files are built on first use (`nb02._Planted`).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..exercises import Wrong, exercise, expect_equal, expect_sequence, expect_type
from .nb02 import _dims, _onnx_file, _Planted

#: The input of exercise 2's model: 16 channels of a 4x4 feature map.
TOKENS_INPUT_SHAPE = (1, 16, 4, 4)


def _planted_dir() -> Path:
    from ..paths import build_dir

    return build_dir("exercise_bank", "nb03")


def _legacy_export(module: Any, example: Any, path: Path, *, dynamic: bool, opset: int = 12) -> Path:
    import torch

    axes = {"input0": {0: "batch"}, "output0": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["input0"],
                          output_names=["output0"], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)
    return path


def _ops(path: Path) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node]


def _is_module(name: str, value: object) -> None:
    from torch import nn

    expect_type(name, value, nn.Module, "a torch.nn.Module (an instance, not the class)")


# --------------------------------------------------------------------------- exercise 1
def _conv_relu_bn() -> Any:
    """The model of exercise 1 (the notebook's `conv_relu_bn`): BatchNorm after the ReLU."""
    import torch
    from torch import nn

    class ConvReluBN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
            self.act = nn.ReLU()
            self.bn = nn.BatchNorm2d(8)

        def forward(self, x):
            return self.bn(self.act(self.conv(x)))

    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(5)
        model = ConvReluBN().eval()
        # statistics like a trained network's, as in step 1 (fresh ones are all 0 / 1, and the
        # legacy exporter then shares identical tensors through Identity nodes)
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
    return model


@exercise(
    "03.1",
    answers={"ex1_ops": "list[str], the op types of the legacy export (default settings), in node order",
             "ex1_folded": "bool, True if the BatchNorm was folded into the Conv"},
    hint="Predict first: can y = BN(ReLU(conv(x))) put BN's scale and shift into the Conv's weights? "
         "Then export `conv_relu_bn` as in step 1 (dynamo=False, opset 12, default folding) and list "
         "its op types.",
    hint2="Folding needs BN right after the Conv: BN(conv(x)) is again a convolution. A ReLU in "
          "between clips negative values first, and BN's shift does not pass through max(0, .).",
    wrong=[
        ({"ex1_ops": ["Conv", "Relu"], "ex1_folded": True}, r"missing \['BatchNormalization'\]"),
        ({"ex1_ops": ["Conv", "BatchNormalization", "Relu"], "ex1_folded": False},
         r"`ex1_ops\[1\]` is 'BatchNormalization', expected 'Relu'"),
        ({"ex1_ops": ["Conv", "Relu", "BatchNormalization"], "ex1_folded": True},
         r"`ex1_folded` is True, expected False"),
        ({"ex1_ops": "Conv, Relu, BatchNormalization", "ex1_folded": False}, r"should be a list"),
    ],
    context=lambda: {"model": _conv_relu_bn()},
)
def _batchnorm_after_the_activation(ex1_ops: object, ex1_folded: object, model: Any) -> str:
    import torch

    with tempfile.TemporaryDirectory() as folder:
        ops = _ops(_legacy_export(model.eval(), torch.rand(1, 3, 8, 8), Path(folder) / "crb.onnx",
                                  dynamic=False))
    expect_sequence("ex1_ops", ex1_ops, ops)
    expect_type("ex1_folded", ex1_folded, bool, "True or False")
    expect_equal("ex1_folded", ex1_folded, "BatchNormalization" not in ops)
    return ("BatchNorm folds only into the layer right before it. TensorRT can still turn the "
            "remaining BatchNormalization into a per-channel scale and fuse it with its neighbours.")


# --------------------------------------------------------------------------- exercise 2
def _patch_tokens() -> Any:
    """The model of exercise 2 (the notebook's `patch_tokens`): B, C, H, W -> B, H*W, C."""
    from torch import nn

    class PatchTokens(nn.Module):
        def forward(self, x):
            return x.flatten(2).transpose(1, 2)

    return PatchTokens().eval()


def _node_counts(model: Any) -> tuple[dict[str, int], Any, Any]:
    """What the task asks, computed here: legacy export with a dynamic batch, then onnxsim twice."""
    import onnx
    import onnxsim
    import torch

    with tempfile.TemporaryDirectory() as folder:
        path = _legacy_export(model.eval(), torch.rand(*TOKENS_INPUT_SHAPE), Path(folder) / "tokens.onnx",
                              dynamic=True, opset=17)
        exported = onnx.load(str(path))
    dynamic, _ = onnxsim.simplify(exported)
    static, _ = onnxsim.simplify(exported, overwrite_input_shapes={"input0": list(TOKENS_INPUT_SHAPE)})
    counts = {"exported": len(exported.graph.node), "simplified": len(dynamic.graph.node),
              "simplified static": len(static.graph.node)}
    return counts, dynamic, static


def _static_export_counts(model: Any) -> dict[str, int]:
    """A planted wrong answer: the counts a learner gets when the export's batch is not dynamic."""
    import onnx
    import onnxsim
    import torch

    with tempfile.TemporaryDirectory() as folder:
        path = _legacy_export(model.eval(), torch.rand(*TOKENS_INPUT_SHAPE), Path(folder) / "tokens.onnx",
                              dynamic=False, opset=17)
        exported = onnx.load(str(path))
    simplified, _ = onnxsim.simplify(exported)
    return {"exported": len(exported.graph.node), "simplified": len(simplified.graph.node),
            "simplified static": len(simplified.graph.node)}


def _saved_simplified(name: str, static: bool) -> Path:
    import onnx

    _, dynamic_model, static_model = _node_counts(_patch_tokens())
    path = _planted_dir() / name
    onnx.save(static_model if static else dynamic_model, str(path))
    return path


@exercise(
    "03.2",
    answers={"ex2_nodes": "dict[str, int] with keys 'exported', 'simplified', 'simplified static'",
             "ex2_static_path": "pathlib.Path of the saved static-shape simplified model"},
    hint="Export `patch_tokens` as the seed's reshape model in step 2 (dynamo=False, opset 17, input "
         "'input0', output 'output0', dynamic_axes for the batch), then run onnxsim.simplify on the "
         "loaded model twice: as it is, and with overwrite_input_shapes={'input0': [1, 16, 4, 4]}.",
    hint2="Count len(model.graph.node) for the export and for each simplified model; save the static "
          "one with onnx.save and pass its path.",
    wrong=[
        ({"ex2_nodes": {"exported": 9, "simplified": 9}, "ex2_static_path": Path("x.onnx")},
         r"`ex2_nodes` has keys \['exported', 'simplified'\]"),
        ({"ex2_nodes": {"exported": 1, "simplified": 1, "simplified static": 1},
          "ex2_static_path": Path("x.onnx")}, r"`ex2_nodes\['exported'\]` is 1, expected \d+"),
        (_Planted(ex2_nodes=lambda: _static_export_counts(_patch_tokens()), ex2_static_path=lambda: Path("x.onnx")),
         r"same node count .* Was your export's batch dynamic\?"),
        (_Planted(ex2_nodes=lambda: _node_counts(_patch_tokens())[0],
                  ex2_static_path=lambda: _saved_simplified("tokens_dynamic.onnx", static=False)),
         r"input 'input0' .* has dims \['batch', 16, 4, 4\]; the static model must have \[1, 16, 4, 4\]"),
    ],
    context=lambda: {"model": _patch_tokens()},
)
def _onnxsim_with_a_fixed_input_shape(ex2_nodes: object, ex2_static_path: object, model: Any) -> str:
    from ..export import verify_onnx_export

    expect_type("ex2_nodes", ex2_nodes, dict, "a dict")
    counts, _, _ = _node_counts(model)
    if sorted(ex2_nodes) != sorted(counts):  # type: ignore[arg-type]
        raise Wrong(f"`ex2_nodes` has keys {sorted(ex2_nodes)}; it needs exactly {sorted(counts)}.")  # type: ignore[arg-type]
    expect_equal("ex2_nodes['exported']", ex2_nodes["exported"], counts["exported"])  # type: ignore[index]
    simplified, static = ex2_nodes.get("simplified"), ex2_nodes.get("simplified static")  # type: ignore[union-attr]
    if simplified == static and counts["simplified"] != counts["simplified static"]:
        raise Wrong(f"your two simplified models have the same node count ({simplified!r}), but with a dynamic "
                    "batch onnxsim must keep part of the shape computation, and only the fixed input shape lets it "
                    "fold everything. Was your export's batch dynamic? Export with dynamic_axes={'input0': {0: "
                    "'batch'}, 'output0': {0: 'batch'}}, then simplify that export twice.")
    for key, want in counts.items():
        expect_equal(f"ex2_nodes[{key!r}]", ex2_nodes[key], want)  # type: ignore[index]
    onnx_model = _onnx_file("ex2_static_path", ex2_static_path)
    path = Path(ex2_static_path)  # type: ignore[arg-type]
    dims = _dims(onnx_model.graph.input[0])
    if dims != list(TOKENS_INPUT_SHAPE):
        raise Wrong(f"input '{onnx_model.graph.input[0].name}' of {path.name} has dims {dims}; the static "
                    f"model must have {list(TOKENS_INPUT_SHAPE)} (overwrite_input_shapes).")
    result = verify_onnx_export(path, model, raise_on_mismatch=False)
    if not result.ok:
        raise Wrong(f"{path.name} differs from `patch_tokens` (max abs error {result.max_abs_error:.3g}).")
    return (f"{counts['exported']} -> {counts['simplified']} -> {counts['simplified static']} nodes: "
            "with the batch unknown onnxsim must keep the shape computation; a fixed input shape "
            "lets it fold everything into a constant (and the model then accepts batch 1 only).")


# --------------------------------------------------------------------------- exercise 3
def _reshape_model(seed: int, *, with_chain: bool = True) -> Any:
    """A model like the notebook's ReshapeModel (for the tests of exercise 3), fixed weights."""
    import torch
    from torch import nn

    class Reshaped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.act1 = nn.ReLU()
            self.avgpool = nn.AdaptiveAvgPool1d(1)
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            x = self.act1(self.bn1(self.conv1(x)))
            if with_chain:
                x = self.avgpool(torch.flatten(x, 2, 3))
                return self.head(torch.flatten(x, 1))
            return self.head(x.mean(dim=(2, 3)))

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Reshaped().eval()


@exercise(
    "03.3",
    answers={"ex3_model": "torch.nn.Module, ReshapeModel rewritten (same weights, same outputs)"},
    hint="The chain comes from torch.flatten(x, 2, 3): the exporter computes the new shape at run "
         "time. Which single operation averages over H and W without reshaping?",
    hint2="Subclass ReshapeModel, override forward, keep conv1 / bn1 / act1 / head, average with "
          "x.mean(dim=(2, 3)); then load_state_dict(reshape_model.state_dict()) and call .eval().",
    wrong=[
        (_Planted(ex3_model=lambda: _reshape_model(0, with_chain=True)), r"still has .*'Shape'"),
        (_Planted(ex3_model=lambda: _reshape_model(1, with_chain=False)), r"differs from `reference`"),
        ({"ex3_model": "ReshapeModel"}, r"should be a torch\.nn\.Module"),
    ],
    context=lambda: {"reference": _reshape_model(0, with_chain=True)},
)
def _no_shape_chain(ex3_model: object, reference: Any) -> str:
    import torch

    from ..export import verify_onnx_export

    _is_module("ex3_model", ex3_model)
    with tempfile.TemporaryDirectory() as folder:
        path = _legacy_export(ex3_model.eval(), torch.rand(1, 3, 5, 5), Path(folder) / "rewritten.onnx",  # type: ignore[union-attr]
                              dynamic=True)
        ops = _ops(path)
        if "Shape" in ops:
            raise Wrong(f"its legacy export with a dynamic batch still has {len(ops)} nodes, with "
                        f"{ops.count('Shape')} 'Shape': {', '.join(ops)}.")
        result = verify_onnx_export(path, reference, batch_sizes=(1, 3), raise_on_mismatch=False)
    if not result.ok:
        raise Wrong(f"the export of `ex3_model` differs from `reference` (max abs error "
                    f"{result.max_abs_error:.3g}): keep its weights (load_state_dict) and compute "
                    "the same average.")
    return (f"{len(ops)} nodes ({', '.join(ops)}): a mean over fixed axes needs no shape at run time, "
            "so there is no chain to simplify, whatever the batch.")
