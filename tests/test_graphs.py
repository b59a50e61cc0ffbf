"""Tests for course_utils.graphs: pattern finders, extraction, comparison, replacement.

Known answers come from models built here: a two-block ViT-like model (5 LayerNorms, 2 attention
blocks), torch's MultiheadAttention and TransformerEncoderLayer, hand-built ONNX graphs of every
LayerNorm variant the finder claims to handle, and models where the patterns are absent or only
look similar (RMSNorm, a Softmax classifier, cross-attention). Exports are module-scoped (one
legacy export per model and opset; one dynamo export).
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import course_utils as cu
from course_utils import graphs

nn = torch.nn

DIM, HEADS, TOKENS = 16, 2, 5


# --- models ---------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, dim: int = DIM, heads: int = HEADS) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(DIM), Attention()
        self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, two pre-norm blocks, a final norm: 5 LayerNorms, 2 attention blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, DIM, 4, 4)
        self.blocks = nn.Sequential(Block(), Block())
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(1))


class MLPClassifier(nn.Module):
    """A Softmax, but over class scores: no attention."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(DIM, DIM), nn.Linear(DIM, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x))).softmax(-1)


class RMSNorm(nn.Module):
    """Looks like a LayerNorm (ReduceMean, Pow, Sqrt, Div) but has no mean subtraction."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class CrossAttention(nn.Module):
    """Q from x, K and V from a second input: not self-attention."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.kv, self.proj = nn.Linear(DIM, DIM), nn.Linear(DIM, 2 * DIM), nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        q = self.q(x)
        k, v = self.kv(memory).chunk(2, dim=-1)
        return self.proj((q @ k.transpose(-2, -1) * DIM ** -0.5).softmax(-1) @ v)


class EncoderLayer(nn.Module):
    """torch's TransformerEncoderLayer (is_causal passed as a bool: the legacy exporter needs it)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(DIM, HEADS, dim_feedforward=32, dropout=0.0, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, is_causal=False)


def _export(module: nn.Module, args: tuple, path, opset: int, names: list[str]) -> onnx.ModelProto:
    with warnings.catch_warnings(), cu.capture_native_output():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, path, dynamo=False, opset_version=opset, input_names=names)
    return onnx.load(path)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Legacy exports of every torch model here (a dict name -> ModelProto), made once."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("graphs")
    vit = TinyViT()
    with torch.no_grad():  # non-trivial LayerNorm weights, so that a wrong scale shows
        for module in vit.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    image = torch.randn(1, 3, 16, 16)
    tokens = torch.randn(1, TOKENS, DIM)
    made = {"vit": vit}
    for opset in (12, 17):
        made[f"vit{opset}"] = _export(vit, (image,), folder / f"vit{opset}.onnx", opset, ["image"])
    for opset in (14, 17):
        made[f"encoder{opset}"] = _export(EncoderLayer(), (tokens,), folder / f"enc{opset}.onnx", opset, ["x"])
    made["mlp"] = _export(MLPClassifier(), (tokens,), folder / "mlp.onnx", 12, ["x"])
    made["rms"] = _export(RMSNorm(), (tokens,), folder / "rms.onnx", 12, ["x"])
    made["cross"] = _export(CrossAttention(), (tokens, torch.randn(1, 7, DIM)), folder / "cross.onnx", 12,
                            ["x", "memory"])
    made["folder"] = folder
    return made


def _ln_graph(square: str = "pow", division: str = "div", affine: str = "both", opset: int = 17,
              axes: tuple[int, ...] = (-1,), eps: float = 1e-5, gamma_first: bool = False,
              exponent: float = 2.0, sub_reversed: bool = False, variance_of: str = "d") -> onnx.ModelProto:
    """A hand-built decomposed LayerNorm over x of shape (2, 3, 4) in one of its variants.

    `variance_of`: "d" squares x - mean; "own" squares x - ReduceMean(x) computed a second time
    (as torch.var exports); "z" squares z - ReduceMean(x) for a second input z (a lookalike)."""
    shape = [2, 3, 4]
    normalized = [shape[a] for a in axes]
    nodes, inits = [], []

    def reduce(name: str, source: str, out: str) -> None:
        if opset >= 18:
            nodes.append(helper.make_node("ReduceMean", [source, "axes"], [out], name=name))
        else:
            nodes.append(helper.make_node("ReduceMean", [source], [out], name=name, axes=list(axes)))

    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    reduce("mean", "x", "mean")
    nodes.append(helper.make_node("Sub", ["mean", "x"] if sub_reversed else ["x", "mean"], ["d"], name="sub"))
    squared = "d"
    if variance_of != "d":
        reduce("own_mean", "x", "own_mean")
        source = "x" if variance_of == "own" else "z"
        nodes.append(helper.make_node("Sub", [source, "own_mean"], ["d2"], name="own_sub"))
        squared = "d2"
    if square == "pow":
        inits.append(numpy_helper.from_array(np.array(exponent, np.float32), "two"))
        nodes.append(helper.make_node("Pow", [squared, "two"], ["sq"], name="pow"))
    else:
        nodes.append(helper.make_node("Mul", [squared, squared], ["sq"], name="square"))
    reduce("var", "sq", "var")
    inits.append(numpy_helper.from_array(np.array(eps, np.float32), "eps"))
    nodes.append(helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"))
    nodes.append(helper.make_node("Sqrt", ["ve"], ["std"], name="sqrt"))
    if division == "div":
        nodes.append(helper.make_node("Div", ["d", "std"], ["n"], name="div"))
    elif division == "one_over":  # torch.rsqrt in the legacy export: Div(1, sqrt) then Mul
        inits.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
        nodes.append(helper.make_node("Div", ["one", "std"], ["inv"], name="one_over"))
        nodes.append(helper.make_node("Mul", ["d", "inv"], ["n"], name="mul_inv"))
    elif division == "two_over":  # a lookalike: 2 / std
        inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "one"))
        nodes.append(helper.make_node("Div", ["one", "std"], ["inv"], name="one_over"))
        nodes.append(helper.make_node("Mul", ["d", "inv"], ["n"], name="mul_inv"))
    else:
        nodes.append(helper.make_node("Reciprocal", ["std"], ["inv"], name="reciprocal"))
        nodes.append(helper.make_node("Mul", ["inv", "d"], ["n"], name="mul_inv"))
    last = "n"
    if affine in ("both", "scale"):
        inits.append(numpy_helper.from_array(np.linspace(0.5, 2.0, int(np.prod(normalized)), dtype=np.float32)
                                             .reshape(normalized), "gamma"))
        inputs = ["gamma", last] if gamma_first else [last, "gamma"]
        nodes.append(helper.make_node("Mul", inputs, ["scaled"], name="scale"))
        last = "scaled"
    if affine in ("both", "shift"):
        inits.append(numpy_helper.from_array(np.full(normalized, 0.25, np.float32), "beta"))
        nodes.append(helper.make_node("Add", [last, "beta"], ["shifted"], name="shift"))
        last = "shifted"
    nodes.append(helper.make_node("Relu", [last], ["y"], name="relu"))
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
              for name in (["x", "z"] if variance_of == "z" else ["x"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)]
    graph = helper.make_graph(nodes, "ln", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _layernorm_numpy(x: np.ndarray, axis: int, eps: float, gamma, beta) -> np.ndarray:
    axes = tuple(range(axis, 0))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y * (1 if gamma is None else gamma) + (0 if beta is None else beta)


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _image(seed: int = 1) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype(np.float32)}


# --- find_layernorms --------------------------------------------------------------------------------

def test_vit_opset12_has_five_layernorms_with_the_modules_parameters(exports):
    matches = cu.find_layernorms(exports["vit12"])
    assert len(matches) == 5
    vit = exports["vit"]
    norms = [vit.blocks[0].norm1, vit.blocks[0].norm2, vit.blocks[1].norm1, vit.blocks[1].norm2, vit.norm]
    for match, module in zip(matches, norms, strict=True):
        assert match.op_types == ["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]
        assert match.axis == -1
        assert match.epsilon == pytest.approx(module.eps, rel=1e-6)
        np.testing.assert_allclose(match.scale, module.weight.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(match.bias, module.bias.detach().numpy(), rtol=1e-6)
    assert [m.epsilon for m in matches] == pytest.approx([1e-5, 1e-6, 1e-5, 1e-6, 1e-5], rel=1e-6)


def test_opset17_layernorm_is_one_node_and_the_error_says_so(exports):
    with pytest.raises(cu.CourseError, match="already has 5 LayerNormalization node"):
        cu.find_layernorms(exports["vit17"])
    assert cu.find_layernorms(exports["vit17"], required=False) == []


def test_no_layernorm_in_models_without_one(exports):
    for name in ("mlp", "rms", "cross"):
        assert cu.find_layernorms(exports[name], required=False) == [], name
    with pytest.raises(cu.CourseError, match="No decomposed LayerNorm .* its ops are"):
        cu.find_layernorms(exports["rms"])


@pytest.mark.parametrize("variant", [
    {}, {"square": "mul"}, {"division": "reciprocal"}, {"gamma_first": True}, {"opset": 18},
    {"axes": (-2, -1)}, {"axes": (1, 2)}, {"affine": "none"}, {"affine": "scale"}, {"affine": "shift"},
    {"eps": 1e-3}, {"division": "one_over"}, {"variance_of": "own"}, {"variance_of": "own", "square": "mul"},
])
def test_every_layernorm_variant_is_found_with_its_parameters(variant):
    model = _ln_graph(**variant)
    (match,) = cu.find_layernorms(model)
    axes = variant.get("axes", (-1,))
    assert match.axis == -len(axes)
    assert match.epsilon == pytest.approx(variant.get("eps", 1e-5), rel=1e-6)
    assert match.input_name == "x"
    affine = variant.get("affine", "both")
    expected_out = {"both": "shifted", "scale": "scaled", "shift": "shifted", "none": "n"}[affine]
    assert match.output_name == expected_out
    assert (match.scale is not None) == (affine in ("both", "scale"))
    assert (match.bias is not None) == (affine in ("both", "shift"))


@pytest.mark.parametrize("variant", [{"exponent": 3.0}, {"axes": (0,)}, {"axes": (-3, -1)}, {"sub_reversed": True},
                                     {"division": "two_over"}, {"variance_of": "z"}])
def test_lookalikes_are_not_layernorms(variant):
    assert cu.find_layernorms(_ln_graph(**variant), required=False) == []


def test_a_layernorm_whose_inner_tensor_is_also_read_elsewhere_is_not_matched():
    model = _ln_graph()
    model.graph.output.append(helper.make_tensor_value_info("std", TensorProto.FLOAT, [2, 3, 1]))
    assert cu.find_layernorms(model, required=False) == []
    model = _ln_graph()  # the centered tensor x - mean also feeds a node outside the pattern
    model.graph.node.append(helper.make_node("Abs", ["d"], ["d_abs"], name="outside_reader"))
    model.graph.output.append(helper.make_tensor_value_info("d_abs", TensorProto.FLOAT, [2, 3, 4]))
    assert cu.find_layernorms(model, required=False) == []


def test_replacement_inputs_make_ones_and_zeros_when_the_export_had_no_affine():
    graph = gs.import_onnx(onnx.shape_inference.infer_shapes(_ln_graph(affine="none")))
    (match,) = cu.find_layernorms(graph)
    x, scale, bias = match.replacement_inputs()
    assert x is match.input
    np.testing.assert_array_equal(scale.values, np.ones(4, np.float32))
    np.testing.assert_array_equal(bias.values, np.zeros(4, np.float32))
    # ... and replace_with_node takes those new constants: the one node computes the same as the nine
    cu.replace_with_node(graph, [x, scale, bias], [match.output], "LayerNormalization",
                         {"axis": match.axis, "epsilon": match.epsilon})
    assert [n.op for n in graph.nodes] == ["LayerNormalization", "Relu"]
    x_value = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    (got,) = _run(gs.export_onnx(graph), {"x": x_value})
    np.testing.assert_allclose(got, np.maximum(_layernorm_numpy(x_value, -1, 1e-5, None, None), 0), atol=1e-5)
    clash = gs.Constant("x", np.ones(4, np.float32))  # a new constant may not take an existing tensor's name
    with pytest.raises(cu.CourseError, match="another tensor of this graph has that name"):
        cu.replace_with_node(graph, [clash], [graph.outputs[0]], "Identity")


# --- find_attention_blocks ---------------------------------------------------------------------------

def test_vit_has_two_attention_blocks_from_norm1_to_the_projection(exports):
    lns = cu.find_layernorms(exports["vit12"])
    blocks = cu.find_attention_blocks(exports["vit12"])
    assert len(blocks) == 2
    for block, norm1 in zip(blocks, (lns[0], lns[2]), strict=True):
        assert block.input_name == norm1.output_name  # the qkv projection reads the norm's output
        # qkv Linear (MatMul, Add), head split (Reshape, Transpose, 3 Gather), Q x K^T (Transpose, MatMul), scale
        # (Mul), Softmax, x V (MatMul), merge heads (Transpose, Reshape), proj Linear (MatMul, Add)
        assert {op: n for op, n in block.op_counts.items() if op != "Constant"} == {
            "MatMul": 4, "Add": 2, "Reshape": 2, "Transpose": 3, "Gather": 3, "Mul": 1, "Softmax": 1}
        assert len(block.in_projections) == 1  # one packed qkv Linear
        assert block.external_inputs == ()
        assert block.output_name.endswith("attn/proj/Add_output_0")  # after the projection's bias
        assert block.output.outputs[0].op == "Add"  # ... which the residual Add reads
    assert cu.find_attention_blocks(exports["vit17"])[0].op_counts["MatMul"] == 4


def test_torch_attention_modules_are_found_at_opset_14_and_17(exports):
    for name in ("encoder14", "encoder17"):
        (block,) = cu.find_attention_blocks(exports[name])
        assert block.out_projection.op in ("Gemm", "MatMul")
        assert block.op_counts["Softmax"] == 1
    assert len(cu.find_layernorms(exports["encoder14"])) == 2


def test_a_dynamo_export_is_found_too(tmp_path):
    class PreNormAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm, self.attn = nn.LayerNorm(DIM), nn.MultiheadAttention(DIM, HEADS, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm(x)
            return x + self.attn(h, h, h, need_weights=False)[0]

    path = tmp_path / "dynamo.onnx"
    with warnings.catch_warnings(), cu.capture_export_messages():
        warnings.simplefilter("ignore")
        torch.onnx.export(PreNormAttention().eval(), (torch.randn(1, TOKENS, DIM),), path, dynamo=True,
                          external_data=False, verbose=False)
    model = onnx.load(path)
    (block,) = cu.find_attention_blocks(model)
    assert block.input.inputs[0].op in ("LayerNormalization", "Transpose")
    assert cu.find_layernorms(model, required=False) == []


def test_no_attention_in_a_softmax_classifier_or_a_cross_attention(exports):
    for name in ("mlp", "cross", "rms"):
        assert cu.find_attention_blocks(exports[name], required=False) == [], name
    with pytest.raises(cu.CourseError, match="none of its 1 Softmax node"):
        cu.find_attention_blocks(exports["mlp"])
    with pytest.raises(cu.CourseError, match="it has no Softmax"):
        cu.find_attention_blocks(exports["rms"])


# --- extract_subgraph + compare_subgraph + intermediate_values ---------------------------------------

def test_extracted_layernorm_runs_standalone_and_equals_numpy(exports):
    model = exports["vit12"]
    match = cu.find_layernorms(model)[1]
    sub = cu.extract_subgraph(model, [match.input_name], [match.output_name])
    assert [v.name for v in sub.graph.input] == [match.input_name]
    dims = [d.dim_value for d in sub.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 16, DIM]  # a 16x16 image in 4x4 patches: 16 tokens
    assert sorted(n.op_type for n in sub.graph.node if n.op_type != "Constant") == sorted(match.op_types)
    feed = _image()
    values = cu.intermediate_values(model, [match.input_name, match.output_name], feed=feed)
    (got,) = _run(sub, {match.input_name: values[match.input_name]})
    want = _layernorm_numpy(values[match.input_name], -1, match.epsilon, match.scale, match.bias)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(values[match.output_name], want, atol=1e-5)
    check = cu.compare_subgraph(model, sub, feed=feed)
    assert check.ok and check.max_abs_error < 1e-5


def test_extracted_attention_matches_the_full_model(exports, tmp_path):
    model = exports["vit12"]
    block = cu.find_attention_blocks(model)[1]
    path = tmp_path / "attn.onnx"
    sub = cu.extract_subgraph(model, block.extract_inputs, [block.output_name], path=path)
    assert path.is_file() and onnx.load(path).graph.output[0].name == block.output_name
    assert sum(n.op_type == "Softmax" for n in sub.graph.node) == 1
    check = cu.compare_subgraph(model, path, feed=_image(2))
    assert check.ok, check
    assert "matches the full model" in str(check)


def test_compare_reports_a_wrong_subgraph_by_the_size_of_the_error(exports):
    model = exports["vit12"]
    match = cu.find_layernorms(model)[0]
    sub = cu.extract_subgraph(model, [match.input_name], [match.output_name])
    beta = next(t for t in sub.graph.initializer if np.allclose(numpy_helper.to_array(t), match.bias))
    beta.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(beta) + 0.5, beta.name))
    check = cu.compare_subgraph(model, sub, feed=_image())
    assert not check.ok
    assert check.max_abs_error == pytest.approx(0.5, abs=1e-5)
    assert "DIFFERS" in str(check)


def test_compare_fails_on_nan(exports):
    model = exports["vit12"]
    match = cu.find_layernorms(model)[0]
    sub = cu.extract_subgraph(model, [match.input_name], [match.output_name])
    sqrt = next(n for n in sub.graph.node if n.op_type == "Sqrt")
    negate = helper.make_node("Neg", [sqrt.input[0]], ["negated_var"], name="negate")  # sqrt(-var): NaN
    sqrt.input[0] = "negated_var"
    sub.graph.node.insert(list(sub.graph.node).index(sqrt), negate)
    check = cu.compare_subgraph(model, sub, feed=_image())
    assert not check.ok and check.nan == [match.output_name]
    assert "NaN" in str(check)


def test_a_cut_that_needs_an_outside_tensor_names_it(exports):
    model = exports["vit12"]
    block = cu.find_attention_blocks(model)[0]
    qk_input = block.scores_matmul.inputs[0].name  # Q: the cut from Q alone lacks K
    with pytest.raises(cu.CourseError, match="not self-contained: it also reads"):
        cu.extract_subgraph(model, [qk_input], [block.output_name])


def test_extract_rejects_bad_names_and_backwards_cuts(exports):
    model = exports["vit12"]
    match = cu.find_layernorms(model)[0]
    with pytest.raises(cu.CourseError, match="no tensor named 'nope'"):
        cu.extract_subgraph(model, ["nope"], [match.output_name])
    with pytest.raises(cu.CourseError, match="Did you mean"):
        cu.extract_subgraph(model, [match.input_name + "x"], [match.output_name])
    with pytest.raises(cu.CourseError, match="non-empty list"):
        cu.extract_subgraph(model, [], [match.output_name])
    with pytest.raises(cu.CourseError, match="both an input and an output"):
        cu.extract_subgraph(model, [match.input_name], [match.input_name])
    with pytest.raises(cu.CourseError, match="do not depend on the input"):
        cu.extract_subgraph(model, [match.output_name], [match.input_name])
    with pytest.raises(cu.CourseError, match="Tensor names are strings"):
        cu.extract_subgraph(model, [3], [match.output_name])


def test_bad_files_give_a_course_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(256))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(_ln_graph().SerializeToString()[:40])
    for path in (junk, empty, truncated, tmp_path / "missing.onnx"):
        for call in (cu.find_layernorms, cu.find_attention_blocks):
            with pytest.raises(cu.CourseError):
                call(path)
        with pytest.raises(cu.CourseError):
            cu.extract_subgraph(path, ["x"], ["y"])
    with pytest.raises(cu.CourseError, match="Expected an ONNX model"):
        cu.find_layernorms(42)


def test_intermediate_values_checks_its_feed(exports):
    model = exports["vit12"]
    name = cu.find_layernorms(model)[0].output_name
    with pytest.raises(cu.CourseError, match="exactly the model's inputs"):
        cu.intermediate_values(model, [name], feed={"wrong": np.zeros(1, np.float32)})
    with pytest.raises(cu.CourseError, match="onnxruntime failed"):
        cu.intermediate_values(model, [name], feed={"image": np.zeros((1, 3, 8, 8, 1), np.float32)})
    dynamic = _ln_graph()
    dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(cu.CourseError, match="dynamic or unknown shape"):
        cu.intermediate_values(dynamic, ["d"])
    outputs_before = [o.SerializeToString() for o in model.graph.output]
    cu.intermediate_values(model, [name, cu.find_layernorms(model)[2].input_name], feed=_image())
    assert [o.SerializeToString() for o in model.graph.output] == outputs_before  # marked outputs are undone
    values = cu.intermediate_values(_ln_graph(), ["x", "gamma", "d"])
    np.testing.assert_allclose(values["d"], values["x"] - values["x"].mean(-1, keepdims=True), atol=1e-6)
    assert values["gamma"].shape == (4,)


# --- replace_with_node --------------------------------------------------------------------------------

def test_replacing_every_layernorm_keeps_the_model_and_its_residuals(exports):
    converted = onnx.version_converter.convert_version(exports["vit12"], 17)
    graph = gs.import_onnx(converted)
    before = len(graph.nodes)
    matches = cu.find_layernorms(graph)
    for i, match in enumerate(matches):
        cu.replace_with_node(graph, match.replacement_inputs(), [match.output], "LayerNormalization",
                             {"axis": match.axis, "epsilon": match.epsilon}, name=f"ln{i}", cleanup=False)
    graph.cleanup().toposort()
    replaced = gs.export_onnx(graph)
    onnx.checker.check_model(replaced)
    ops = [n.op_type for n in replaced.graph.node]
    assert ops.count("LayerNormalization") == 5 and ops.count("ReduceMean") == 1  # the token mean stays
    assert len(graph.nodes) < before - 5 * 8  # 9 nodes each became 1 (and their Constant nodes went)
    feed = _image(3)
    (want,) = _run(exports["vit12"], feed)
    (got,) = _run(replaced, feed)
    np.testing.assert_allclose(got, want, atol=1e-4)
    (reference,) = _run(exports["vit17"], feed)  # the opset-17 export of the same weights
    np.testing.assert_allclose(got, reference, atol=1e-4)


def test_replace_with_a_plugin_node_gives_one_node_with_its_attributes():
    graph = gs.import_onnx(_ln_graph())
    (match,) = cu.find_layernorms(graph)
    attrs = {"epsilon": match.epsilon, "plugin_version": "1", "plugin_namespace": "course"}
    node = cu.replace_with_node(graph, match.replacement_inputs(), [match.output], "CourseLayerNorm", attrs,
                                domain="course")
    assert [n.op for n in graph.nodes] == ["CourseLayerNorm", "Relu"]
    assert node.domain == "course" and node.attrs == attrs
    model = gs.export_onnx(graph)
    assert [(o.domain, o.version) for o in model.opset_import if o.domain == "course"] == [("course", 1)]


def test_replace_keeps_other_readers_of_the_inputs():
    # y = Relu(x) + Neg(Relu(x)) ... replace Neg by Abs: Relu's other reader (the Add) must stay.
    x = gs.Variable("x", np.float32, (3,))
    r, n, y = gs.Variable("r", np.float32, (3,)), gs.Variable("n", np.float32, (3,)), gs.Variable("y", np.float32, (3,))
    graph = gs.Graph(nodes=[gs.Node("Relu", inputs=[x], outputs=[r]), gs.Node("Neg", inputs=[r], outputs=[n]),
                            gs.Node("Add", inputs=[r, n], outputs=[y])], inputs=[x], outputs=[y], opset=17)
    cu.replace_with_node(graph, ["r"], ["n"], "Abs")
    assert [node.op for node in graph.nodes] == ["Relu", "Abs", "Add"]
    (got,) = _run(gs.export_onnx(graph), {"x": np.array([-1, 2, 3], np.float32)})
    np.testing.assert_array_equal(got, [0, 4, 6])


def test_replace_rejects_bad_arguments():
    graph = gs.import_onnx(_ln_graph())
    with pytest.raises(cu.CourseError, match="edits a gs.Graph"):
        cu.replace_with_node(_ln_graph(), ["x"], ["n"], "Identity")
    with pytest.raises(cu.CourseError, match="no tensor named 'q'"):
        cu.replace_with_node(graph, ["q"], ["n"], "Identity")
    with pytest.raises(cu.CourseError, match="not computed by a node"):
        cu.replace_with_node(graph, ["d"], ["gamma"], "Identity")
    with pytest.raises(cu.CourseError, match="would form a cycle"):
        cu.replace_with_node(graph, ["y"], ["d"], "Identity")
    with pytest.raises(cu.CourseError, match="non-empty string"):
        cu.replace_with_node(graph, ["x"], ["d"], "")
    other = gs.Variable("elsewhere", np.float32, (1,))
    with pytest.raises(cu.CourseError, match="not part of this graph"):
        cu.replace_with_node(graph, [other], ["d"], "Identity")


def test_compare_checks_several_subgraphs_with_one_run(exports):
    model = exports["vit12"]
    lns = cu.find_layernorms(model)
    subs = [cu.extract_subgraph(model, [m.input_name], [m.output_name]) for m in lns[:2]]
    checks = cu.compare_subgraph(model, subs, feed=_image())
    assert [c.ok for c in checks] == [True, True]
    assert [c.outputs for c in checks] == [[lns[0].output_name], [lns[1].output_name]]
    with pytest.raises(cu.CourseError, match="at least one subgraph"):
        cu.compare_subgraph(model, [])


def test_compare_rejects_subgraphs_that_do_not_belong_to_the_model(exports):
    with pytest.raises(cu.CourseError, match="Expected an ONNX model"):
        cu.compare_subgraph(exports["vit12"], 42)
    with pytest.raises(cu.CourseError, match="no tensor named 'x'"):
        cu.compare_subgraph(exports["vit12"], _ln_graph())  # its tensors are not the ViT's
    empty = _ln_graph()
    del empty.graph.output[:]
    with pytest.raises(cu.CourseError, match="has no outputs"):
        cu.compare_subgraph(_ln_graph(), empty)


def test_module_does_not_register_graph_functions():
    # Graph.register() is global; the helpers must leave gs.Graph as they found it.
    import inspect

    assert "register(" not in inspect.getsource(graphs)
    assert all(callable(getattr(cu, name)) for name in graphs.__all__)


# --- models nobody here wrote the pattern for: other op orders and other exports ----------------------

class VarianceLayerNorm(nn.Module):
    """A hand-written LayerNorm as many codebases write it: torch.var (its own mean) and rsqrt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return torch.relu((x - mean) * torch.rsqrt(var + 1e-6))


class TwoTensorLookalike(nn.Module):
    """x minus its mean, divided by the spread of another tensor (around z's mean, or around x's
    mean): neither is a LayerNorm of anything."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        spread = ((z - z.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True)
        around_x = ((z - x.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True)
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(spread + 1e-6) + \
            (x - x.mean(-1, keepdim=True)) / torch.sqrt(around_x + 1e-6)


class EinsumAttention(nn.Module):
    """Self-attention written with einsum (exported as Einsum nodes, not MatMul)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(DIM, 3 * DIM, bias=False), nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = (t.reshape(b, n, HEADS, c // HEADS) for t in self.qkv(x).chunk(3, dim=-1))
        attn = (torch.einsum("bqhd,bkhd->bhqk", q, k) * (c // HEADS) ** -0.5).softmax(-1)
        return self.proj(torch.einsum("bhqk,bkhd->bqhd", attn, v).reshape(b, n, c))


class CosineAttention(nn.Module):
    """Swin-V2-style attention: Q and K normalized (F.normalize: x / f(x)) before Q x K^T."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        attn = nn.functional.normalize(q, dim=-1) @ nn.functional.normalize(k, dim=-1).transpose(-2, -1)
        attn = (attn * self.logit_scale.exp()).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class GatedQuery(nn.Module):
    """Q is a projection of x gated by a projection of another tensor: neither factor is computed from
    the other, so the block is not self-attention."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.gate, self.kv, self.proj = (nn.Linear(DIM, DIM), nn.Linear(DIM, DIM), nn.Linear(DIM, 2 * DIM),
                                                 nn.Linear(DIM, DIM))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(x).chunk(2, dim=-1)
        q = self.q(x) * self.gate(memory)
        return self.proj((q @ k.transpose(-2, -1)).softmax(-1) @ v)


class NoOutputProjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v


@pytest.fixture(scope="module")
def other_exports(tmp_path_factory):
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("other")
    tokens, memory = torch.randn(1, TOKENS, DIM), torch.randn(1, TOKENS, DIM)
    made = {}
    for name, module, args, names in (
            ("variance", VarianceLayerNorm(), (tokens,), ["x"]),
            ("lookalike", TwoTensorLookalike(), (tokens, memory), ["x", "z"]),
            ("einsum", EinsumAttention(), (tokens,), ["x"]),
            ("cosine", CosineAttention(), (tokens,), ["x"]),
            ("gated", GatedQuery(), (tokens, memory), ["x", "memory"]),
            ("noproj", NoOutputProjection(), (tokens,), ["x"])):
        made[name] = _export(module, args, folder / f"{name}.onnx", 12, names)
        made[name + "_args"] = {n: a.numpy() for n, a in zip(names, args, strict=True)}
    return made


def test_a_torch_var_layernorm_is_found_and_replaced_exactly(other_exports):
    model = other_exports["variance"]
    (match,) = cu.find_layernorms(model)
    assert match.op_types.count("ReduceMean") == 3 and match.op_types.count("Sub") == 2  # the variance's own mean
    assert match.epsilon == pytest.approx(1e-6, rel=1e-6) and match.scale is None and match.bias is None
    assert match.output.outputs[0].op == "Relu"
    graph = gs.import_onnx(onnx.version_converter.convert_version(onnx.shape_inference.infer_shapes(model), 17))
    (match,) = cu.find_layernorms(graph)
    cu.replace_with_node(graph, match.replacement_inputs(), [match.output], "LayerNormalization",
                         {"axis": match.axis, "epsilon": match.epsilon})
    assert [n.op for n in graph.nodes] == ["LayerNormalization", "Relu"]
    feed = other_exports["variance_args"]
    (want,), (got,) = _run(model, feed), _run(gs.export_onnx(graph), feed)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_normalization_by_another_tensors_spread_is_not_a_layernorm(other_exports):
    assert cu.find_layernorms(other_exports["lookalike"], required=False) == []


def test_einsum_and_cosine_attention_are_found_and_extract_exactly(other_exports):
    for name, product in (("einsum", "Einsum"), ("cosine", "MatMul")):
        model = other_exports[name]
        (block,) = cu.find_attention_blocks(model)
        assert block.scores_matmul.op == product and block.values_matmul.op == product, name
        assert block.input_name == "x" and len(block.in_projections) == 1 and block.external_inputs == ()
        sub = cu.extract_subgraph(model, block.extract_inputs, [block.output_name])
        check = cu.compare_subgraph(model, sub, feed=other_exports[name + "_args"])
        assert check.ok and check.max_abs_error < 1e-5, name
    (cosine,) = cu.find_attention_blocks(other_exports["cosine"])
    assert cosine.op_counts.get("ReduceL2") == 2  # both normalizations are inside the block


def test_no_false_attention_and_the_error_says_which_part_is_missing(other_exports):
    assert cu.find_attention_blocks(other_exports["gated"], required=False) == []
    with pytest.raises(cu.CourseError, match=r"Q does not come from a MatMul/Gemm projection"):
        cu.find_attention_blocks(other_exports["gated"])
    with pytest.raises(cu.CourseError, match=r"1 x no output projection .* after the product with V"):
        cu.find_attention_blocks(other_exports["noproj"])


def test_cross_attention_error_names_the_reason(exports):
    with pytest.raises(cu.CourseError, match=r"projected from different tensors \(cross-attention"):
        cu.find_attention_blocks(exports["cross"])


def test_compare_tolerance_is_atol_plus_rtol_times_the_largest_value():
    # full: y = 100 * x; subgraph: y = 100.01 * x, so the error is 1e-4 of the largest |y| (100 at x = 1).
    def scale_model(factor: float) -> onnx.ModelProto:
        graph = helper.make_graph(
            [helper.make_node("Mul", ["x", "k"], ["y"])], "scale",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
            [numpy_helper.from_array(np.array(factor, np.float32), "k")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    feed = {"x": np.array([0.25, -0.5, 1.0], np.float32)}
    full, sub = scale_model(100.0), scale_model(100.01)
    check = cu.compare_subgraph(full, sub, feed=feed, rtol=2e-4, atol=0.0)
    assert check.max_abs_error == pytest.approx(0.01, rel=1e-3)
    assert check.max_rel_errors["y"] == pytest.approx(1e-4, rel=1e-3)
    assert check.tolerances["y"] == pytest.approx(2e-4 * 100, rel=1e-6) and check.ok
    assert not cu.compare_subgraph(full, sub, feed=feed, rtol=5e-5, atol=0.0).ok
    assert cu.compare_subgraph(full, sub, feed=feed, rtol=0.0, atol=0.011).ok
    assert not cu.compare_subgraph(full, sub, feed=feed, rtol=0.0, atol=0.009).ok
    for bad in ({"rtol": -1.0}, {"atol": float("nan")}, {"rtol": "1e-4"}):
        with pytest.raises(cu.CourseError, match="finite number >= 0"):
            cu.compare_subgraph(full, sub, feed=feed, **bad)


def test_replace_rejects_attrs_that_are_not_a_dict_and_repeated_outputs():
    graph = gs.import_onnx(_ln_graph())
    with pytest.raises(cu.CourseError, match="attrs must be a dict"):
        cu.replace_with_node(graph, ["x"], ["n"], "Identity", "epsilon=1e-5")
    with pytest.raises(cu.CourseError, match="name a tensor twice"):
        cu.replace_with_node(graph, ["x"], ["n", "n"], "Identity")
    assert [n.op for n in graph.nodes][:2] == ["ReduceMean", "Sub"]  # nothing was changed
