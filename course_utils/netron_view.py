"""Netron for the notebooks: a live viewer inside JupyterLab and a static PNG for the web.

- `NetronServer` / `start_netron(path)`: serve one ONNX file with Netron on 127.0.0.1 at a
  free port; `server.widget()` is the inline IFrame; `server.stop()` (or leaving a `with`
  block) stops it and waits until its socket is closed. Several servers may run at once.
- `render_netron_png(path)`: serve the file, open it in headless Chromium (`cu.Browser`),
  answer Netron's cookie-consent prompt with a `consent` cookie set before navigating, wait
  until the graph's nodes are drawn, and save a screenshot. The returned `NetronPicture`
  displays as an image output, so it still shows when the notebook is read on the web.
Bad input (missing file, not an ONNX model) raises `CourseError` before anything starts.
Taught in: 02_pytorch_to_onnx (and 03_what_export_does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import CourseError, MissingDependencyError

__all__ = ["NetronServer", "start_netron", "NetronPicture", "render_netron_png",
           "check_onnx_file"]

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


def _netron() -> Any:
    try:
        import netron
    except ImportError:
        raise MissingDependencyError("netron", "pip install netron==9.3.3",
                                     needed_for="viewing ONNX graphs") from None
    return netron


class NetronServer:
    """One ONNX file served by Netron on 127.0.0.1 at a free port; always stop it.

        with cu.NetronServer(path) as server:   # or server = cu.start_netron(path)
            display(server.widget())            # ... later: server.stop()

    Taught in: 02_pytorch_to_onnx.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = check_onnx_file(path)
        self.address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.address is None:
            raise CourseError("This Netron server is not running; call start() first.")
        return f"http://{self.address[0]}:{self.address[1]}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> NetronServer:
        """Start serving (a no-op if already running) and return self."""
        if self.running:
            return self
        netron = _netron()
        # netron.serve() calls logging.basicConfig(INFO) when the root logger has no
        # handler, which would make every later INFO log of the kernel print; a
        # NullHandler for the duration of the call prevents that.
        guard = logging.NullHandler()
        root = logging.getLogger()
        root.addHandler(guard)
        try:
            address = netron.start(str(self.path), address=("127.0.0.1", 0), browse=False)
        except Exception as error:
            raise CourseError(f"Netron could not start for {self.path.name}: {error}") from None
        finally:
            root.removeHandler(guard)
        self.address = (str(address[0]), int(address[1]))
        self._thread = next(
            (t for t in threading.enumerate() if getattr(t, "address", None) == address), None
        )
        return self

    def widget(self, height: int = 500) -> Any:
        """The inline viewer: an IPython IFrame showing the served page."""
        return _netron().widget(self.address if self.running else self.start().address,
                                height=height)

    def stop(self) -> None:
        """Stop the server and wait until its thread (and so its socket) is gone."""
        if self.address is None:
            return
        _netron().stop(self.address)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> NetronServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"serving at {self.url}" if self.running else "stopped"
        return f"NetronServer({self.path.name}, {state})"


def start_netron(path: str | os.PathLike[str]) -> NetronServer:
    """Start Netron on 127.0.0.1 (free port) for one ONNX file; call `.stop()` when done.

    Taught in: 02_pytorch_to_onnx.
    """
    return NetronServer(path).start()


@dataclass
class NetronPicture:
    """A Netron screenshot on disk; shows as an image in Jupyter (a PNG output).

    Taught in: 02_pytorch_to_onnx.
    """

    png: Path
    source: Path
    nodes_drawn: int
    node_text: str

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
) -> NetronPicture:
    """Draw an ONNX file with Netron in headless Chromium and save a PNG of the page.

    Netron shows a cookie-consent prompt before it draws; a `consent` cookie (the current
    time in ms) set for the page URL before navigating answers it. The screenshot is taken
    once the graph's nodes are in the page and layout has settled (`settle_s`). The server
    and the browser are always stopped. `png_path` defaults to `<model>.png` beside the model.
    Taught in: 02_pytorch_to_onnx.
    """
    from .tooling.browser import Browser

    model = check_onnx_file(path)
    target = Path(png_path) if png_path is not None else model.with_suffix(".png")
    if target.suffix.lower() != ".png":
        raise CourseError(f"png_path must end in .png, got {target.name}.")
    with NetronServer(model) as server, Browser(width=width, height=height) as browser:
        consent = {"consent": str(int(time.time() * 1000))}
        browser.open(server.url + "/", cookies=consent, timeout_s=timeout_s)
        with contextlib.suppress(CourseError):
            browser.wait_for(f"{_DRAWN_NODES} > 0", timeout_s=timeout_s)
        nodes = int(browser.evaluate(_DRAWN_NODES) or 0)
        if nodes == 0:
            page = " ".join(browser.text().split())[:200]
            raise CourseError(
                f"Netron did not draw {model.name} within {timeout_s:.0f} s (page says: "
                f"{page!r}). Open it live with cu.start_netron(path) to see why."
            )
        time.sleep(settle_s)  # edges and labels are laid out after the nodes appear
        browser.evaluate(_ASCII_BRACKETS)
        node_text = str(browser.evaluate(_NODE_TEXT) or "")
        browser.screenshot(target)
    return NetronPicture(png=target, source=model, nodes_drawn=nodes, node_text=node_text)
