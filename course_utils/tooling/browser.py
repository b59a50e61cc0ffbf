"""Headless Chromium, driven through the DevTools protocol: screenshots and page text.

Used by the tests to prove that `make course` really serves JupyterLab with the course
notebooks, and by `netron_view` to turn a Netron page into a PNG that still shows when a
notebook is read on the web. Chromium is started on 127.0.0.1 with a fresh profile and
every background-network feature off, and it is always stopped with its whole process group.
Taught in: 02_pytorch_to_onnx (Netron pictures); plumbing for the tests.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import CourseError

__all__ = ["Browser", "BrowserUnavailable", "find_chromium", "INSTALL_CHROMIUM"]

INSTALL_CHROMIUM = "sudo apt-get install -y chromium   # Debian/Ubuntu; or set COURSE_CHROMIUM"
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
    "--mute-audio", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)


class BrowserUnavailable(CourseError):
    """No Chromium could be found or started; the message says how to install one."""


def find_chromium() -> Path | None:
    """Path of a Chromium/Chrome executable (`$COURSE_CHROMIUM` first), or None.

    Taught in: 02_pytorch_to_onnx.
    """
    override = os.environ.get("COURSE_CHROMIUM")
    if override:
        return Path(override) if Path(override).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


class Browser:
    """A headless Chromium page: `with cu.Browser() as b: b.open(url); b.screenshot(path)`.

    Taught in: 02_pytorch_to_onnx.
    """

    def __init__(self, width: int = 1400, height: int = 900, start_timeout_s: float = 30.0):
        self.width, self.height = width, height
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self._socket: Any = None
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Browser:
        executable = find_chromium()
        if executable is None:
            raise BrowserUnavailable(f"Chromium was not found. Install it with:\n    {INSTALL_CHROMIUM}")
        import websocket  # websocket-client, a course dependency

        self._profile = tempfile.mkdtemp(prefix="course-chromium-")
        try:
            self._process = subprocess.Popen(
                [str(executable), *_FLAGS, f"--window-size={self.width},{self.height}",
                 f"--user-data-dir={self._profile}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            port = self._wait_for_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
                targets = json.load(reply)
            page = next(t for t in targets if t.get("type") == "page")
            self._socket = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
            )
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _wait_for_port(self) -> int:
        marker = Path(self._profile or "") / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrowserUnavailable(
                    f"Chromium exited at start (code {self._process.returncode}). "
                    f"Check that it runs: {find_chromium()} --headless --version"
                )
            if marker.is_file():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            time.sleep(0.1)
        raise BrowserUnavailable(f"Chromium did not open its DevTools port in {self.start_timeout_s:.0f} s.")

    def close(self) -> None:
        """Stop Chromium (its whole process group) and delete its temporary profile."""
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:
                pass
            self._socket = None
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(timeout=10)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
            self._process = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -- protocol ----------------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events are skipped)."""
        if self._socket is None:
            raise CourseError("The browser is not running; use it inside `with cu.Browser() as b:`.")
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._socket.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise CourseError(f"Chromium refused {method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON-able) value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise CourseError(f"JavaScript failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def open(self, url: str, cookies: dict[str, str] | None = None, wait_s: float = 0.0,
             timeout_s: float = 30.0) -> None:
        """Set `cookies` for `url`, navigate there, wait for the load, then `wait_s` more seconds."""
        self.call("Network.enable")
        for name, value in (cookies or {}).items():
            self.call("Network.setCookie", name=name, value=value, url=url)
        self.call("Page.enable")
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CourseError(f"Chromium could not open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout_s)
        time.sleep(wait_s)  # pages like Netron lay out after load; real time is what they need

    def wait_for(self, condition: str, timeout_s: float = 30.0) -> None:
        """Poll a JavaScript condition until it is true; CourseError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({condition})"):
                return
            time.sleep(0.25)
        raise CourseError(f"Timed out after {timeout_s:.0f} s waiting for: {condition}")

    def text(self) -> str:
        """The page's visible text."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def screenshot(self, path: str | os.PathLike[str]) -> Path:
        """Save a PNG of the viewport to `path` (folders created) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        target.write_bytes(base64.b64decode(data))
        return target
