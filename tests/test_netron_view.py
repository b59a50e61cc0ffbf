"""Tests for course_utils.netron_view: the live server and the PNG in a real headless browser."""

from __future__ import annotations

import io
import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("netron")
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import course_utils as cu  # noqa: E402

needs_chromium = pytest.mark.skipif(
    cu.find_chromium() is None,
    reason="headless Chromium is not installed (apt-get install -y chromium); CI installs it",
)


def conv_relu_gemm(path: Path) -> Path:
    """A small Conv -> Relu -> Flatten -> Gemm model written with onnx.helper."""
    rng = np.random.default_rng(0)
    weights = [
        onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        onnx.numpy_helper.from_array(rng.standard_normal((10, 4 * 6 * 6)).astype(np.float32), "G"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "G"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    return conv_relu_gemm(tmp_path / "convnet.onnx")


def netron_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__name__ == "_HTTPServerThread"]


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- bad input
def test_check_onnx_file_accepts_a_model(model_file: Path) -> None:
    assert cu.check_onnx_file(str(model_file)) == model_file


@pytest.mark.parametrize(("content", "said"), [
    (b"", "model.onnx is empty"),
    (b"hello, this is text\n", "model.onnx is not an ONNX model"),
    (b"\x00\x01\x02garbage\xff", "model.onnx .* is not a readable ONNX protobuf"),
])
def test_check_onnx_file_rejects_non_onnx(tmp_path: Path, content: bytes, said: str) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    with pytest.raises(cu.CourseError, match=said):
        cu.check_onnx_file(bad)


def test_check_onnx_file_missing_folder_and_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(cu.CourseError, match="No ONNX file at .*missing.onnx"):
        cu.check_onnx_file(tmp_path / "missing.onnx")
    with pytest.raises(cu.CourseError, match="is a folder, not an ONNX file"):
        cu.check_onnx_file(tmp_path)
    with pytest.raises(cu.CourseError, match="path of an .onnx file, got int"):
        cu.check_onnx_file(42)


def test_bad_input_starts_nothing(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    before = netron_threads()
    for call in (cu.start_netron, cu.NetronServer, cu.render_netron_png):
        with pytest.raises(cu.CourseError, match="not an ONNX model"):
            call(text)
    with pytest.raises(cu.CourseError, match="No ONNX file"):
        cu.render_netron_png(tmp_path / "absent.onnx")
    assert netron_threads() == before


def test_png_path_must_be_png(model_file: Path, tmp_path: Path) -> None:
    with pytest.raises(cu.CourseError, match="must end in .png"):
        cu.render_netron_png(model_file, tmp_path / "picture.jpg")


# --------------------------------------------------------------------------- live server
def test_server_serves_then_stops_without_leftovers(model_file: Path) -> None:
    before = netron_threads()
    server = cu.start_netron(model_file)
    try:
        host, port = server.address
        assert host == "127.0.0.1" and port > 0 and server.running
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert reply.status == 200 and b"Netron" in reply.read()
        assert "serving at http://127.0.0.1:" in repr(server)
    finally:
        server.stop()
    assert not server.running and not port_is_open(port)
    assert netron_threads() == before and "stopped" in repr(server)
    server.stop()  # stopping twice is harmless


def test_two_servers_at_once_and_context_manager(model_file: Path, tmp_path: Path) -> None:
    other = conv_relu_gemm(tmp_path / "other.onnx")
    with cu.NetronServer(model_file) as first, cu.NetronServer(other) as second:
        assert first.address != second.address
        assert port_is_open(first.address[1]) and port_is_open(second.address[1])
        first.stop()
        assert not port_is_open(first.address[1]) and port_is_open(second.address[1])
    assert not second.running and not port_is_open(second.address[1])


def test_server_stops_when_the_block_fails(model_file: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with cu.NetronServer(model_file) as server:
            port = server.address[1]
            raise RuntimeError("boom")
    assert not port_is_open(port)


def test_widget_is_an_iframe_on_the_served_url(model_file: Path) -> None:
    pytest.importorskip("IPython")
    server = cu.NetronServer(model_file)
    with pytest.raises(cu.CourseError, match="not running"):
        _ = server.url
    try:
        frame = server.widget(height=300)  # starts the server on demand
        assert frame.src == server.url and frame.height == 300
    finally:
        server.stop()


# --------------------------------------------------------------------------- the picture
@needs_chromium
def test_png_shows_the_graph_not_the_consent_prompt(model_file: Path, tmp_path: Path) -> None:
    from matplotlib.image import imread

    sockets_before = netron_threads()
    running = cu.start_netron(model_file)  # a second server while one runs must work
    try:
        picture = cu.render_netron_png(model_file, tmp_path / "shots" / "convnet.png")
        assert running.running
    finally:
        running.stop()
    assert netron_threads() == sockets_before
    assert picture.png.is_file() and picture.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.nodes_drawn == 4
    for op in ("Conv", "Relu", "Flatten", "Gemm"):
        assert op in picture.node_text
    pixels = imread(io.BytesIO(picture._repr_png_()), format="png")
    assert pixels.shape[:2] == (700, 1200)
    assert pixels[..., :3].std() > 0.02  # not a blank page
    # Netron's nodes are coloured boxes: a consent prompt or a logo would be grey/white only.
    rgb = pixels[..., :3]
    saturated = (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25
    assert saturated.mean() > 0.001
    assert "convnet.onnx" in repr(picture) and picture.source == model_file
    assert "W<4×3×3×3>" in picture.node_text and "\u3008" not in picture.node_text


@needs_chromium
def test_png_default_path_sits_beside_the_model(model_file: Path) -> None:
    picture = cu.render_netron_png(model_file, width=800, height=600)
    assert picture.png == model_file.with_suffix(".png") and picture.nodes_drawn == 4
