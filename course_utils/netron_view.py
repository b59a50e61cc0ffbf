"""Netron for the notebooks: a live viewer inside JupyterLab and a static PNG for the web.

- `show_netron(path)`: the live viewer. Serves one ONNX file with Netron on 127.0.0.1 at a free
  port and displays as an inline frame when it is the last expression of a cell. The server
  lives as long as the kernel (it stops itself when the kernel shuts down), and one file never
  has two servers: showing or starting the same file again stops the earlier server first,
  so re-running the cell leaves nothing behind. No stop cell is needed (Run All keeps it).
- `NetronServer` / `start_netron(path)`: the server itself; `server.widget()` is the inline
  IFrame, `server.stop()` (or leaving a `with` block) stops it and waits until its socket is
  closed. Servers for different files may run at once.
- `render_netron_png(path)`: draws the file in headless Chromium (`cu.Browser`, which blocks
  and records every request beyond 127.0.0.1), waits until the graph's nodes are drawn, and
  saves a PNG cropped to the graph (no toolbar, no empty frame). The returned `NetronPicture`
  displays as an image output, so it still shows when the notebook is read on the web.

Offline and private: the course serves Netron's own files from the installed `netron` package
with its own small server, not `netron.start`. Netron 9.3.3's page asks for cookie consent
(after looking up the visitor's country at ipinfo.io) and then reports usage to Google
Analytics; on 127.0.0.1 its consent cookie is set for a domain the browser rejects, so it asks
on every run. The course's server changes three `if` tests in the served `browser.js` (the
file on disk is untouched): the consent prompt and the country lookup before it are skipped
(there is nothing to consent to: telemetry is off), telemetry is never started, and the
"please update" prompt is off (it would block the page for good 180 days after the release
date in Netron's index.html: for 9.3.3, after 2027-04-21). It also sends a
Content-Security-Policy that lets the page connect to its own server only, so a request these
changes missed is refused by the browser. If a Netron release no longer has those lines,
serving stops with a `CourseError` rather than leak.
Bad input (missing file, not an ONNX model) raises `CourseError` before anything starts.
Taught in: 02_pytorch_to_onnx (and 03_what_export_does).
"""

from __future__ import annotations

import atexit
import html
import http.server
import os
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import CourseError, MissingDependencyError

__all__ = ["NetronServer", "start_netron", "show_netron", "NetronPicture", "render_netron_png",
           "check_onnx_file", "netron_servers"]

#: The lines of Netron's browser.js the course's server changes, each (original, served).
#: Each original must occur exactly once, or serving stops (a newer Netron: check it again).
NETRON_PATCHES = (
    # Consent: skip the prompt and the ipinfo.io lookup that precedes it.
    ("if (this._getCookie('consent') || this._getCookie('_ga')) {", "if (true) {"),
    # Telemetry (Google Analytics page views, events and error reports): never started.
    ("if (this._environment.packaged) {", "if (false) {"),
    # "Please update to the newest version." blocks the page 180 days after a release.
    ("if (days > 180) {", "if (false) {"),
)
#: Sent with every response: the page may connect to its own server only.
CONTENT_SECURITY_POLICY = "connect-src 'self'; form-action 'none'; base-uri 'self'"
_MIME = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".json": "application/json", ".png": "image/png",
    ".ico": "image/x-icon", ".svg": "image/svg+xml", ".woff": "font/woff", ".woff2": "font/woff2",
    ".ttf": "font/ttf", ".otf": "font/otf", ".gif": "image/gif", ".jpg": "image/jpeg",
}

# JavaScript: how many graph nodes Netron has drawn into its SVG canvas.
_DRAWN_NODES = "document.querySelectorAll('#canvas .graph-node').length"
# Netron writes tensor shapes as 〈16×3〉; few fonts have those brackets (they render as
# boxes on a bare Linux), so the picture uses ASCII ones.
_ASCII_BRACKETS = """(() => {
  const walker = document.createTreeWalker(document.getElementById('canvas'), NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    n.nodeValue = n.nodeValue.replace(/\u3008/g, '<').replace(/\u3009/g, '>');
  }
  return true;
})()"""
_NODE_TEXT = ("Array.from(document.querySelectorAll('#canvas .graph-node'))"
              ".map(n => n.textContent).join('\\n')")
# The graph's full size at 100 % zoom (Netron adds a 100 px margin around it).
_CANVAS_SIZE = ("(() => { const c = document.getElementById('canvas');"
                " return [c.width.baseVal.value, c.height.baseVal.value]; })()")
# Hide what is not the graph (toolbar, menu, sidebar), then the drawn graph's box in the page.
_GRAPH_BOX = """(() => {
  const style = document.createElement('style');
  style.textContent = '#toolbar, #menu-button, #sidebar, #menu, .toolbar, .menu-button ' +
                      '{ display: none !important; }';
  document.head.appendChild(style);
  const box = document.getElementById('origin').getBoundingClientRect();
  return [box.left, box.top, box.width, box.height];
})()"""


def check_onnx_file(path: str | os.PathLike[str]) -> Path:
    """Return `path` as a Path if it is a readable ONNX model file; CourseError otherwise.

    Uses `cu.load_model` without the external weights, so it is quick and every kind of bad
    file (missing, empty, truncated, not ONNX) gets the same specific message as in notebook 04.
    Taught in: 02_pytorch_to_onnx.
    """
    from .onnx_io import load_model

    if not isinstance(path, str | os.PathLike):
        raise CourseError(f"Pass the path of an .onnx file, got {type(path).__name__}.")
    load_model(path, load_external_data=False)
    return Path(path)


def _netron_dir() -> Path:
    try:
        import netron
    except ImportError:
        raise MissingDependencyError("netron", "pip install netron==9.3.3",
                                     needed_for="viewing ONNX graphs") from None
    return Path(netron.__file__).resolve().parent


_PATCHED: dict[str, bytes] = {}
_PATCH_LOCK = threading.Lock()


def _served_browser_js(folder: Path) -> bytes:
    """Netron's browser.js with NETRON_PATCHES applied (cached); CourseError if one is missing."""
    with _PATCH_LOCK:
        key = str(folder)
        if key not in _PATCHED:
            text = (folder / "browser.js").read_text(encoding="utf-8")
            for original, served in NETRON_PATCHES:
                if text.count(original) != 1:
                    import netron

                    raise CourseError(
                        f"Netron {netron.__version__} no longer has the line the course changes to keep "
                        f"it private ({original!r}); the course is tested with netron==9.3.3: "
                        "pip install netron==9.3.3"
                    )
                text = text.replace(original, served)
            _PATCHED[key] = text.encode("utf-8")
        return _PATCHED[key]


def _index_html(folder: Path, model: Path) -> bytes:
    """Netron's index.html with the metadata its own Python server adds (which file to open)."""
    text = (folder / "index.html").read_text(encoding="utf-8")
    import netron

    name = html.escape(model.name, quote=True)
    meta = "\n".join([
        '<meta name="type" content="Python">',
        f'<meta name="version" content="{html.escape(netron.__version__, quote=True)}">',
        f'<meta name="file" content="/data/{urllib.parse.quote(model.name)}">',
        f'<meta name="name" content="{name}">',
        f'<meta name="identifier" content="{name}">',
    ])
    marker = '<meta name="version" content="'
    start = text.find(marker)
    if start < 0:
        raise CourseError("Netron's index.html has no version line; reinstall netron==9.3.3.")
    end = text.index(">", start) + 1
    return (text[:start] + meta + text[end:]).encode("utf-8")


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _NetronHTTPServer

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        body, kind = self.server.content(path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        payload = body if body is not None else b"Not found"
        self.send_header("Content-Type", kind if body is not None else "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: no log in cells
        pass


class _NetronHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, model: Path) -> None:
        self.model = model.resolve()
        self.netron_dir = _netron_dir()
        self.index = _index_html(self.netron_dir, self.model)
        self.browser_js = _served_browser_js(self.netron_dir)
        super().__init__(("127.0.0.1", 0), _Handler)

    def content(self, path: str) -> tuple[bytes | None, str]:
        if path in ("/", "/index.html"):
            return self.index, _MIME[".html"]
        if path == "/browser.js":
            return self.browser_js, _MIME[".js"]
        if path.startswith("/data/"):  # the model, and files beside it (external weights)
            return _read_inside(self.model.parent, path[len("/data/"):]), "application/octet-stream"
        suffix = Path(path).suffix.lower()
        if suffix not in _MIME:
            return None, ""
        return _read_inside(self.netron_dir, path.lstrip("/")), _MIME[suffix]


def _read_inside(folder: Path, relative: str) -> bytes | None:
    target = (folder / relative).resolve()
    if os.path.commonpath([folder, target]) != str(folder) or not target.is_file():
        return None
    return target.read_bytes()


# The live servers, by resolved model path: one file never has two.
_LIVE: dict[Path, NetronServer] = {}
_LIVE_LOCK = threading.Lock()


def netron_servers() -> list[NetronServer]:
    """The live Netron servers of this kernel (those `start_netron` / `show_netron` started).

    Plumbing: notebooks 02/03 and the tests check that nothing is left behind.
    """
    with _LIVE_LOCK:
        return [server for server in _LIVE.values() if server.running]


@atexit.register
def _stop_all() -> None:  # the kernel is shutting down
    for server in list(_LIVE.values()):
        server.stop()


class NetronServer:
    """One ONNX file served by Netron on 127.0.0.1 at a free port (see `show_netron`).

        with cu.NetronServer(path) as server:   # or server = cu.start_netron(path)
            display(server.widget())            # ... later: server.stop()

    Starting a server for a file stops the earlier server for the same file, if any.
    Taught in: 02_pytorch_to_onnx.
    """

    def __init__(self, path: str | os.PathLike[str], *, height: int = 500, register: bool = True) -> None:
        self.path = check_onnx_file(path)
        self.height = height
        self.address: tuple[str, int] | None = None
        self._http: _NetronHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Registered servers follow "one file, one server" (register=False: a private one,
        # like render_netron_png's, that leaves the learner's live viewer of the file alone).
        self._live = register

    @property
    def url(self) -> str:
        if self.address is None:
            raise CourseError("This Netron server is not running; call start() first.")
        return f"http://{self.address[0]}:{self.address[1]}/"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> NetronServer:
        """Start serving (a no-op if already running) and return self."""
        if self.running:
            return self
        key = self.path.resolve()
        if self._live:
            with _LIVE_LOCK:
                earlier = _LIVE.get(key)
            if earlier is not None and earlier is not self:
                earlier.stop()
        try:
            self._http = _NetronHTTPServer(self.path)
        except OSError as error:
            raise CourseError(f"Netron could not start for {self.path.name}: {error}") from None
        host, port = self._http.server_address[:2]
        self.address = (str(host), int(port))
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"netron-{self.path.name}-{port}", daemon=True)
        self._thread.start()
        if self._live:
            with _LIVE_LOCK:
                _LIVE[key] = self
        return self

    def widget(self, height: int | None = None) -> Any:
        """The inline viewer: an IPython IFrame showing the served page (starts the server)."""
        from IPython.display import IFrame

        self.start()
        return IFrame(self.url, width="100%", height=height or self.height)

    def _repr_html_(self) -> str:
        if not self.running:
            return f"<p><em>Netron viewer for {html.escape(self.path.name)}: stopped.</em></p>"
        name = html.escape(self.path.name)
        return (
            f'<iframe src="{self.url}" title="Netron: {name}" width="100%" height="{self.height}" '
            'style="border: 1px solid #ccc;"></iframe>\n'
            f'<div style="font-size: 85%; color: #666;">Netron, live: {name}, served by this '
            "notebook's kernel on 127.0.0.1. The frame is blank once the kernel has stopped; "
            "run the cell again to see it.</div>"
        )

    def stop(self) -> None:
        """Stop the server and wait until its thread (and so its socket) is gone."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http, self._thread = None, None
        if self._live:
            with _LIVE_LOCK:
                if _LIVE.get(self.path.resolve()) is self:
                    del _LIVE[self.path.resolve()]

    def __enter__(self) -> NetronServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"serving at {self.url}" if self.running else "stopped"
        return f"NetronServer({self.path.name}, {state})"


def start_netron(path: str | os.PathLike[str], *, height: int = 500) -> NetronServer:
    """Start Netron on 127.0.0.1 (free port) for one ONNX file; stops its earlier server.

    Taught in: 02_pytorch_to_onnx.
    """
    return NetronServer(path, height=height).start()


def show_netron(path: str | os.PathLike[str], height: int = 500) -> NetronServer:
    """The live Netron viewer for one ONNX file: end a cell with `cu.show_netron(path)`.

    It displays as an inline frame (`height` pixels) on a server that lives until the kernel
    stops; running it again for the same file replaces the earlier server. Taught in:
    02_pytorch_to_onnx.
    """
    return start_netron(path, height=height)


@dataclass
class NetronPicture:
    """A Netron screenshot on disk; shows as an image in Jupyter (a PNG output).

    Taught in: 02_pytorch_to_onnx.
    """

    png: Path
    source: Path
    nodes_drawn: int
    node_text: str
    size: tuple[int, int] = (0, 0)  # (width, height) of the PNG in pixels

    @property
    def model(self) -> str:
        """The ONNX file's name."""
        return self.source.name

    def _repr_png_(self) -> bytes:
        return self.png.read_bytes()

    def __repr__(self) -> str:
        return f"NetronPicture({self.model}: {self.nodes_drawn} nodes drawn -> {self.png.name})"


def render_netron_png(
    path: str | os.PathLike[str],
    png_path: str | os.PathLike[str] | None = None,
    *,
    width: int = 1200,
    height: int = 700,
    timeout_s: float = 30.0,
    settle_s: float = 0.5,
    margin: int = 12,
) -> NetronPicture:
    """Draw an ONNX file with Netron in headless Chromium and save a PNG cropped to the graph.

    `width` x `height` is the largest the picture may be: Netron draws at 100 %, the PNG is
    the graph plus `margin` pixels (no toolbar, no empty frame), scaled down only if the graph
    is larger than that. The screenshot is taken once the graph's nodes are drawn and layout
    has settled (`settle_s`). The server and the browser are always stopped, and no request
    leaves 127.0.0.1 (the browser blocks any other). `png_path` defaults to `<model>.png`
    beside the model. Taught in: 02_pytorch_to_onnx.
    """
    from .tooling.browser import Browser

    model = check_onnx_file(path)
    target = Path(png_path) if png_path is not None else model.with_suffix(".png")
    if target.suffix.lower() != ".png":
        raise CourseError(f"png_path must end in .png, got {target.name}.")
    if width < 50 or height < 50:
        raise CourseError(f"width and height must be at least 50 pixels, got {width} x {height}.")
    with NetronServer(model, register=False) as server, Browser(width=width, height=height) as browser:
        browser.open(server.url, timeout_s=timeout_s)
        try:
            browser.wait_for(f"{_DRAWN_NODES} > 0", timeout_s=timeout_s)
        except CourseError:
            page = " ".join(browser.text().split())[:200]
            raise CourseError(
                f"Netron did not draw {model.name} within {timeout_s:.0f} s (page says: "
                f"{page!r}). Open it live with cu.show_netron(path) to see why."
            ) from None
        nodes = int(browser.evaluate(_DRAWN_NODES) or 0)
        time.sleep(settle_s)  # edges and labels are laid out after the nodes appear
        browser.evaluate(_ASCII_BRACKETS)
        node_text = str(browser.evaluate(_NODE_TEXT) or "")
        # A graph larger than the page: make the page as large as the graph, crop, then scale.
        canvas_w, canvas_h = (int(v) for v in browser.evaluate(_CANVAS_SIZE))
        page_w, page_h = max(width, min(canvas_w, 8000)), max(height, min(canvas_h, 8000))
        if (page_w, page_h) != (width, height):
            browser.call("Emulation.setDeviceMetricsOverride", width=page_w, height=page_h,
                         deviceScaleFactor=1, mobile=False)
            time.sleep(settle_s)
        left, top, box_w, box_h = browser.evaluate(_GRAPH_BOX)
        x0, y0 = max(0.0, left - margin), max(0.0, top - margin)
        x1, y1 = min(float(page_w), left + box_w + margin), min(float(page_h), top + box_h + margin)
        scale = min(1.0, width / (x1 - x0), height / (y1 - y0))
        browser.call("Page.captureScreenshot")  # one frame after the style change
        browser.screenshot(target, clip=(x0, y0, x1 - x0, y1 - y0), scale=scale)
        if browser.outside_requests():
            hosts = sorted({r.host for r in browser.outside_requests()})
            raise CourseError(f"Netron asked for outside hosts {hosts} (blocked); the course's "
                              "privacy changes no longer hold for this Netron version.")
    header = target.read_bytes()[:24]  # PNG: the IHDR chunk holds width and height
    size = (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big"))
    return NetronPicture(png=target, source=model, nodes_drawn=nodes, node_text=node_text, size=size)
