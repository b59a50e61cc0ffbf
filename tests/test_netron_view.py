"""Tests for course_utils.netron_view: the live server and the PNG in a real headless browser.

netron is a course dependency: a missing one fails here, it is not skipped. The picture tests
need Chromium; they skip with the reason where it is missing, except with
COURSE_REQUIRE_BROWSER set (CI), where a missing Chromium fails them.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import course_utils as cu
from course_utils import netron_view

needs_chromium = pytest.mark.skipif(
    cu.find_chromium() is None and not os.environ.get("COURSE_REQUIRE_BROWSER"),
    reason=f"headless Chromium is not installed ({cu.INSTALL_CHROMIUM}); CI installs it",
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
    return [t for t in threading.enumerate() if t.name.startswith("netron-")]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


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
        status, _, page = get(server.url)
        assert status == 200 and b"<title>Netron</title>" in page
        assert f'<meta name="file" content="/data/{model_file.name}">'.encode() in page
        assert "serving at http://127.0.0.1:" in repr(server)
        assert server in cu.netron_servers()
    finally:
        server.stop()
    assert not server.running and not port_is_open(port)
    assert netron_threads() == before and "stopped" in repr(server)
    assert server not in cu.netron_servers()
    server.stop()  # stopping twice is harmless


def test_the_served_netron_is_private(model_file: Path) -> None:
    """No consent prompt, no IP lookup, no analytics, no update nag; the page may call home only."""
    with cu.NetronServer(model_file) as server:
        status, headers, script = get(server.url + "browser.js")
        assert status == 200 and headers["Content-Security-Policy"] == netron_view.CONTENT_SECURITY_POLICY
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        text = script.decode()
        # Netron 9.3.3's three decisions (written out here, not read from the module).
        for line in ("if (this._getCookie('consent') || this._getCookie('_ga')) {",
                     "if (this._environment.packaged) {", "if (days > 180) {"):
            assert line not in text
        for original, served in netron_view.NETRON_PATCHES:
            assert original not in text and served in text
        # Everything else is Netron's file as installed: only the three lines differ.
        installed = (netron_view._netron_dir() / "browser.js").read_text(encoding="utf-8")
        assert len(installed) - len(text) == sum(len(o) - len(n) for o, n in netron_view.NETRON_PATCHES)
        assert "'https://ipinfo.io/json'" in installed  # what the first patch keeps from running
        assert get(server.url + "index.html")[2] == get(server.url)[2]
        assert "Content-Security-Policy" in get(server.url + "grapher.css")[1]


def test_a_netron_without_the_patched_lines_refuses_to_serve(model_file: Path, monkeypatch) -> None:
    monkeypatch.setattr(netron_view, "NETRON_PATCHES", (("if (thisLineIsGone) {", "if (false) {"),))
    monkeypatch.setattr(netron_view, "_PATCHED", {})
    with pytest.raises(cu.CourseError, match="no longer has the line .*netron==9.3.3"):
        cu.start_netron(model_file)
    assert cu.netron_servers() == []


def test_the_server_serves_its_file_and_nothing_outside(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model_file = conv_relu_gemm(folder / "convnet.onnx")
    other = conv_relu_gemm(folder / "other.onnx")
    (folder / "convnet.onnx.data").write_bytes(b"weights")
    (tmp_path / "secret.json").write_text('{"not": "for the browser"}')
    with cu.NetronServer(model_file) as first, cu.NetronServer(other) as second:
        # netron.start shares one handler class between servers: the last file wins for all.
        assert get(first.url + f"data/{model_file.name}")[2] == model_file.read_bytes()
        assert get(second.url + "data/other.onnx")[2] == other.read_bytes()
        assert get(first.url + "data/convnet.onnx.data")[2] == b"weights"  # external data beside it
        for escape in ("data/../secret.json", "data/%2e%2e/secret.json", "data/models/../../secret.json",
                       f"data/{tmp_path}/secret.json", "../netron/__init__.py", "server.py", "missing.js"):
            assert get(first.url + escape)[0] == 404, escape


def test_one_file_never_has_two_servers(model_file: Path, tmp_path: Path) -> None:
    first = cu.start_netron(model_file)
    other = cu.start_netron(conv_relu_gemm(tmp_path / "other.onnx"))
    try:
        port = first.address[1]
        again = cu.show_netron(model_file, height=320)  # re-running the viewer cell
        assert not first.running and not port_is_open(port)
        assert again.running and again.address != first.address and other.running
        assert sorted(s.path.name for s in cu.netron_servers()) == ["convnet.onnx", "other.onnx"]
        html = again._repr_html_()
        assert f'<iframe src="{again.url}"' in html and 'height="320"' in html
        assert "blank once the kernel has stopped" in html
    finally:
        for server in cu.netron_servers():
            server.stop()
    assert cu.netron_servers() == [] and netron_threads() == []
    assert "stopped" in again._repr_html_() and "<iframe" not in again._repr_html_()


def test_the_viewer_stops_when_the_kernel_process_ends(model_file: Path) -> None:
    netron_view._stop_all()  # what atexit runs at kernel shutdown
    server = cu.start_netron(model_file)
    port = server.address[1]
    netron_view._stop_all()
    assert not server.running and not port_is_open(port) and cu.netron_servers() == []


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
    server = cu.NetronServer(model_file)
    with pytest.raises(cu.CourseError, match="not running"):
        _ = server.url
    try:
        frame = server.widget(height=300)  # starts the server on demand
        assert frame.src == server.url and frame.height == 300
    finally:
        server.stop()


# --------------------------------------------------------------------------- the picture
class RecordingBrowser(cu.Browser):
    """cu.Browser that keeps itself, so a test can read what the picture's page requested."""

    made: list[cu.Browser] = []

    def __enter__(self) -> cu.Browser:
        RecordingBrowser.made.append(self)
        return super().__enter__()


@pytest.fixture()
def recorded(monkeypatch) -> list[cu.Browser]:
    from course_utils.tooling import browser

    RecordingBrowser.made = []
    monkeypatch.setattr(browser, "Browser", RecordingBrowser)
    return RecordingBrowser.made


@needs_chromium
def test_png_shows_the_graph_cropped_and_nothing_left_the_machine(
        model_file: Path, tmp_path: Path, recorded: list[cu.Browser]) -> None:
    from matplotlib.image import imread

    threads_before = netron_threads()
    running = cu.start_netron(model_file)  # the learner's live viewer of the same file
    try:
        picture = cu.render_netron_png(model_file, tmp_path / "shots" / "convnet.png")
        assert running.running and cu.netron_servers() == [running]  # left alone
    finally:
        running.stop()
    assert netron_threads() == threads_before
    assert picture.png.is_file() and picture.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.nodes_drawn == 4
    for op in ("Conv", "Relu", "Flatten", "Gemm"):
        assert op in picture.node_text
    assert "W<4×3×3×3>" in picture.node_text and "\u3008" not in picture.node_text
    assert "convnet.onnx" in repr(picture) and picture.source == model_file

    # What the page asked for: Netron's files and the model from 127.0.0.1, nothing else.
    (page,) = recorded
    urls = [r.url for r in page.requests]
    assert any(f"/data/{model_file.name}" in u for u in urls), urls
    assert {r.host for r in page.requests if r.url.startswith("http")} == {"127.0.0.1"}
    assert page.outside_requests() == []

    # Cropped to the graph: a narrow, tall picture (the page was 1200 x 700) whose drawing
    # reaches to the 12-pixel margin on every side; no toolbar in the bottom-left corner.
    pixels = imread(io.BytesIO(picture._repr_png_()), format="png")[..., :3]
    height, width = pixels.shape[:2]
    assert (width, height) == picture.size
    assert 60 < width < 400 and 250 < height < 700 and height > width
    ink = np.argwhere((pixels < 0.9).any(axis=-1))
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0)
    for gap in (top, left, height - 1 - bottom, width - 1 - right):
        assert 8 <= gap <= 16, (top, left, bottom, right, width, height)
    assert (pixels[-40:, :30] > 0.9).all()  # the toolbar sat there
    saturated = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.25
    assert saturated.mean() > 0.02  # Netron's coloured node boxes, not a grey prompt


@needs_chromium
def test_png_of_a_large_graph_fits_the_size_asked(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i - 1}" if i else "x"], [f"t{i}"])
             for i in range(30)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("t29", TensorProto.FLOAT, [1, 8])])
    path = tmp_path / "chain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    picture = cu.render_netron_png(path, width=400, height=600)
    assert picture.nodes_drawn == 30 and picture.png == path.with_suffix(".png")
    width, height = picture.size
    assert height == 600 and width < 400  # scaled down to fit, the whole chain in it


@needs_chromium
def test_png_default_path_sits_beside_the_model(model_file: Path) -> None:
    picture = cu.render_netron_png(model_file, width=800, height=600)
    assert picture.png == model_file.with_suffix(".png") and picture.nodes_drawn == 4


def test_png_size_must_be_sensible(model_file: Path) -> None:
    with pytest.raises(cu.CourseError, match="at least 50 pixels"):
        cu.render_netron_png(model_file, width=10, height=600)
