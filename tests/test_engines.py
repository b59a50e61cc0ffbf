# ruff: noqa: E501 - the TensorRT log lines below are quoted as TensorRT writes them, one long line each
"""course_utils.engines: parse, build (real TensorRT-RTX builds on this CPU), the build-log parsers, and the
GPU runner's logic with a fake TensorRT (no machine here can run an engine).

TensorRT-RTX is installed wherever the course's tests run (`make setup`, CI). Where its import fails the
builder tests are skipped, except in CI or with COURSE_REQUIRE_TENSORRT_RTX=1, where they fail.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import course_utils as cu
from course_utils import engines

RTX = "tensorrt-rtx"


def rtx():
    try:
        return cu.import_tensorrt(RTX)
    except cu.MissingDependencyError as error:
        if os.environ.get("CI") or os.environ.get("COURSE_REQUIRE_TENSORRT_RTX"):
            pytest.fail(f"TensorRT-RTX must be importable here (CI installs it): {error}")
        pytest.skip(f"TensorRT-RTX is not importable: {error}")


def _save(nodes, path: Path, inputs, outputs, initializers=(), opsets=(("", 17),)) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    onnx.save(model, path)
    return path


def _relu_model(path: Path, batch: int | str = "batch") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    return _save([helper.make_node("Relu", ["x"], ["y"], name="relu0")], path, [x], [y])


def _conv_bn_relu(path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("input0", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4, 8, 8])
    inits = [onnx.numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in
             (("w", (4, 3, 3, 3)), ("b", (4,)), ("scale", (4,)), ("bias", (4,)), ("mean", (4,)))]
    inits.append(onnx.numpy_helper.from_array(np.ones(4, np.float32), "var"))
    nodes = [helper.make_node("Conv", ["input0", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"], name="bn"),
             helper.make_node("Relu", ["n"], ["output0"], name="relu")]
    return _save(nodes, path, [x], [y], inits)


PROFILE = {"x": ((1, 4), (4, 4), (8, 4))}
CBR_PROFILE = {"input0": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}


# --------------------------------------------------------------------------- the file is checked first
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"<html><body>404</body></html>", "not an ONNX model"),
        (b"\x89PNG\r\n\x1a\n" + b"0" * 40, "PNG image"),
        (b"ftrt" + b"\0" * 60, "TensorRT engine"),
    ],
)
def test_broken_files_never_parse_into_zero_layers(tmp_path, data, message) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(cu.CourseError, match=message):
        cu.parse_onnx(path)  # raises before TensorRT is even imported


def test_a_truncated_file_and_random_bytes_are_rejected(tmp_path) -> None:
    whole = _conv_bn_relu(tmp_path / "whole.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(cu.CourseError, match="truncated"):
        cu.parse_onnx(tmp_path / "cut.onnx")
    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(1).bytes(3000))
    with pytest.raises(cu.CourseError, match="not a readable ONNX protobuf|not a complete ONNX model"):
        cu.parse_onnx(tmp_path / "noise.onnx")


def test_an_empty_graph_and_a_missing_file_are_clear_errors(tmp_path) -> None:
    onnx.save(helper.make_model(helper.make_graph([], "empty", [], [])), tmp_path / "nodes.onnx")
    with pytest.raises(cu.CourseError, match="empty graph"):
        cu.parse_onnx(tmp_path / "nodes.onnx")
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        cu.parse_onnx(tmp_path / "absent.onnx")


def test_missing_external_data_is_caught_before_tensorrt(tmp_path) -> None:
    model = onnx.load(_conv_bn_relu(tmp_path / "cbr.onnx"))
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=0)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(cu.CourseError, match="ext.onnx.data"):
        cu.parse_onnx(tmp_path / "ext.onnx")


# --------------------------------------------------------------------------- parse with TensorRT-RTX
def test_parse_lists_layers_next_to_their_onnx_nodes(tmp_path) -> None:
    rtx()
    result = cu.parse_onnx(_conv_bn_relu(tmp_path / "cbr.onnx"), flavour=RTX)
    assert result.ok and result.flavour == RTX and result.num_layers == 3
    assert [(layer.type, layer.onnx_nodes) for layer in result.layers] == [
        ("CONVOLUTION", ("conv",)), ("SCALE", ("bn",)), ("ACTIVATION", ("relu",))]
    assert result.inputs == [cu.TensorDesc("input0", (-1, 3, 8, 8), "FLOAT")]
    assert result.layers[0].outputs[0].shape == (-1, 4, 8, 8)
    assert "parsed into 3 TensorRT layers" in str(result) and "CONVOLUTION" in result.table()


def test_every_parser_error_names_the_node_and_its_op(tmp_path) -> None:
    rtx()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="fine"),
             helper.make_node("customOp2", ["r"], ["y"], name="the_custom_node", domain="custom_domain")]
    path = _save(nodes, tmp_path / "custom.onnx", [x], [y], opsets=(("", 17), ("custom_domain", 1)))
    result = cu.parse_onnx(path, flavour=RTX)
    assert not result.ok and result.num_layers == 0 and result.layers == []
    issue = result.issues[0]
    assert (issue.node, issue.node_name, issue.op_type, issue.code) == (1, "the_custom_node", "customOp2",
                                                                        "INVALID_NODE")
    assert "Plugin not found" in issue.desc
    assert "node 1 'the_custom_node' (op customOp2): INVALID_NODE" in str(issue)
    assert "operator: customOp2" in result.errors[0]  # TensorRT's own text is kept too
    assert any(line.startswith("[ERROR]") for line in result.log)


def test_each_parse_keeps_its_own_log_although_tensorrt_keeps_the_first_logger(tmp_path) -> None:
    rtx()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    custom = _save([helper.make_node("customOp2", ["x"], ["y"], domain="custom_domain")], tmp_path / "c.onnx",
                   [x], [y], opsets=(("", 17), ("custom_domain", 1)))
    cu.parse_onnx(_relu_model(tmp_path / "r.onnx"), flavour=RTX)  # an earlier parse registers its logger first
    first, second = cu.parse_onnx(custom, flavour=RTX), cu.parse_onnx(custom, flavour=RTX)
    for result in (first, second):
        assert any("customOp2" in line for line in result.log), result.log
        assert not any("logger passed into createInferBuilder" in line for line in result.log)
    assert len(second.log) == len(first.log)  # its own messages only, not the first parse's too


def test_a_missing_plugin_library_is_a_clear_error(tmp_path) -> None:
    rtx()
    with pytest.raises(cu.CourseError, match="No plugin library"):
        cu.parse_onnx(_relu_model(tmp_path / "r.onnx"), flavour=RTX, plugin_libraries=[tmp_path / "libnone.so"])


def test_parse_and_build_print_nothing(tmp_path, capfd) -> None:
    rtx()
    path = _conv_bn_relu(tmp_path / "cbr.onnx")
    cu.parse_onnx(path, flavour=RTX)
    built = cu.build_engine(path, profiles=[CBR_PROFILE], flavour=RTX, timing_cache=tmp_path / "t.cache")
    with pytest.raises(cu.EngineBuildError):
        cu.build_engine(path, profiles=[CBR_PROFILE], flavour=RTX, workspace_bytes=1 << 10)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # TensorRT's messages are in the results, not in the cell output
    assert any(severity == "VERBOSE" for severity, _ in built.messages)


# --------------------------------------------------------------------------- profiles
INPUTS = [cu.TensorDesc("input0", (-1, 3, 32, 32), "FLOAT"), cu.TensorDesc("scale", (1,), "FLOAT")]


def test_a_valid_profile_comes_back_as_tuples() -> None:
    profile = {"input0": ([1, 3, 32, 32], (8, 3, 32, 32), (32, 3, 32, 32))}
    assert cu.check_profile(INPUTS, profile) == {"input0": ((1, 3, 32, 32), (8, 3, 32, 32), (32, 3, 32, 32))}
    same = ((4, 3, 32, 32),) * 3  # min = opt = max is a fixed-shape profile
    assert cu.check_profile(INPUTS, {"input0": same})["input0"] == same


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"input0": ((8, 3, 32, 32), (4, 3, 32, 32), (1, 3, 32, 32))}, r"dimension 0: need min <= opt <= max, got 8, 4, 1"),
        ({"input0": ((1, 3, 32, 32), (9, 3, 32, 32), (8, 3, 32, 32))}, r"got 1, 9, 8"),
        ({"input0": ((1, 3, 32), (4, 3, 32), (8, 3, 32))}, r"rank 3; the input .* has rank 4"),
        ({"input0": ((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 64, 32))}, r"changes dimension 2 to 64"),
        ({"input0": ((0, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}, r"dimension 0 must be >= 1"),
        ({"input0": ((1.0, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}, r"tuple of ints"),
        ({"input0": ((True, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))}, r"tuple of ints"),
        ({"input0": ((1, 3, 32, 32), (8, 3, 32, 32))}, r"three shapes"),
        ({"images": ((1, 3, 32, 32),) * 3}, r"\['images'\], which are not network inputs"),
        ({"scale": ((1,), (1,), (1,))}, r"\['input0'\] have dynamic dimensions"),
        ({}, r"is a dict"),
        ([("input0", 1)], r"is a dict"),
    ],
)
def test_a_wrong_profile_says_what_is_wrong(profile, message) -> None:
    with pytest.raises(cu.CourseError, match=message):
        cu.check_profile(INPUTS, profile)


# --------------------------------------------------------------------------- the build log, as data
RTX_LOG = "Layers:\n" + "Name: __mye72_0_myl0_0, LayerType: shape_call, Inputs: [], Constants: [], Outputs: [], " \
    "TacticName: , StreamId: 0, Metadata: \n" + """Name: node_conv2d_myl0_2, LayerType: correlation, Inputs: [ { Name: __mye115_4_myl0, Dimensions: [-1,3,32,32], Strides: [3072,1,96,3], StrideOrder: [3,0,2,1], Datatype: Float, Format: (NHWC) Channel major format }], Constants: [ { Name: __mye123dconst_myl0, Dimensions: [16,3,3,3], Strides: [27,1,9,3], StrideOrder: [3,0,2,1], Datatype: Float, Format: (NHWC) Channel major format }], Outputs: [ { Name: output0.1_5_myl0, Dimensions: [-1,16,32,32], Strides: [16384,1,512,16], StrideOrder: [3,0,2,1], Datatype: Float, Format: (NHWC) Channel major format }], TacticName: __myelin_CASK_STUB, StreamId: 0, Metadata: [ONNX Layer: node_conv2d]
Name: __myl_MulAddMoveRelu_myl0_3, LayerType: kgen, Inputs: [ { Name: a, Dimensions: [-1,16,32,32], Datatype: Float }, { Name: b, Dimensions: [16], Datatype: Half }], Constants: [], Outputs: [ { Name: output0, Dimensions: [-1,16,32,32], Datatype: Float }], TacticName: __myl_MulAddMoveRelu_0xaf, StreamId: 0, Metadata: [ONNX Layer: bn][ONNX Layer: node_conv2d][ONNX Layer: relu]

I/O Tensors:
 Name: input0, IOMode: Input, DataType: Float, Dimensions: [-1,3,32,32]"""

# TensorRT 10's detailed log (NVIDIA/TensorRT issue #4397): no Constants field, "Format/Datatype".
TRT10_LOG = ("Layers:\nName: __myl_GathGathMulAdd_myl0_0, LayerType: kgen, Inputs: [ { Name: pos_ids, Dimensions: [1,40], "
             "Format/Datatype: Int32 }, { Name: sent_ids, Dimensions: [1,40], Format/Datatype: Int32 }], Outputs: [ { Name: "
             "h, Dimensions: [1,40,768], Format/Datatype: Half }], TacticName: __myl_GathGathMulAdd_0x1, StreamId: 0, "
             "Metadata: [ONNX Layer: /emb/Gather]\x1e[ONNX Layer: /emb/Add]")

ONELINE_LOG = """Engine Layer Information:
Layer(Myelin): {ForeignNode[/encoder/Unsqueeze_3.../match_model/Squeeze]}, Tactic: 0x0000000000000000, ids (Int32[1,40]) -> score (Half[1])
Layer(Reformat): Reformatting CopyNode for Output Tensor 0, Tactic: 0x0000000000000000, a (Half[1]) -> score (Float[1])"""


def test_the_layer_table_of_a_detailed_build_log() -> None:
    layers = cu.parse_layer_table(["Original: 3 layers", RTX_LOG, "Engine generation completed"])
    assert [layer.name for layer in layers] == ["__mye72_0_myl0_0", "node_conv2d_myl0_2", "__myl_MulAddMoveRelu_myl0_3"]
    assert [layer.type for layer in layers] == ["shape_call", "correlation", "kgen"]
    assert layers[0].onnx_layers == () and layers[0].tactic == "" and layers[0].inputs == ()
    assert layers[1].onnx_layers == ("node_conv2d",) and layers[1].tactic == "__myelin_CASK_STUB"
    assert layers[1].inputs == (cu.TensorDesc("__mye115_4_myl0", (-1, 3, 32, 32), "Float"),)  # constants are not inputs
    assert layers[1].outputs == (cu.TensorDesc("output0.1_5_myl0", (-1, 16, 32, 32), "Float"),)
    assert layers[2].onnx_layers == ("bn", "node_conv2d", "relu")
    assert [t.dtype for t in layers[2].inputs] == ["Float", "Half"]


def test_tensorrt_10s_layer_table_and_the_one_line_form() -> None:
    (layer,) = cu.parse_layer_table([("VERBOSE", TRT10_LOG)])
    assert layer.onnx_layers == ("/emb/Gather", "/emb/Add") and layer.outputs[0].dtype == "Half"
    assert [t.name for t in layer.inputs] == ["pos_ids", "sent_ids"] and layer.outputs[0].shape == (1, 40, 768)
    brief = cu.parse_layer_table([ONELINE_LOG])
    assert [(layer.type, layer.tactic) for layer in brief] == [("Myelin", "0x0000000000000000"),
                                                              ("Reformat", "0x0000000000000000")]
    assert brief[0].name == "{ForeignNode[/encoder/Unsqueeze_3.../match_model/Squeeze]}"
    assert cu.parse_layer_table(["Layers:", "nothing here"]) == [] and cu.parse_layer_table([]) == []


def test_foreign_nodes_and_layer_counts_from_the_log() -> None:
    texts = ["Original: 3 layers", "After dead-layer removal: 3 layers", "After Myelin optimization: 1 layers",
             "ForeignNode {ForeignNode[conv...relu]} metadata: [ONNX Layer: conv][ONNX Layer: bn][ONNX Layer: relu]",
             "ForeignNode {ForeignNode[a...b]} metadata: "]
    assert engines._layer_counts(texts) == [("original", 3), ("dead-layer removal", 3), ("Myelin optimization", 1)]
    assert engines._foreign_nodes(texts) == [cu.ForeignNode("ForeignNode[conv...relu]", ("conv", "bn", "relu")),
                                             cu.ForeignNode("ForeignNode[a...b]", ())]


# --------------------------------------------------------------------------- build with TensorRT-RTX
def test_build_a_dynamic_batch_plan_on_this_cpu(tmp_path) -> None:
    rtx()
    built = cu.build_engine(_conv_bn_relu(tmp_path / "cbr.onnx"), profiles=[CBR_PROFILE], workspace_bytes=1 << 30,
                            plan_path=tmp_path / "out" / "cbr.plan", flavour=RTX)
    assert built.flavour == RTX and built.plan_bytes > 10_000 and built.build_s > 0
    assert (tmp_path / "out" / "cbr.plan").read_bytes() == built.plan
    assert built.network_layers == 3 and built.layer_counts[0] == ("original", 3)
    assert [node.onnx_layers for node in built.foreign_nodes] == [("conv", "bn", "relu")]
    fused = built.kernels_covering("bn")
    assert len(fused) == 1 and {"bn", "relu"} <= set(fused[0].onnx_layers)
    assert "ONNX nodes it computes" in built.table() and "MB" in str(built)


def test_a_parse_result_and_a_path_build_the_same_plan(tmp_path) -> None:
    rtx()
    path = _conv_bn_relu(tmp_path / "cbr.onnx")
    from_path = cu.build_engine(path, profiles=[CBR_PROFILE], flavour=RTX)
    from_parse = cu.build_engine(cu.parse_onnx(path, flavour=RTX), profiles=[CBR_PROFILE])
    assert from_path.plan_bytes == from_parse.plan_bytes
    assert [layer.type for layer in from_path.layers] == [layer.type for layer in from_parse.layers]


def test_a_hand_built_network_builds(tmp_path) -> None:
    trt = rtx()
    builder = trt.Builder(cu.collecting_logger(trt))
    network = builder.create_network(0)
    weight = np.array([[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]], np.float32)
    x = network.add_input("x", trt.float32, (1, 4))
    constant = network.add_constant(weight.shape, trt.Weights(weight))
    product = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, constant.get_output(0),
                                          trt.MatrixOperation.TRANSPOSE)
    network.mark_output(product.get_output(0))
    assert [layer.type for layer in cu.network_layers(network)] == ["CONSTANT", "MATRIX_MULTIPLY"]
    built = cu.build_engine(network, builder=builder)
    assert built.plan_bytes > 0 and built.network_layers == 2 and built.layers
    with pytest.raises(cu.CourseError, match="needs the Builder"):
        cu.build_engine(network)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"\['x'\] have dynamic dimensions: pass profiles="),
        ({"profiles": [{"x": ((8, 4), (4, 4), (1, 4))}]}, r"min <= opt <= max"),
        ({"profiles": [PROFILE], "workspace_bytes": 0}, r"positive int"),
        ({"profiles": [PROFILE], "workspace_bytes": 1.5e9}, r"positive int"),
        ({"profiles": [PROFILE], "optimization_level": 6}, r"from 0 to 5"),
        ({"profiles": [PROFILE], "optimization_level": -1}, r"from 0 to 5"),
        ({"profiles": [PROFILE], "targets": ["SM90"]}, r"among \['SM75'"),
        ({"profiles": [PROFILE], "targets": ["SM89", "8.9"]}, r"distinct"),
        ({"profiles": [PROFILE], "targets": []}, r"distinct"),
    ],
)
def test_bad_build_settings_are_clear_errors(tmp_path, kwargs, message) -> None:
    rtx()
    with pytest.raises(cu.CourseError, match=message):
        cu.build_engine(_relu_model(tmp_path / "r.onnx"), flavour=RTX, **kwargs)


def test_targets_and_the_real_errors_of_the_builder(tmp_path) -> None:
    rtx()
    path = _relu_model(tmp_path / "r.onnx")
    built = cu.build_engine(path, profiles=[PROFILE], targets=["SM86", "8.9", (12, 0)], flavour=RTX)
    assert built.notes == ["targets: SM86, SM89, SM120"]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])
    w = onnx.numpy_helper.from_array(np.ones((8, 3), np.float32), "w")
    gemm = _save([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], tmp_path / "mm.onnx", [x], [y], [w])
    with pytest.raises(cu.EngineBuildError, match="Turing \\(SM75\\): FP32 GEMM is not supported") as failed:
        cu.build_engine(gemm, targets=["SM75"], flavour=RTX)
    assert any(severity == "ERROR" for severity, _ in failed.value.log)


def test_the_timing_cache_is_a_stated_no_op_in_tensorrt_rtx(tmp_path) -> None:
    rtx()
    built = cu.build_engine(_relu_model(tmp_path / "r.onnx"), profiles=[PROFILE], flavour=RTX,
                            timing_cache=tmp_path / "timing.cache")
    assert any("no-op in TensorRT-RTX" in note for note in built.notes)
    assert not (tmp_path / "timing.cache").exists()


def test_configure_gets_the_builder_config(tmp_path) -> None:
    trt = rtx()
    seen = []
    cu.build_engine(_relu_model(tmp_path / "r.onnx"), profiles=[PROFILE], flavour=RTX, optimization_level=1,
                    configure=lambda config: seen.append((config.builder_optimization_level,
                                                          config.profiling_verbosity)))
    assert seen == [(1, trt.ProfilingVerbosity.DETAILED)]


def test_a_failed_parse_is_not_built(tmp_path) -> None:
    rtx()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    path = _save([helper.make_node("customOp2", ["x"], ["y"], domain="custom_domain")], tmp_path / "c.onnx", [x],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                 opsets=(("", 17), ("custom_domain", 1)))
    with pytest.raises(cu.CourseError, match="(?s)did not parse.*Plugin not found"):
        cu.build_engine(path, flavour=RTX)


# --------------------------------------------------------------------------- the runner, with a fake TensorRT
class _Enum(SimpleNamespace):
    pass


class FakeTensorRT:
    """Just enough of TensorRT's runtime API to test EngineRunner's logic on the CPU."""

    __name__ = "tensorrt"
    TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    LayerInformationFormat = SimpleNamespace(JSON="JSON")

    class ILogger:
        Severity = None

        def __init__(self) -> None:
            pass

    class IProfiler:
        def __init__(self) -> None:
            pass

    def __init__(self, deserializes: bool = True) -> None:
        self.deserializes = deserializes

    def Runtime(self, logger):  # noqa: N802 - TensorRT's name
        fake = self

        class Runtime:
            def get_plugin_registry(self):
                return SimpleNamespace(load_library=lambda path: object())

            def deserialize_cuda_engine(self, plan):
                if not fake.deserializes:
                    logger.messages.append(("ERROR", "IRuntime::deserializeCudaEngine: the plan is from another GPU"))
                    return None
                return FakeEngine()

        return Runtime()


class FakeEngine:
    num_io_tensors = 2
    num_layers = 1
    num_optimization_profiles = 2
    shape_inputs: tuple[str, ...] = ()
    profile_shape = [(1, 4), (4, 4), (8, 4)]
    contexts_fail = False

    def get_tensor_name(self, index):
        return ["input0", "output0"][index]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "input0" else "OUTPUT"

    def get_tensor_dtype(self, name):
        return _Enum(name="FLOAT")

    def get_tensor_profile_shape(self, name, profile):
        return self.profile_shape

    def get_tensor_shape(self, name):
        return (-1, 4) if any(self.profile_shape) else (2, 4)

    def is_shape_inference_io(self, name):
        return name in self.shape_inputs

    def create_execution_context(self):
        return None if self.contexts_fail else FakeContext()

    def create_engine_inspector(self):
        return SimpleNamespace(execution_context=None, get_engine_information=lambda fmt: json.dumps(
            {"Layers": [{"Name": "relu0", "LayerType": "PointWise", "Metadata": "[ONNX Layer: relu0]",
                         "Inputs": [{"Name": "input0", "Dimensions": [2, 4], "Format/Datatype": "Row major FP32"}],
                         "Outputs": [], "TacticName": "pointwise_0x1"}], "Bindings": ["input0", "output0"]}))


class FakeContext:
    """Doubles its input into its output, through the addresses it was given (as a GPU kernel would)."""

    refuse_addresses: tuple[str, ...] = ()
    refuse_profiles = False

    def __init__(self) -> None:
        self.shapes, self.addresses, self.profiler, self.calls = {}, {}, None, []

    def set_optimization_profile_async(self, index, stream_handle):
        self.calls.append(("set_optimization_profile_async", index, stream_handle))
        return not self.refuse_profiles

    def set_input_shape(self, name, shape):
        self.calls.append(("set_input_shape", name, shape))
        self.shapes[name] = tuple(shape)
        return 1 <= shape[0] <= 8

    def set_tensor_address(self, name, address):
        self.calls.append(("set_tensor_address", name))
        self.addresses[name] = address
        return name not in self.refuse_addresses

    def infer_shapes(self):
        return []

    def get_tensor_shape(self, name):
        return self.shapes["input0"]

    def execute_async_v3(self, stream_handle):
        self.calls.append(("execute_async_v3", stream_handle))
        count = int(np.prod(self.shapes["input0"]))
        values = np.ctypeslib.as_array((ctypes.c_float * count).from_address(self.addresses["input0"]))
        doubled = (values * 2).astype(np.float32)
        ctypes.memmove(self.addresses["output0"], doubled.ctypes.data, doubled.nbytes)
        if self.profiler is not None:
            self.profiler.report_layer_time("relu0", 0.25)
            self.profiler.report_layer_time("copy", 0.05)
        return True


@pytest.fixture
def fake_trt(monkeypatch):
    fake = FakeTensorRT()
    monkeypatch.setattr(engines, "import_tensorrt", lambda flavour=None: fake)
    return fake


def test_the_runner_binds_inputs_and_outputs_by_name(fake_trt) -> None:
    import torch

    x = torch.arange(8, dtype=torch.float32).reshape(2, 4)
    with cu.EngineRunner(b"plan", device="cpu") as run:
        assert (run.inputs, run.outputs) == (["input0"], ["output0"])
        assert run.profile_shapes("input0") == ((1, 4), (4, 4), (8, 4))
        out = run(input0=x)
        assert torch.equal(out["output0"], x * 2) and out["output0"].dtype == torch.float32
        assert torch.equal(run(x.numpy())["output0"], x * 2)  # positional, numpy
        calls = [call[0] for call in run.context.calls[:4]]
    assert calls == ["set_input_shape", "set_tensor_address", "set_tensor_address", "execute_async_v3"]
    assert run.engine is None  # released on exit


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"input0": lambda t: t.zeros(16, 4)}, r"shape \(16, 4\), outside optimisation profile 0 .* min \(1, 4\), max \(8, 4\)"),
        ({"input0": lambda t: t.zeros(2, 5)}, r"outside optimisation profile"),
        ({"input0": lambda t: t.zeros(2, 4, 1)}, r"outside optimisation profile"),
        ({"input0": lambda t: t.zeros(2, 4, dtype=t.float64)}, r"is torch.float64; the engine expects torch.float32"),
        ({"images": lambda t: t.zeros(2, 4)}, r"unknown \['images'\], missing \['input0'\]"),
        ({}, r"missing \['input0'\]"),
        ({"input0": lambda t: [[1.0, 2.0, 3.0, 4.0]]}, r"must be a torch tensor or numpy array"),
    ],
)
def test_the_runner_says_what_is_wrong_with_an_input(fake_trt, inputs, message) -> None:
    import torch

    feeds = {name: make(torch) for name, make in inputs.items()}
    with cu.EngineRunner(b"plan", device="cpu") as run, pytest.raises(cu.CourseError, match=message):
        run(**feeds)


def test_a_plan_that_does_not_load_says_why(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(engines, "import_tensorrt", lambda flavour=None: FakeTensorRT(deserializes=False))
    with pytest.raises(cu.CourseError, match="(?s)TensorRT version and GPU it was built for.*another GPU"):
        with cu.EngineRunner(b"plan", device="cpu"):
            pass
    with pytest.raises(cu.CourseError, match="No plan file"):
        cu.EngineRunner(tmp_path / "absent.plan")
    with pytest.raises(cu.CourseError, match="needs a plan"):
        cu.EngineRunner(b"")
    with pytest.raises(cu.CourseError, match="inside `with"):
        cu.EngineRunner(b"plan", device="cpu")(input0=np.zeros((1, 4), np.float32))


def test_the_runner_checks_every_call_tensorrt_can_refuse(fake_trt, monkeypatch) -> None:
    import torch

    x = torch.ones(2, 4)
    with pytest.raises(cu.CourseError, match=r"profile=2: this engine has 2 optimisation profile\(s\), numbered 0 to 1"):
        cu.EngineRunner(b"plan", device="cpu", profile=2).__enter__()
    with cu.EngineRunner(b"plan", device="cpu", profile=1) as run:  # another profile is selected on the run's stream
        assert run.context.calls[0] == ("set_optimization_profile_async", 1, 0)
        assert torch.equal(run(input0=x)["output0"], x * 2)
    monkeypatch.setattr(FakeContext, "refuse_profiles", True)
    with pytest.raises(cu.CourseError, match=r"set_optimization_profile_async\(1\) failed"):
        cu.EngineRunner(b"plan", device="cpu", profile=1).__enter__()
    for name in ("input0", "output0"):
        monkeypatch.setattr(FakeContext, "refuse_addresses", (name,))
        with cu.EngineRunner(b"plan", device="cpu") as run:
            with pytest.raises(cu.CourseError, match=rf"set_tensor_address\('{name}'\) failed"):
                run(input0=x)
    monkeypatch.setattr(FakeEngine, "contexts_fail", True)
    with pytest.raises(cu.CourseError, match=r"create_execution_context\(\) returned None"):
        cu.EngineRunner(b"plan", device="cpu").__enter__()


def test_shape_tensor_inputs_are_refused_not_fed_a_gpu_address(fake_trt, monkeypatch) -> None:
    monkeypatch.setattr(FakeEngine, "shape_inputs", ("input0",))
    with pytest.raises(cu.CourseError, match=r"\['input0'\] are shape tensors .* host memory"):
        cu.EngineRunner(b"plan", device="cpu").__enter__()


def test_a_fixed_input_without_profile_shapes_uses_its_own_shape(fake_trt, monkeypatch) -> None:
    import torch

    for invalid in ([], [(), (), ()]):  # what invalid Dims may come back as
        monkeypatch.setattr(FakeEngine, "profile_shape", invalid)
        with cu.EngineRunner(b"plan", device="cpu") as run:
            assert run.profile_shapes("input0") == ((2, 4), (2, 4), (2, 4))
            assert torch.equal(run(input0=torch.ones(2, 4))["output0"], torch.full((2, 4), 2.0))
            with pytest.raises(cu.CourseError, match="outside optimisation profile"):
                run(input0=torch.ones(3, 4))


def test_the_timing_cache_is_read_refused_and_reported(tmp_path) -> None:
    class Config:
        accepts = True

        def create_timing_cache(self, data):
            self.data = data
            return SimpleNamespace(serialize=lambda: b"cache")

        def set_timing_cache(self, cache, ignore_mismatch):
            self.ignore_mismatch = ignore_mismatch
            return self.accepts

    config = Config()
    _, note = engines._apply_timing_cache(None, config, tmp_path / "t.cache")
    assert config.data == b"" and config.ignore_mismatch is False and "new, saved to t.cache" in note
    (tmp_path / "t.cache").write_bytes(b"x" * 1234)
    _, note = engines._apply_timing_cache(None, config, tmp_path / "t.cache")
    assert config.data == b"x" * 1234 and note == "timing cache: read 1,234 bytes from t.cache"
    config.accepts = False
    with pytest.raises(cu.CourseError, match="refused the timing cache t.cache .* another GPU or TensorRT version"):
        engines._apply_timing_cache(None, config, tmp_path / "t.cache")


def test_running_needs_a_gpu_that_torch_sees() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(cu.CourseError, match="needs an NVIDIA GPU"):
        with cu.EngineRunner(b"plan"):
            pass


def test_per_layer_times_through_the_profiler(fake_trt) -> None:
    import torch

    with cu.EngineRunner(b"plan", device="cpu") as run:
        times = run.profile_layers(input0=torch.ones(2, 4), runs=5, warmup=2)
    assert times.times_ms == {"relu0": [0.25] * 5, "copy": [0.05] * 5}  # the warm-up runs are not kept
    assert times.median_ms("relu0") == 0.25 and times.total_ms == pytest.approx(0.30)
    table = times.table()
    assert table.index("relu0") < table.index("copy") and "83.3%" in table and "16.7%" in table


def test_layer_times_known_answers() -> None:
    times = cu.LayerTimes({"a": [1.0, 3.0, 2.0], "b": [4.0, 4.0]})
    assert times.median_ms("a") == 2.0 and times.total_ms == 6.0
    assert "66.7%" in times.table() and "33.3%" in times.table()
    assert cu.LayerTimes({}).table() == "(no layer times were reported)"


def test_the_inspector_json_as_layers(fake_trt) -> None:
    import torch

    with cu.EngineRunner(b"plan", device="cpu") as run:
        run(input0=torch.ones(2, 4))
        (layer,) = cu.inspect_engine(run)
    assert (layer.name, layer.type, layer.onnx_layers, layer.tactic) == ("relu0", "PointWise", ("relu0",),
                                                                       "pointwise_0x1")
    assert layer.inputs == (cu.TensorDesc("input0", (2, 4), "Row major FP32"),)
    with pytest.raises(cu.CourseError, match="needs a runner inside"):
        cu.inspect_engine(cu.EngineRunner(b"plan", device="cpu"))


def test_inspector_json_known_answers_and_bad_input() -> None:
    detailed = json.dumps({"Layers": [
        {"Name": "conv + relu", "LayerType": "CaskConvolution", "TacticName": "sm80_xmma",
         "Metadata": "[ONNX Layer: conv]\x1e[ONNX Layer: bn]\x1e[ONNX Layer: relu]",
         "Outputs": [{"Name": "y", "Dimensions": [1, 16, 8, 8], "Format/Datatype": "Channel major FP16"}]}]})
    (layer,) = cu.parse_inspector_json(detailed)
    assert layer.onnx_layers == ("conv", "bn", "relu") and layer.outputs[0].shape == (1, 16, 8, 8)
    names_only = cu.parse_inspector_json(json.dumps({"Layers": ["conv + relu", "Reformatting CopyNode"]}))
    assert [layer.name for layer in names_only] == ["conv + relu", "Reformatting CopyNode"]
    for bad in ("", "{", "[1, 2", json.dumps({"Bindings": []}), json.dumps({"Layers": 3}), "null"):
        with pytest.raises(cu.CourseError, match="Not the engine inspector's JSON"):
            cu.parse_inspector_json(bad)
    with pytest.raises(cu.CourseError, match="Unexpected layer entry"):
        cu.parse_inspector_json(json.dumps({"Layers": [3]}))


def test_the_collecting_logger_keeps_messages(tmp_path) -> None:
    trt = rtx()
    logger = cu.collecting_logger(trt)
    assert isinstance(logger, trt.ILogger) and logger.messages == []
    logger.log(trt.ILogger.Severity.ERROR, "boom")
    assert logger.messages == [("ERROR", "boom")]
    assert type(cu.collecting_logger(trt)) is type(logger)  # one class per TensorRT module


# --------------------------------------------------------------------------- notebook 08's exercise judges
def test_the_exercise_judges_accept_right_answers() -> None:
    from course_utils.exercise_bank import nb08
    from course_utils.exercises import RIGHT, judge_exercise

    right = judge_exercise("08.1", ex1_profile={"input0": ((2, 3, 32, 32), (6, 3, 32, 32), (24, 3, 32, 32))},
                           inputs=nb08.CBR_INPUTS)
    assert right.status == RIGHT, right.message
    too_wide = judge_exercise("08.1", ex1_profile={"input0": ((1, 3, 32, 32), (6, 3, 32, 32), (64, 3, 32, 32))},
                              inputs=nb08.CBR_INPUTS)
    assert too_wide.status != RIGHT and "not the smallest profile" in too_wide.message
    targets, unserved = ["SM80", "SM86", "SM89", "SM120", "SM121"], {"H100"}
    assert judge_exercise("08.2", ex2_targets=targets, ex2_unserved=unserved).status == RIGHT
    rtx()

    def build(trt, network, weights):
        hidden = network.add_input("x", trt.float32, (1, 4))
        for index, (w, b) in enumerate((("w1", "b1"), ("w2", "b2"))):
            weight = network.add_constant(weights[w].T.shape, trt.Weights(np.ascontiguousarray(weights[w].T)))
            bias = network.add_constant((1, weights[b].size), trt.Weights(weights[b]))
            product = network.add_matrix_multiply(hidden, trt.MatrixOperation.NONE, weight.get_output(0),
                                                  trt.MatrixOperation.NONE)  # pre-transposed weight: also right
            hidden = network.add_elementwise(bias.get_output(0), product.get_output(0),
                                             trt.ElementWiseOperation.SUM).get_output(0)
            if index == 0:
                hidden = network.add_activation(hidden, trt.ActivationType.RELU).get_output(0)
        network.mark_output(hidden)

    result = judge_exercise("08.3", ex3_build=build)
    assert result.status == RIGHT, result.message


def test_the_mlp_judge_accepts_a_shuffle_transpose_and_explains_a_rank_one_bias() -> None:
    from course_utils.exercises import RIGHT, judge_exercise

    rtx()

    def with_shuffle(trt, network, weights):  # transposes each weight with a shuffle layer: also right
        hidden = network.add_input("x", trt.float32, (1, 4))
        for index, (w, b) in enumerate((("w1", "b1"), ("w2", "b2"))):
            transposed = network.add_shuffle(network.add_constant(weights[w].shape, trt.Weights(weights[w]))
                                             .get_output(0))
            transposed.first_transpose = (1, 0)
            bias = network.add_constant((1, weights[b].size), trt.Weights(weights[b]))
            product = network.add_matrix_multiply(hidden, trt.MatrixOperation.NONE, transposed.get_output(0),
                                                  trt.MatrixOperation.NONE)
            hidden = network.add_elementwise(product.get_output(0), bias.get_output(0),
                                             trt.ElementWiseOperation.SUM).get_output(0)
            if index == 0:
                hidden = network.add_activation(hidden, trt.ActivationType.RELU).get_output(0)
        network.mark_output(hidden)

    result = judge_exercise("08.3", ex3_build=with_shuffle)
    assert result.status == RIGHT, result.message


def test_a_network_tensorrt_cannot_build_is_a_wrong_answer_with_tensorrts_words(monkeypatch) -> None:
    from course_utils.exercises import RIGHT, WRONG, judge_exercise

    rtx()

    def right(trt, network, weights):  # the worked solution's network
        hidden = network.add_input("x", trt.float32, (1, 4))
        for index, (w, b) in enumerate((("w1", "b1"), ("w2", "b2"))):
            weight = network.add_constant(weights[w].shape, trt.Weights(weights[w]))
            bias = network.add_constant((1, weights[b].size), trt.Weights(weights[b]))
            product = network.add_matrix_multiply(hidden, trt.MatrixOperation.NONE, weight.get_output(0),
                                                  trt.MatrixOperation.TRANSPOSE)
            hidden = network.add_elementwise(product.get_output(0), bias.get_output(0),
                                             trt.ElementWiseOperation.SUM).get_output(0)
            if index == 0:
                hidden = network.add_activation(hidden, trt.ActivationType.RELU).get_output(0)
        network.mark_output(hidden)

    assert judge_exercise("08.3", ex3_build=right).status == RIGHT

    def refuses(network, builder):
        raise cu.EngineBuildError("TensorRT could not build the engine:\n  Error Code 4: the planted reason", [])

    monkeypatch.setattr(engines, "build_engine", refuses)
    result = judge_exercise("08.3", ex3_build=right)
    assert result.status == WRONG, result.message
    assert "right numbers, but TensorRT cannot build the network" in result.message
    assert "the planted reason" in result.message


def test_the_numpy_evaluation_of_a_shuffle_known_answer() -> None:
    from course_utils.exercise_bank import nb08

    trt = rtx()
    network = trt.Builder(cu.collecting_logger(trt)).create_network(0)
    x = network.add_input("x", trt.float32, (2, 3))
    first = network.add_shuffle(x)
    first.first_transpose = (1, 0)  # (3, 2)
    second = network.add_shuffle(first.get_output(0))
    second.reshape_dims = (0, 2, 1)  # 0 copies the 3: (3, 2, 1)
    second.second_transpose = (2, 0, 1)  # (1, 3, 2)
    network.mark_output(second.get_output(0))
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    (out,) = nb08.evaluate_network(trt, network, {"x": values}).values()
    assert out.shape == (1, 3, 2) == tuple(second.get_output(0).shape)
    assert out.tolist() == [[[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]]


def test_the_numpy_evaluation_of_a_network_known_answer() -> None:
    from course_utils.exercise_bank import nb08

    trt = rtx()
    network = trt.Builder(cu.collecting_logger(trt)).create_network(0)
    w = np.array([[1, 2], [3, 4]], np.float32)  # y = relu(x @ w.T - 5) for x = [1, 1]: [3 - 5, 7 - 5] -> [0, 2]
    b = np.array([[-5, -5]], np.float32)
    x = network.add_input("x", trt.float32, (1, 2))
    product = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, network.add_constant(w.shape, trt.Weights(w))
                                          .get_output(0), trt.MatrixOperation.TRANSPOSE)
    summed = network.add_elementwise(product.get_output(0), network.add_constant(b.shape, trt.Weights(b)).get_output(0),
                                     trt.ElementWiseOperation.SUM)
    network.mark_output(network.add_activation(summed.get_output(0), trt.ActivationType.RELU).get_output(0))
    (out,) = nb08.evaluate_network(trt, network, {"x": np.ones((1, 2), np.float32)}).values()
    assert out.tolist() == [[0.0, 2.0]]
