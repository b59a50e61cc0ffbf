"""Graph surgery with onnx-graphsurgeon: find subgraphs by pattern, cut them out, check them, replace them.

The notebooks teach onnx-graphsurgeon (`import onnx_graphsurgeon as gs`) itself: `gs.import_onnx`,
tensors, nodes, `graph.layer`, `cleanup`, `toposort`, `fold_constants`. This module holds the
pieces that notebook 07 applies to a whole transformer and that would otherwise be copied from
cell to cell:

- `find_layernorms(model)`: every LayerNorm an exporter decomposed into
  ReduceMean -> Sub -> Pow -> ReduceMean -> Add -> Sqrt -> Div (-> Mul -> Add), found by the shape
  of the graph, not by tensor names (names differ from one export to the next). Tolerates what
  exporters vary: `Mul(d, d)` for the square, `Reciprocal` + `Mul` or `Div(1, .)` + `Mul` for the
  division, a variance with its own mean (as `torch.var` exports), operands in either order, axes
  as an attribute (opset < 18) or as an input (opset >= 18), weights stored as initializers,
  `Constant` nodes or `Identity` copies. Not matched: an RMSNorm (no mean subtracted), and a
  variance computed without keeping its dims (a Reshape before the epsilon, as the dynamo exporter
  writes a hand-written `torch.var`).
- `find_attention_blocks(model)`: every self-attention block: a Softmax fed by a MatMul (or an
  Einsum) of two computed tensors (Q x K^T), followed by a product with V, with the Q/K/V
  projections (MatMul or Gemm with a constant weight, all reading one tensor; through reshapes,
  scaling and a normalization of Q and K as in cosine attention) and the output projection. The
  block runs from that one tensor to the output projection's result, as the seed cuts it out of
  Swin. When none is found, the error says for each Softmax which part is missing.
- `extract_subgraph(model, inputs, outputs)`: a standalone model between named tensors, with
  shapes and types (ONNX shape inference, else one onnxruntime run, as polygraphy's `auto` does).
  The cut itself is polygraphy's `extract_subgraph` (gs underneath).
- `intermediate_values(model, names)`: the values of inner tensors (polygraphy's
  `modify_outputs` marks them as outputs; onnxruntime runs the model once).
- `compare_subgraph(full, sub)`: run the cut-out model on the full model's values at its inputs
  and compare with the full model's values at its outputs.
- `replace_with_node(graph, inputs, outputs, op, attrs)`: one node instead of everything between
  `inputs` and `outputs` (`graph.layer` + `cleanup`), without cutting other consumers of the inputs.
Problems a learner can fix (a pattern that is absent, a tensor name that does not exist, a cut that
needs a tensor from outside) raise `CourseError` with what to do.
Taught in: 07_graphsurgeon_surgery (on the gs API that 06_graphsurgeon_building teaches).
"""

from __future__ import annotations

import difflib
import glob
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .errors import CourseError

__all__ = [
    "LayerNormMatch",
    "AttentionMatch",
    "find_layernorms",
    "find_attention_blocks",
    "extract_subgraph",
    "intermediate_values",
    "SubgraphComparison",
    "compare_subgraph",
    "replace_with_node",
]

ModelLike = Any  # onnx.ModelProto, gs.Graph, a path to an .onnx file, or an ONNXProgram

# Ops that only move data around: the data is input 0, the other inputs are parameters.
_LAYOUT_OPS = {"Reshape", "Transpose", "Gather", "Split", "Slice", "Squeeze", "Unsqueeze", "Flatten",
               "Cast", "Identity", "Expand", "Dropout"}
# Elementwise ops that scale or shift by a constant (1/sqrt(d), a bias).
_AFFINE_OPS = {"Mul", "Div", "Add", "Sub"}
# Ops between Q x K^T and the Softmax: scale, relative-position bias, masks, window reshapes.
_SCORE_OPS = _LAYOUT_OPS | _AFFINE_OPS | {"Where"}
# The products of two computed tensors in attention: Q x K^T and P x V (MatMul, or an Einsum).
_PRODUCT_OPS = {"MatMul", "Einsum"}
# Between the Softmax and the MatMul with V: casts, dropout, and the Flatten/Reshape pair that
# onnx.version_converter puts around a Softmax when it raises an opset-12 model past 13.
_PASS_THROUGH = {"Cast", "Identity", "Dropout", "Flatten", "Reshape"}


# --- reading models -----------------------------------------------------------------------------

def _as_graph(model: ModelLike) -> gs.Graph:
    """A gs.Graph for any model-like input (a gs.Graph is returned as it is)."""
    if isinstance(model, gs.Graph):
        return model
    proto = _as_model(model)
    try:
        return gs.import_onnx(proto)
    except Exception as error:  # gs raises its own exception types on malformed graphs
        raise CourseError(f"onnx-graphsurgeon could not import this model: {error}") from None


def _as_model(model: ModelLike) -> onnx.ModelProto:
    """An onnx.ModelProto for any model-like input."""
    from .onnx_io import load_model

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, gs.Graph):
        return gs.export_onnx(model)
    if isinstance(model, str | os.PathLike):
        return load_model(model)
    proto = getattr(model, "model_proto", None)  # torch.onnx.ONNXProgram
    if isinstance(proto, onnx.ModelProto):
        return proto
    raise CourseError(
        f"Expected an ONNX model (onnx.ModelProto, a gs.Graph, a path to an .onnx file or an "
        f"ONNXProgram), got {type(model).__name__}."
    )


def _tensor_names(model: onnx.ModelProto) -> set[str]:
    graph = model.graph
    names = {t.name for t in graph.input} | {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(name for name in node.output if name)
    return names


def _check_names(names: Any, known: set[str], what: str) -> list[str]:
    """`names` as a non-empty list of strings that all exist in `known`; CourseError otherwise."""
    if isinstance(names, str):
        names = [names]
    if isinstance(names, gs.Tensor):
        names = [names.name]
    if not isinstance(names, Sequence) or not names:
        raise CourseError(f"Give the {what} as a non-empty list of tensor names, got {names!r}.")
    result = []
    for name in names:
        name = name.name if isinstance(name, gs.Tensor) else name
        if not isinstance(name, str):
            raise CourseError(f"Tensor names are strings; one of the {what} is {type(name).__name__} {name!r}.")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise CourseError(
                f"There is no tensor named {name!r} in this model ({what}).{hint} Names differ from one "
                "export to the next: find tensors by pattern (cu.find_layernorms, cu.find_attention_blocks) "
                "or list them with graph.tensors()."
            )
        result.append(name)
    if len(set(result)) != len(result):
        raise CourseError(f"The {what} name a tensor twice: {result}.")
    return result


def _dynamic_ids(graph: gs.Graph) -> set[int]:
    """ids of the tensors whose values depend on the values of a graph input. Constants, and
    values computed only from constants and from input *shapes* (Shape, Size: the head size of
    an attention, a window mask made with the feature map's shape), are not dynamic."""
    start = [t for t in graph.inputs if isinstance(t, gs.Variable)]
    start += [t for t in graph.tensors().values()
              if isinstance(t, gs.Variable) and t.name and not t.inputs and t not in start]
    seen = {id(t) for t in start}
    stack = list(start)
    while stack:
        tensor = stack.pop()
        for node in tensor.outputs:
            if node.op in ("Shape", "Size"):
                continue
            for out in node.outputs:
                if id(out) not in seen:
                    seen.add(id(out))
                    stack.append(out)
    return seen


def _static_value(tensor: gs.Tensor | None, depth: int = 0) -> np.ndarray | None:
    """The value of a tensor stored in the model (an initializer, a Constant node, or an
    Identity / Cast of one of those); None if it is computed at run time."""
    if tensor is None or depth > 4:
        return None
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) != 1:
        return None
    node = tensor.inputs[0]
    if node.op == "Constant":
        value = node.attrs.get("value")
        if isinstance(value, gs.Constant):
            return np.asarray(value.values)
        for key in ("value_float", "value_floats", "value_int", "value_ints"):
            if key in node.attrs:
                return np.asarray(node.attrs[key])
        return None
    if node.op in ("Identity", "Cast") and node.inputs:
        value = _static_value(node.inputs[0], depth + 1)
        if value is not None and node.op == "Cast":
            to = node.attrs.get("to")
            try:
                value = value.astype(onnx.helper.tensor_dtype_to_np_dtype(int(to)))
            except (TypeError, ValueError, KeyError):
                return None
        return value
    return None


def _consumers(tensor: gs.Tensor, ignore_shape: bool = True) -> list[gs.Node]:
    """The distinct nodes that read `tensor` (Shape nodes, which read only its shape, left out)."""
    found: dict[int, gs.Node] = {}
    for node in tensor.outputs:
        if ignore_shape and node.op == "Shape":
            continue
        found.setdefault(id(node), node)
    return list(found.values())


def _only_consumer(tensor: gs.Tensor, op: str | set[str] | None = None) -> gs.Node | None:
    nodes = _consumers(tensor)
    if len(nodes) != 1:
        return None
    if op is not None and nodes[0].op not in ({op} if isinstance(op, str) else op):
        return None
    return nodes[0]


def _other_input(node: gs.Node, tensor: gs.Tensor) -> gs.Tensor | None:
    """For a two-input node that reads `tensor` once, the other input."""
    if len(node.inputs) != 2:
        return None
    first, second = node.inputs
    if first is tensor and second is not tensor:
        return second
    if second is tensor and first is not tensor:
        return first
    return None


def _in_order(graph: gs.Graph, nodes: Iterable[gs.Node]) -> tuple[gs.Node, ...]:
    position = {id(node): index for index, node in enumerate(graph.nodes)}
    return tuple(sorted(nodes, key=lambda node: position.get(id(node), len(position))))


# --- decomposed LayerNorm -------------------------------------------------------------------------

@dataclass
class LayerNormMatch:
    """One decomposed LayerNorm: its nodes, its input and output tensors and its parameters.

    Taught in: 07_graphsurgeon_surgery.
    """

    nodes: tuple[gs.Node, ...]
    input: gs.Tensor
    output: gs.Tensor
    axis: int  # negative: normalize over axes [axis, rank), as LayerNormalization's `axis`
    epsilon: float
    scale_tensor: gs.Tensor | None = None
    bias_tensor: gs.Tensor | None = None
    scale: np.ndarray | None = None
    bias: np.ndarray | None = None

    @property
    def input_name(self) -> str:
        return self.input.name

    @property
    def output_name(self) -> str:
        return self.output.name

    @property
    def op_types(self) -> list[str]:
        return [node.op for node in self.nodes]

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def replacement_inputs(self) -> list[gs.Tensor]:
        """[input, scale, bias] for one LayerNormalization node; ones / zeros when the export had
        no scale or no shift (LayerNormalization needs a scale)."""
        size = None
        for known in (self.scale, self.bias):
            if known is not None:
                size = known.shape
        if size is None and self.input.shape is not None:
            size = tuple(self.input.shape[self.axis:])
        if (self.scale_tensor is None or self.bias_tensor is None) and (
                size is None or not all(isinstance(d, int) for d in size)):
            raise CourseError(f"The LayerNorm at {self.output_name!r} has no scale or shift and the size of its "
                              "normalized axes is unknown; run onnx.shape_inference.infer_shapes first.")
        dtype = self.input.dtype if self.input.dtype is not None else np.float32
        scale = self.scale_tensor or gs.Constant(f"{self.output_name}_ones", np.ones(size, dtype=dtype))
        bias = self.bias_tensor or gs.Constant(f"{self.output_name}_zeros", np.zeros(size, dtype=dtype))
        return [self.input, scale, bias]

    def __str__(self) -> str:
        affine = ("scale+shift" if self.scale_tensor is not None and self.bias_tensor is not None
                  else "scale" if self.scale_tensor is not None else "shift" if self.bias_tensor is not None
                  else "no affine")
        return (f"LayerNorm {self.input_name} -> {self.output_name}: {len(self.nodes)} nodes "
                f"({' '.join(self.op_types)}), axis {self.axis}, epsilon {self.epsilon:g}, {affine}")


def _reduce_axes(node: gs.Node) -> tuple[int, ...] | None:
    if "axes" in node.attrs:
        return tuple(int(a) for a in node.attrs["axes"])
    if len(node.inputs) > 1:
        value = _static_value(node.inputs[1])
        if value is not None:
            return tuple(int(a) for a in np.ravel(value))
    return None  # no axes: ReduceMean over all axes, not a LayerNorm


def _trailing_axis(axes: tuple[int, ...] | None, tensor: gs.Tensor) -> int | None:
    """The LayerNormalization axis (negative) if `axes` are the last len(axes) axes, else None."""
    if not axes:
        return None
    rank = len(tensor.shape) if tensor.shape is not None else None
    normalized = []
    for axis in axes:
        if axis < 0:
            normalized.append(axis)
        elif rank is not None:
            normalized.append(axis - rank)
        else:
            return None  # a positive axis of a tensor of unknown rank: cannot tell if it is the last
    if sorted(normalized) != list(range(-len(axes), 0)):
        return None
    return -len(axes)


def _producer(tensor: gs.Tensor | None, op: str | set[str]) -> gs.Node | None:
    """The node that computes `tensor` if its op is `op` (one op or a set), else None."""
    if tensor is None or isinstance(tensor, gs.Constant) or len(tensor.inputs) != 1:
        return None
    node = tensor.inputs[0]
    return node if node.op in ({op} if isinstance(op, str) else op) else None


def _read_only_by(tensor: gs.Tensor, node: gs.Node) -> bool:
    """True when `node` is the one reader of `tensor` (Shape nodes aside)."""
    readers = _consumers(tensor)
    return len(readers) == 1 and readers[0] is node


def _divided_by(normalizer: gs.Node, centered: gs.Tensor) -> tuple[gs.Tensor, list[gs.Node]] | None:
    """For `normalizer` = Div(d, std), Mul(d, Reciprocal(std)) or Mul(d, Div(1, std)): (std, the
    nodes between std and the normalizer). None for anything else."""
    if normalizer.op == "Div" and len(normalizer.inputs) == 2 and normalizer.inputs[0] is centered \
            and normalizer.inputs[1] is not centered:
        std = normalizer.inputs[1]
        return (std, []) if _read_only_by(std, normalizer) else None
    if normalizer.op != "Mul":
        return None
    inverse = _other_input(normalizer, centered)
    if inverse is None or not _read_only_by(inverse, normalizer):
        return None
    node = _producer(inverse, {"Reciprocal", "Div"})
    if node is None:
        return None
    if node.op == "Div":  # 1 / std, as the legacy exporter writes torch.rsqrt's reciprocal
        one = _static_value(node.inputs[0]) if len(node.inputs) == 2 else None
        if one is None or one.size != 1 or float(np.ravel(one)[0]) != 1.0:
            return None
        std = node.inputs[1]
    else:
        std = node.inputs[0]
    return (std, [node]) if _read_only_by(std, node) else None


def _mean_over(node: gs.Node | None, x: gs.Tensor, axis: int) -> bool:
    """True when `node` is ReduceMean(x) over the trailing axes that `axis` names, keeping dims."""
    return (node is not None and node.op == "ReduceMean" and bool(node.inputs) and node.inputs[0] is x
            and int(node.attrs.get("keepdims", 1)) == 1 and _trailing_axis(_reduce_axes(node), x) == axis)


def _variance_of(std: gs.Tensor, x: gs.Tensor, axis: int,
                 centered: gs.Tensor) -> tuple[list[gs.Node], gs.Tensor, float] | None:
    """Walk up from std = Sqrt(ReduceMean(d^2) + eps): (its nodes in graph order, d, eps). d is
    either `centered` itself or, as torch.var writes it, its own Sub(x, ReduceMean(x))."""
    sqrt = _producer(std, "Sqrt")
    if sqrt is None or not sqrt.inputs:
        return None
    add_eps = _producer(sqrt.inputs[0], "Add")
    if add_eps is None or not _read_only_by(sqrt.inputs[0], sqrt) or len(add_eps.inputs) != 2:
        return None
    first, second = add_eps.inputs
    var, eps = (first, second) if _static_value(first) is None else (second, first)
    eps_value = _static_value(eps)
    if eps_value is None or eps_value.size != 1 or _static_value(var) is not None:
        return None
    mean_of_square = _producer(var, "ReduceMean")
    if mean_of_square is None or not _read_only_by(var, add_eps) or not mean_of_square.inputs:
        return None
    squared = mean_of_square.inputs[0]
    square = _producer(squared, {"Pow", "Mul"})
    if square is None or not _read_only_by(squared, mean_of_square) or len(square.inputs) != 2:
        return None
    d = square.inputs[0]
    if square.op == "Pow":
        exponent = _static_value(square.inputs[1])
        if exponent is None or exponent.size != 1 or float(np.ravel(exponent)[0]) != 2.0:
            return None
    elif square.inputs[1] is not d:
        return None
    # the mean of the square runs over the axes of the LayerNorm (d has the shape of x)
    if int(mean_of_square.attrs.get("keepdims", 1)) != 1 or _trailing_axis(_reduce_axes(mean_of_square), x) != axis:
        return None
    chain = [square, mean_of_square, add_eps, sqrt]
    if d is not centered:  # var = mean((x - mean(x))^2) with a mean and a Sub of its own
        own_sub = _producer(d, "Sub")
        if own_sub is None or not _read_only_by(d, square) or len(own_sub.inputs) != 2 or own_sub.inputs[0] is not x:
            return None
        own_mean = own_sub.inputs[1]
        if not _mean_over(_producer(own_mean, "ReduceMean"), x, axis) or not _read_only_by(own_mean, own_sub):
            return None
        chain = [own_mean.inputs[0], own_sub] + chain
    return chain, d, float(np.ravel(eps_value)[0])


def _match_layernorm(first: gs.Node, outputs: set[int]) -> LayerNormMatch | None:
    if first.op != "ReduceMean" or not first.inputs or int(first.attrs.get("keepdims", 1)) != 1:
        return None
    x = first.inputs[0]
    axes = _reduce_axes(first)
    axis = _trailing_axis(axes, x)
    if axis is None:
        return None
    mean = first.outputs[0]
    sub = _only_consumer(mean, "Sub")
    if sub is None or len(sub.inputs) != 2 or sub.inputs[0] is not x or sub.inputs[1] is not mean:
        return None
    centered = sub.outputs[0]
    readers = _consumers(centered)
    for normalizer in readers:
        divided = _divided_by(normalizer, centered)
        if divided is None:
            continue
        std, between = divided
        variance = _variance_of(std, x, axis, centered)
        if variance is None:
            continue
        chain, d, epsilon = variance
        # every reader of the centered tensor belongs to the pattern: the division, and the square
        # when the variance is computed from it (inner tensors read elsewhere could not be replaced)
        expected = {id(normalizer)} | ({id(chain[0])} if d is centered else set())
        if {id(n) for n in readers} == expected and len(readers) == len(expected):
            break
    else:
        return None
    nodes = [first, sub] + chain + between
    nodes.append(normalizer)
    out = normalizer.outputs[0]
    scale_tensor = bias_tensor = scale = bias = None
    mul = _only_consumer(out, "Mul") if id(out) not in outputs else None
    if mul is not None:
        candidate = _other_input(mul, out)
        value = _static_value(candidate)
        if value is not None:
            scale_tensor, scale = candidate, value
            nodes.append(mul)
            out = mul.outputs[0]
    add = _only_consumer(out, "Add") if id(out) not in outputs else None
    if add is not None:
        candidate = _other_input(add, out)
        value = _static_value(candidate)
        if value is not None:
            bias_tensor, bias = candidate, value
            nodes.append(add)
            out = add.outputs[0]
    inner = [t for node in nodes for t in node.outputs if t is not out]
    if any(id(t) in outputs for t in inner):
        return None  # an inner tensor is a model output: it cannot be replaced
    return LayerNormMatch(tuple(nodes), x, out, axis, epsilon, scale_tensor, bias_tensor, scale, bias)


def find_layernorms(model: ModelLike, *, required: bool = True) -> list[LayerNormMatch]:
    """Every decomposed LayerNorm in a model, in graph order, found by pattern.

    The pattern: `mean = ReduceMean(x)` over trailing axes; `d = Sub(x, mean)`; `Pow(d, 2)` (or
    `Mul(d, d)`); `ReduceMean` over the same axes; `Add(var, eps)`; `Sqrt`; `Div(d, std)` (or
    `Mul(d, Reciprocal(std))`, `Mul(d, Div(1, std))`); optionally `Mul` by a constant scale and
    `Add` of a constant shift. The variance may square its own `Sub(x, ReduceMean(x))`.
    Inner tensors must have no reader outside the pattern. Pass a gs.Graph to get matches you can
    edit in that graph; a ModelProto or a path is imported first. With `required=True` (default) a
    model without one raises CourseError (saying when the model already has LayerNormalization
    nodes, as exports at opset >= 17 do); `required=False` returns [].
    Taught in: 07_graphsurgeon_surgery.
    """
    graph = _as_graph(model)
    outputs = {id(t) for t in graph.outputs}
    found = []
    claimed: set[int] = set()
    for node in graph.nodes:
        if node.op != "ReduceMean" or id(node) in claimed:
            continue
        match = _match_layernorm(node, outputs)
        if match is not None:
            found.append(match)
            claimed.update(id(n) for n in match.nodes)
    if not found and required:
        ops = Counter(node.op for node in graph.nodes)
        if ops.get("LayerNormalization"):
            raise CourseError(
                f"No decomposed LayerNorm in this model: it already has {ops['LayerNormalization']} "
                "LayerNormalization node(s) (exports at opset >= 17 write LayerNorm as one node). "
                "Pass required=False to get an empty list instead."
            )
        raise CourseError(
            "No decomposed LayerNorm (ReduceMean -> Sub -> Pow -> ReduceMean -> Add -> Sqrt -> Div) in this "
            f"model; its ops are {dict(ops.most_common(8))}. Pass required=False to get an empty list instead."
        )
    return found


# --- self-attention blocks ----------------------------------------------------------------------

@dataclass
class AttentionMatch:
    """One self-attention block: from the tensor the Q/K/V projections read to the output
    projection's result, with the nodes in between.

    Taught in: 07_graphsurgeon_surgery.
    """

    input: gs.Tensor
    output: gs.Tensor
    nodes: tuple[gs.Node, ...]
    softmax: gs.Node
    scores_matmul: gs.Node  # Q x K^T
    values_matmul: gs.Node  # softmax(...) x V
    in_projections: tuple[gs.Node, ...]  # one packed QKV projection, or three
    out_projection: gs.Node
    external_inputs: tuple[gs.Tensor, ...] = field(default=())  # computed outside the block

    @property
    def input_name(self) -> str:
        return self.input.name

    @property
    def output_name(self) -> str:
        return self.output.name

    @property
    def extract_inputs(self) -> list[str]:
        """The inputs a standalone model of this block needs: the block input, then any tensor the
        block reads that is computed outside it (e.g. a window mask made from an earlier shape)."""
        return [self.input_name] + [t.name for t in self.external_inputs]

    @property
    def op_counts(self) -> dict[str, int]:
        return dict(Counter(node.op for node in self.nodes))

    def __str__(self) -> str:
        extra = f", also reads {len(self.external_inputs)} outside tensor(s)" if self.external_inputs else ""
        return (f"Attention {self.input_name} -> {self.output_name}: {len(self.nodes)} nodes, "
                f"{len(self.in_projections)} input projection(s){extra}")


def _walk_back_to_scores(tensor: gs.Tensor, dynamic: set[int], depth: int = 0) -> gs.Node | None:
    """From the Softmax input back to the MatMul of two computed tensors (Q x K^T)."""
    if depth > 10 or id(tensor) not in dynamic or len(tensor.inputs) != 1:
        return None
    node = tensor.inputs[0]
    if node.op in _PRODUCT_OPS:
        return node if len(node.inputs) == 2 and all(id(t) in dynamic for t in node.inputs) else None
    if node.op not in _SCORE_OPS:
        return None
    candidates = node.inputs[:1] if node.op in _LAYOUT_OPS else (
        node.inputs[1:] if node.op == "Where" else node.inputs)
    for candidate in candidates:
        found = _walk_back_to_scores(candidate, dynamic, depth + 1)
        if found is not None:
            return found
    return None


def _is_projection(node: gs.Node, data: gs.Tensor, dynamic: set[int]) -> bool:
    return (node.op in ("MatMul", "Gemm") and len(node.inputs) >= 2 and node.inputs[0] is data
            and id(node.inputs[1]) not in dynamic)


def _walk_back_to_projection(tensor: gs.Tensor, dynamic: set[int]) -> gs.Node | None:
    """From Q, K or V back through reshapes, head splits and scaling to the projection that made it."""
    for _ in range(16):
        if len(tensor.inputs) != 1:
            return None
        node = tensor.inputs[0]
        if node.op in ("MatMul", "Gemm"):
            data = node.inputs[0]
            return node if _is_projection(node, data, dynamic) else None
        if node.op in _LAYOUT_OPS:
            tensor = node.inputs[0]
        elif node.op in _AFFINE_OPS and len(node.inputs) == 2:
            moving = [t for t in node.inputs if id(t) in dynamic]
            if len(moving) == 2:  # x / f(x), e.g. F.normalize (cosine attention): follow x
                first, second = moving
                moving = [first] if _computed_from(second, first) else [second] if _computed_from(first, second) else []
            if len(moving) != 1:
                return None
            tensor = moving[0]
        else:
            return None
    return None


def _computed_from(tensor: gs.Tensor, source: gs.Tensor, depth: int = 8) -> bool:
    """True when `tensor` is computed from `source` within `depth` nodes (following every input)."""
    frontier = [tensor]
    for _ in range(depth):
        frontier = [t for node_tensor in frontier for node in node_tensor.inputs for t in node.inputs]
        if any(t is source for t in frontier):
            return True
        if not frontier or len(frontier) > 64:
            return False
    return False


def _walk_forward(tensor: gs.Tensor, ops: set[str]) -> gs.Tensor:
    """Follow single readers of `ops` (Cast, Identity, ...) and return the last tensor."""
    for _ in range(16):
        reader = _only_consumer(tensor, ops)
        if reader is None or reader.inputs[0] is not tensor:
            return tensor
        tensor = reader.outputs[0]
    return tensor


def _out_projection(tensor: gs.Tensor, dynamic: set[int]) -> tuple[gs.Node, gs.Tensor] | None:
    for _ in range(16):
        reader = _only_consumer(tensor)
        if reader is None or reader.inputs[0] is not tensor:
            return None
        if _is_projection(reader, tensor, dynamic):
            out = reader.outputs[0]
            bias = _only_consumer(out, "Add")
            if bias is not None and _other_input(bias, out) is not None and \
                    id(_other_input(bias, out)) not in dynamic:
                out = bias.outputs[0]
            return reader, out
        if reader.op not in _LAYOUT_OPS:
            return None
        tensor = reader.outputs[0]
    return None


def _descendants(tensor: gs.Tensor) -> set[int]:
    seen = {id(tensor)}
    stack = [tensor]
    while stack:
        for node in stack.pop().outputs:
            for out in node.outputs:
                if id(out) not in seen:
                    seen.add(id(out))
                    stack.append(out)
    return seen


def _block_nodes(start: gs.Tensor, end: gs.Tensor, dynamic: set[int]) -> tuple[list[gs.Node], list[gs.Tensor]]:
    """The nodes needed to compute `end` from `start` (and from constants), and the tensors
    computed elsewhere that they also read."""
    below = _descendants(start)
    nodes: dict[int, gs.Node] = {}
    outside: dict[int, gs.Tensor] = {}
    seen: set[int] = set()
    stack = [end]
    while stack:
        tensor = stack.pop()
        if tensor is start or id(tensor) in seen or isinstance(tensor, gs.Constant) or not tensor.name:
            continue
        seen.add(id(tensor))
        if id(tensor) in dynamic and (id(tensor) not in below or not tensor.inputs):
            outside[id(tensor)] = tensor
            continue
        if not tensor.inputs:
            continue
        node = tensor.inputs[0]
        if id(node) not in nodes:
            nodes[id(node)] = node
            stack.extend(node.inputs)
    return list(nodes.values()), list(outside.values())


def _match_attention(softmax: gs.Node, dynamic: set[int], graph: gs.Graph) -> AttentionMatch | str:
    """The attention block around `softmax`, or a short reason why it is not one."""
    if not softmax.inputs or id(softmax.inputs[0]) not in dynamic:
        return "its input does not depend on the model's inputs"
    scores = softmax.inputs[0]
    axis = int(softmax.attrs.get("axis", -1))
    rank = len(scores.shape) if scores.shape is not None else None
    if axis != -1 and rank is not None and axis != rank - 1:
        return f"it normalizes axis {axis}, not the last one"  # unknown rank: the products around it decide
    qk = _walk_back_to_scores(scores, dynamic)
    if qk is None:
        return "no MatMul of two computed tensors (Q x K^T) before it"
    probabilities = _walk_forward(softmax.outputs[0], _PASS_THROUGH)
    av = _only_consumer(probabilities, _PRODUCT_OPS)
    if av is None or len(av.inputs) != 2 or (av.op == "MatMul" and av.inputs[0] is not probabilities):
        return "its output does not feed one MatMul with V"
    v = _other_input(av, probabilities)
    if v is None or id(v) not in dynamic:
        return "its output does not feed one MatMul with V"
    projections = [_walk_back_to_projection(t, dynamic) for t in (qk.inputs[0], qk.inputs[1], v)]
    if any(p is None for p in projections):
        missing = [name for name, p in zip("QKV", projections, strict=True) if p is None]
        return f"{'/'.join(missing)} does not come from a MatMul/Gemm projection with a constant weight"
    sources = {id(p.inputs[0]) for p in projections}
    if len(sources) != 1:
        return "Q, K and V are projected from different tensors (cross-attention, not self-attention)"
    block_input = projections[0].inputs[0]
    found = _out_projection(av.outputs[0], dynamic)
    if found is None:
        return "no output projection (MatMul/Gemm with a constant weight) after the product with V"
    out_projection, block_output = found
    nodes, outside = _block_nodes(block_input, block_output, dynamic)
    unique_projections = list({id(p): p for p in projections}.values())
    return AttentionMatch(block_input, block_output, _in_order(graph, nodes), softmax, qk, av,
                          tuple(unique_projections), out_projection, tuple(outside))


def find_attention_blocks(model: ModelLike, *, required: bool = True) -> list[AttentionMatch]:
    """Every self-attention block in a model, in graph order, found by pattern.

    A block is anchored on a Softmax over the last axis whose input comes (through scaling,
    bias / mask additions and reshapes) from a MatMul or Einsum of two computed tensors (Q x K^T)
    and whose output feeds a MatMul or Einsum with V. Q, K and V are traced back (through head
    reshapes, Gather/Split, scaling, and `x / f(x)` normalizations) to MatMul/Gemm projections with
    constant weights that must all read one tensor, the block's input; the block ends after the
    output projection (and its bias Add). A Softmax classifier or a cross-attention has no such
    structure and is not reported. With `required=True` (default) a model without a block raises
    CourseError that says, per kind of Softmax, which part is missing; `required=False` returns [].
    Taught in: 07_graphsurgeon_surgery.
    """
    graph = _as_graph(model)
    dynamic = _dynamic_ids(graph)
    found, reasons = [], {}
    for node in graph.nodes:
        if node.op == "Softmax":
            match = _match_attention(node, dynamic, graph)
            if isinstance(match, AttentionMatch):
                found.append(match)
            else:
                reasons.setdefault(match, []).append(node.name or "Softmax")
    if not found and required:
        if not reasons:
            why = "it has no Softmax"
        else:
            count = sum(len(names) for names in reasons.values())
            listed = "; ".join(f"{len(names)} x {reason} (e.g. {names[0]!r})" for reason, names in reasons.items())
            why = (f"none of its {count} Softmax node(s) is the middle of one (Q x K^T -> Softmax -> x V, with "
                   f"Q, K, V projected from one tensor and an output projection): {listed}")
        raise CourseError(f"No self-attention block in this model: {why}. Pass required=False to get an "
                          "empty list instead.")
    return found


# --- values of inner tensors, extraction, comparison ----------------------------------------------

def _generated_feed(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    initializers = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(seed)
    feed = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if any(d is None for d in dims) or not tensor_type.HasField("shape"):
            raise CourseError(f"Input {value.name!r} has a dynamic or unknown shape {dims}; pass feed={{...}} "
                              "with an array for every input.")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feed[value.name] = rng.standard_normal(dims).astype(dtype)
        elif dtype == np.bool_:
            feed[value.name] = rng.integers(0, 2, dims).astype(bool)
        else:
            feed[value.name] = rng.integers(0, 4, dims).astype(dtype)
    return feed


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no optimizer notes in notebook outputs
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise CourseError(f"onnxruntime cannot load this model: {str(error).splitlines()[0][:400]}") from None


def check_feed(proto: onnx.ModelProto, feed: Any) -> set[str]:
    """The model's inputs (graph inputs that are not initializers); a CourseError unless `feed`
    is a dict with exactly those names. Plumbing: intermediate_values, calibration.fp16_overflows.
    """
    initializers = {t.name for t in proto.graph.initializer}
    inputs = {v.name for v in proto.graph.input if v.name not in initializers}
    if not isinstance(feed, dict) or set(feed) != inputs:
        raise CourseError(f"feed must be a dict with exactly the model's inputs {sorted(inputs)}, "
                          f"got {sorted(feed) if isinstance(feed, dict) else type(feed).__name__}.")
    return inputs


def intermediate_values(
    model: ModelLike, names: Sequence[str], feed: dict[str, np.ndarray] | None = None, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Run a model in onnxruntime and return the values of the tensors `names` (inner ones too).

    polygraphy's `modify_outputs` marks the tensors as model outputs (on a copy); inputs are
    `feed`, or standard-normal arrays of the inputs' static shapes (`seed`). Initializers are
    returned as stored. Taught in: 07_graphsurgeon_surgery.
    """
    from polygraphy.backend.onnx import modify_outputs
    from polygraphy.logger import G_LOGGER

    proto = _as_model(model)
    wanted = _check_names(list(names), _tensor_names(proto), "tensors to read")
    initializers = {t.name: t for t in proto.graph.initializer}
    if feed is None:
        feed = _generated_feed(proto, seed)
    inputs = check_feed(proto, feed)
    constants = {out: node for node in proto.graph.node if node.op_type == "Constant" for out in node.output}
    computed = [name for name in wanted if name not in initializers and name not in inputs and name not in constants]
    values: dict[str, np.ndarray] = {}
    if computed:
        # polygraphy reads *, ?, [ and ] in a name as a wildcard pattern: escape them.
        patterns = [glob.escape(name) if any(c in name for c in "*?[]") else name for name in computed]
        saved = [onnx.ValueInfoProto.FromString(v.SerializeToString()) for v in proto.graph.output]
        try:  # mark the outputs in place (a copy of a large model costs more than the run), then restore them
            with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
                session = _session(modify_outputs(proto, outputs=patterns, copy=False))
        finally:
            del proto.graph.output[:]
            proto.graph.output.extend(saved)
        try:
            results = session.run(computed, feed)
        except Exception as error:
            raise CourseError(f"onnxruntime failed to run the model: {str(error).splitlines()[0][:400]}") from None
        values.update(zip(computed, results, strict=True))
    for name in wanted:
        if name in initializers:
            values[name] = onnx.numpy_helper.to_array(initializers[name])
        elif name in constants:
            attribute = constants[name].attribute[0]  # a Constant node holds its value in its one attribute
            value = onnx.helper.get_attribute_value(attribute)
            is_tensor = isinstance(value, onnx.TensorProto)
            values[name] = onnx.numpy_helper.to_array(value) if is_tensor else np.asarray(value)
        elif name in inputs:
            values[name] = np.asarray(feed[name])
    return {name: values[name] for name in wanted}


def _type_and_shape(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[np.dtype | None, tuple | None]]:
    """dtype and static shape of each tensor from the model's value_info, else from ONNX shape
    inference (None where still unknown)."""
    initializers = {t.name: t for t in model.graph.initializer}

    def known(graph: onnx.GraphProto) -> dict[str, onnx.ValueInfoProto]:
        return {v.name: v for v in list(graph.value_info) + list(graph.input) + list(graph.output)}

    infos = known(model.graph)
    if not all(name in initializers or _static_info(infos.get(name)) for name in names):
        try:
            infos = known(onnx.shape_inference.infer_shapes(model, data_prop=True).graph)
        except Exception:  # shape inference gives up on some graphs; the caller falls back to a run
            pass
    result: dict[str, tuple[np.dtype | None, tuple | None]] = {}
    for name in names:
        if name in initializers:
            tensor = initializers[name]
            result[name] = (onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type), tuple(tensor.dims))
            continue
        info = infos.get(name)
        if info is None or not info.type.HasField("tensor_type"):
            result[name] = (None, None)
            continue
        tensor_type = info.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type) if tensor_type.elem_type else None
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
        shape = dims if tensor_type.HasField("shape") and all(d is not None for d in dims) else None
        result[name] = (dtype, shape)
    return result


def _static_info(info: onnx.ValueInfoProto | None) -> bool:
    """True when a value_info has an element type and a fully static shape."""
    if info is None or not info.type.HasField("tensor_type"):
        return False
    tensor_type = info.type.tensor_type
    return bool(tensor_type.elem_type) and tensor_type.HasField("shape") and \
        all(d.HasField("dim_value") for d in tensor_type.shape.dim)


def extract_subgraph(
    model: ModelLike, inputs: Sequence[str], outputs: Sequence[str], *,
    path: str | os.PathLike[str] | None = None, feed: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """Cut the part of a model between the tensors `inputs` and `outputs` out as a standalone model.

    Types and static shapes of the boundary tensors come from ONNX shape inference, or, where it
    cannot tell, from one onnxruntime run of the full model (`feed` or generated inputs), as
    polygraphy's `auto` does; the cut is polygraphy's `extract_subgraph` (gs: new graph inputs and
    outputs, then `cleanup`); inner shapes are inferred again. Raises CourseError for a tensor
    name that does not exist, an input the outputs do not depend on, or a cut that still needs a
    tensor computed outside it (that tensor is named: add it to `inputs`). Saves to `path` if given.
    Taught in: 07_graphsurgeon_surgery.
    """
    from polygraphy.backend.onnx import extract_subgraph as polygraphy_extract
    from polygraphy.common import TensorMetadata
    from polygraphy.logger import G_LOGGER

    proto = _as_model(model)
    known = _tensor_names(proto)
    input_names = _check_names(inputs, known, "subgraph inputs")
    output_names = _check_names(outputs, known, "subgraph outputs")
    both = sorted(set(input_names) & set(output_names))
    if both:
        raise CourseError(f"{both} is both an input and an output of the subgraph; pick tensors on either side.")
    meta = _type_and_shape(proto, input_names + output_names)
    unknown = [name for name, (dtype, shape) in meta.items() if dtype is None or shape is None]
    if unknown:
        for name, value in intermediate_values(proto, unknown, feed=feed).items():
            meta[name] = (value.dtype, tuple(value.shape))
    input_meta, output_meta = TensorMetadata(), TensorMetadata()
    for name in input_names:
        input_meta.add(name, meta[name][0], meta[name][1])
    for name in output_names:
        output_meta.add(name, meta[name][0], meta[name][1])
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        graph = polygraphy_extract(gs.import_onnx(proto), input_meta, output_meta)
    unused = [t.name for t in graph.inputs if not t.outputs]
    if unused:
        raise CourseError(f"The outputs {output_names} do not depend on the input(s) {unused}; an input must lie "
                          "upstream of the outputs.")
    missing = {}
    for tensor in graph.tensors().values():
        if isinstance(tensor, gs.Variable) and tensor.name and not tensor.inputs and tensor not in graph.inputs:
            missing[tensor.name] = [node.name or node.op for node in tensor.outputs]
    if missing:
        listed = "; ".join(f"{name!r} (read by {', '.join(readers[:2])})" for name, readers in missing.items())
        raise CourseError(
            f"This cut is not self-contained: it also reads {len(missing)} tensor(s) computed outside it: "
            f"{listed}. Add them to the inputs, choose an earlier input, or fold constants first "
            "(polygraphy surgeon sanitize --fold-constants)."
        )
    sub = gs.export_onnx(graph)
    try:
        sub = onnx.shape_inference.infer_shapes(sub)
        onnx.checker.check_model(sub)
    except Exception as error:
        raise CourseError(f"The extracted model is not valid ONNX: {str(error).splitlines()[0][:300]}") from None
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(sub, target)
    return sub


@dataclass
class SubgraphComparison:
    """How a cut-out model's outputs compare with the full model's values at the same tensors.

    Taught in: 07_graphsurgeon_surgery.
    """

    outputs: list[str]
    max_abs_errors: dict[str, float]
    max_rel_errors: dict[str, float]
    tolerances: dict[str, float]
    shapes: dict[str, tuple[int, ...]]
    nan: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.nan and all(self.max_abs_errors[n] <= self.tolerances[n] for n in self.outputs)

    @property
    def max_abs_error(self) -> float:
        return max(self.max_abs_errors.values())

    def __str__(self) -> str:
        verdict = "matches the full model" if self.ok else "DIFFERS from the full model"
        lines = [f"subgraph {verdict} at {len(self.outputs)} output(s)",
                 f"  {'tensor':<48} {'shape':<18} {'max abs err':>11} {'max rel err':>11}  ok"]
        for name in self.outputs:
            shown = name if len(name) <= 48 else "..." + name[-45:]
            ok = name not in self.nan and self.max_abs_errors[name] <= self.tolerances[name]
            verdict = "yes" if ok else "NO (NaN)" if name in self.nan else "NO"
            lines.append(f"  {shown:<48} {str(self.shapes[name]):<18} {self.max_abs_errors[name]:>11.2e} "
                         f"{self.max_rel_errors[name]:>11.2e}  {verdict}")
        return "\n".join(lines)

    __repr__ = __str__


def compare_subgraph(
    full_model: ModelLike, subgraph: ModelLike | list[ModelLike], feed: dict[str, np.ndarray] | None = None, *,
    rtol: float = 1e-4, atol: float = 1e-5, seed: int = 0,
) -> SubgraphComparison | list[SubgraphComparison]:
    """Check a cut-out model against the model it came from, at the tensors where it was cut.

    Runs the full model once (onnxruntime, the subgraph's inputs and outputs marked as extra
    outputs), feeds the subgraph the full model's values at its inputs, and compares its outputs
    with the full model's values: an output passes when max|sub - full| <= atol + rtol * max|full|.
    NaN anywhere fails. A list of subgraphs is checked with one run of the full model and gives a
    list of comparisons. Taught in: 07_graphsurgeon_surgery.
    """
    for label, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            raise CourseError(f"{label} must be a finite number >= 0, got {value!r}.")
    full = _as_model(full_model)
    many = isinstance(subgraph, list | tuple)
    subs = [_as_model(s) for s in (subgraph if many else [subgraph])]
    if not subs:
        raise CourseError("Give at least one subgraph to compare.")
    boundaries = []
    for sub in subs:
        sub_initializers = {t.name for t in sub.graph.initializer}
        sub_inputs = [v.name for v in sub.graph.input if v.name not in sub_initializers]
        sub_outputs = [v.name for v in sub.graph.output]
        if not sub_outputs:
            raise CourseError("The subgraph has no outputs.")
        boundaries.append((sub_inputs, sub_outputs))
    names = list(dict.fromkeys(name for ins, outs in boundaries for name in ins + outs))
    values = intermediate_values(full, names, feed=feed, seed=seed)
    results = [_compare_one(sub, ins, outs, values, rtol, atol)
               for sub, (ins, outs) in zip(subs, boundaries, strict=True)]
    return results if many else results[0]


def _compare_one(sub: onnx.ModelProto, sub_inputs: list[str], sub_outputs: list[str],
                 values: dict[str, np.ndarray], rtol: float, atol: float) -> SubgraphComparison:
    session = _session(sub)
    try:
        got = session.run(sub_outputs, {name: values[name] for name in sub_inputs})
    except Exception as error:
        raise CourseError(f"onnxruntime failed to run the subgraph: {str(error).splitlines()[0][:400]}") from None
    abs_errors, rel_errors, tolerances, shapes, nan = {}, {}, {}, {}, []
    for name, result in zip(sub_outputs, got, strict=True):
        reference = np.asarray(values[name], dtype=np.float64)
        result = np.asarray(result, dtype=np.float64)
        if result.shape != reference.shape:
            raise CourseError(f"The subgraph's output {name!r} has shape {result.shape}, the full model's tensor "
                              f"has {reference.shape}.")
        if np.isnan(result).any() or np.isnan(reference).any():
            nan.append(name)
        difference = np.abs(result - reference)
        compared = difference[~np.isnan(difference)]  # NaN is reported on its own, below
        magnitudes = np.abs(reference[~np.isnan(reference)])
        scale = float(magnitudes.max()) if magnitudes.size else 0.0
        abs_errors[name] = float(compared.max()) if compared.size else (float("nan") if difference.size else 0.0)
        rel_errors[name] = abs_errors[name] / scale if scale > 0 else abs_errors[name]
        tolerances[name] = atol + rtol * scale
        shapes[name] = tuple(reference.shape)
    return SubgraphComparison(sub_outputs, abs_errors, rel_errors, tolerances, shapes, nan)


# --- replacing a subgraph by one node -------------------------------------------------------------

def _resolve(graph: gs.Graph, items: Any, what: str, tensors: dict[str, gs.Tensor]) -> list[gs.Tensor]:
    if isinstance(items, str | gs.Tensor):
        items = [items]
    if not isinstance(items, Sequence) or not items:
        raise CourseError(f"Give the {what} as a non-empty list of tensors or tensor names, got {items!r}.")
    resolved = []
    for item in items:
        if isinstance(item, gs.Tensor):
            known = tensors.get(item.name)
            if known is not item:
                # A new Constant (e.g. the ones and zeros of LayerNormMatch.replacement_inputs) joins the
                # graph with the new node; a Variable must already be computed in this graph.
                if not isinstance(item, gs.Constant) or known is not None or what != "inputs":
                    where = "another tensor of this graph has that name" if known is not None else \
                        "it is not part of this graph"
                    raise CourseError(f"Tensor {item.name!r} ({what}): {where}.")
            resolved.append(item)
        elif isinstance(item, str):
            resolved.append(tensors[_check_names([item], set(tensors), what)[0]])
        else:
            raise CourseError(f"The {what} must be gs tensors or names, got {type(item).__name__}.")
    return resolved


def replace_with_node(
    graph: gs.Graph, inputs: Sequence[Any], outputs: Sequence[Any], op: str,
    attrs: dict[str, Any] | None = None, *, name: str | None = None, domain: str | None = None,
    cleanup: bool = True,
) -> gs.Node:
    """Replace everything that computes `outputs` from `inputs` by one node `op`, in place.

    gs's way, done safely: the outputs are detached from the nodes that produced them, one node
    (`graph.layer(op=..., inputs=..., outputs=..., attrs=...)`) now produces them, and `cleanup`
    removes the nodes nothing reads any more. The inputs keep their other readers (a residual
    connection stays), unlike clearing `tensor.outputs` of the inputs. Tensors may be given as gs
    tensors or names. `cleanup=False` leaves the dead nodes for one `graph.cleanup()` after many
    replacements. Returns the new node. Taught in: 07_graphsurgeon_surgery.
    """
    if not isinstance(graph, gs.Graph):
        raise CourseError(f"replace_with_node edits a gs.Graph in place (gs.import_onnx(model)), got "
                          f"{type(graph).__name__}.")
    if not isinstance(op, str) or not op:
        raise CourseError(f"op must be the new node's op type, a non-empty string, got {op!r}.")
    if attrs is not None and not isinstance(attrs, dict):
        raise CourseError(f"attrs must be a dict of attribute names to values, got {type(attrs).__name__}.")
    tensors = graph.tensors()
    new_inputs = _resolve(graph, inputs, "inputs", tensors)
    new_outputs = _resolve(graph, outputs, "outputs", tensors)
    if len({id(t) for t in new_outputs}) != len(new_outputs):
        raise CourseError(f"The outputs name a tensor twice: {[t.name for t in new_outputs]}; a node produces "
                          "each tensor once.")
    for tensor in new_outputs:
        if isinstance(tensor, gs.Constant) or not tensor.inputs:
            raise CourseError(f"{tensor.name!r} is not computed by a node (a graph input or a constant); "
                              "it cannot be an output of the replaced subgraph.")
        if any(tensor is t for t in graph.inputs):
            raise CourseError(f"{tensor.name!r} is a graph input; it cannot be an output of the replacement.")
    below: set[int] = set()
    for tensor in new_outputs:
        below |= _descendants(tensor)
    upstream = [t.name for t in new_inputs if id(t) in below]
    if upstream:
        raise CourseError(f"The input(s) {upstream} are computed from the outputs; the new node would form a cycle.")
    for tensor in new_outputs:
        tensor.inputs.clear()
    kwargs: dict[str, Any] = {"op": op, "attrs": dict(attrs or {})}
    if name is not None:
        kwargs["name"] = name
    if domain is not None:
        kwargs["domain"] = domain
    graph.layer(inputs=new_inputs, outputs=new_outputs, **kwargs)
    node = new_outputs[0].inputs[0]
    if cleanup:
        graph.cleanup().toposort()
    return node

