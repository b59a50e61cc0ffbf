"""Headless Chromium, driven through the DevTools protocol: pages, clicks, screenshots, requests.

Used by the tests to drive JupyterLab the way a learner does (`make course`, Run All, closing a
notebook), and by `netron_view` to turn a Netron page into a PNG that still shows when a
notebook is read on the web. Chromium is started on 127.0.0.1 with a fresh profile and every
background-network feature off, and it is always stopped with its whole process group.

Offline and private by construction: every page, frame and worker of the browser is attached
(DevTools `Target.setAutoAttach`, flat sessions) and its requests pass through the `Fetch`
domain, which lets a request to 127.0.0.1 / localhost / ::1 (and local schemes: data:, blob:,
file:, about:) through and fails every other one before it leaves the machine. Host-name
resolution is switched off for every other host too (`--host-resolver-rules`), which also
covers Chromium's own traffic. Every request a page made is kept in `browser.requests`
(WebSockets included, and requests a page's Content-Security-Policy refused, which Chromium
only logs); `browser.outside_requests()` lists those to any other host, blocked or not, so a
test can assert that a page asked for nothing outside the machine.
Plumbing: the browser tests and `cu.render_netron_png` (02_pytorch_to_onnx).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import CourseError

__all__ = ["Browser", "BrowserUnavailable", "BrowserRequest", "find_chromium", "is_local_url",
           "INSTALL_CHROMIUM"]

INSTALL_CHROMIUM = "sudo apt-get install -y chromium   # Debian/Ubuntu; or set COURSE_CHROMIUM"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
    "--mute-audio", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--metrics-recording-only", "--no-pings",
    # No host name other than the loopback ones resolves, whatever asks (pages or Chromium).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)


_CSP_REFUSED = re.compile(r"(?:Connecting to|Refused to (?:connect to|load)(?: the \w+)?) '([a-z]+://[^']+)'")


class BrowserUnavailable(CourseError):
    """No Chromium could be found or started; the message says how to install one."""


@dataclass(frozen=True)
class BrowserRequest:
    """One request a page, frame or worker made: its URL, kind and whether it was stopped."""

    url: str
    kind: str          # Document, Script, XHR, Fetch, WebSocket, Image, ...
    target: str        # page, iframe, worker, service_worker
    blocked: bool

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or ""

    @property
    def local(self) -> bool:
        return is_local_url(self.url)


def is_local_url(url: str) -> bool:
    """True for a URL that stays on this machine: loopback hosts, or a non-network scheme.

    Plumbing: the request filter of `Browser`.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in _NETWORK_SCHEMES:
        return True  # data:, blob:, file:, about:, chrome-error:, devtools: ...
    return (parts.hostname or "").lower() in LOCAL_HOSTS


def find_chromium() -> Path | None:
    """Path of a Chromium/Chrome executable (`$COURSE_CHROMIUM` first), or None.

    Plumbing: the browser tests and the Netron pictures (02_pytorch_to_onnx).
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

    Requests to hosts other than 127.0.0.1 / localhost are blocked and all requests are
    recorded (`requests`, `outside_requests()`). Plumbing: tests and Netron pictures.
    """

    def __init__(self, width: int = 1400, height: int = 900, start_timeout_s: float = 30.0):
        self.width, self.height = width, height
        self.start_timeout_s = start_timeout_s
        self.requests: list[BrowserRequest] = []
        self.console: list[str] = []  # the browser's own log lines ("error security: Refused ...")
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self._socket: Any = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._waiting_lock = threading.Lock()
        self._sessions: dict[str, str] = {}  # sessionId -> target type
        self._page_session: str | None = None
        self._request_index: dict[tuple[str, str], int] = {}
        self._closed = threading.Event()
        self._page_ready = threading.Event()

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
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=10) as reply:
                endpoint = json.load(reply)["webSocketDebuggerUrl"]
            self._socket = websocket.create_connection(endpoint, timeout=1, suppress_origin=True)
            self._reader = threading.Thread(target=self._read_loop, name="course-browser-devtools",
                                            daemon=True)
            self._reader.start()
            # Attach to every target (the page, and later its frames and workers), each paused
            # until its requests are filtered (see _on_attached).
            self._call(None, "Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=True,
                       flatten=True)
            if not self._page_ready.wait(self.start_timeout_s):
                raise BrowserUnavailable("Chromium started but its page could not be attached.")
            self.call("Page.enable")
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
        self._closed.set()
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:
                pass
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
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

    # -- the DevTools connection ---------------------------------------------------
    def _send(self, session: str | None, method: str, params: dict[str, Any]) -> int:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        with self._send_lock:
            if self._socket is None:
                raise CourseError("The browser is not running; use it inside `with cu.Browser() as b:`.")
            self._socket.send(json.dumps(message))
        return message_id

    def _call(self, session: str | None, method: str, timeout_s: float = 60.0,
              **params: Any) -> dict[str, Any]:
        if self._socket is None or self._closed.is_set():
            raise CourseError("The browser is not running; use it inside `with cu.Browser() as b:`.")
        box: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        with self._waiting_lock:
            message_id = next(self._ids)
            self._waiting[message_id] = box
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        try:
            with self._send_lock:
                self._socket.send(json.dumps(message))
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    reply = box.get(timeout=0.5)
                    break
                except queue.Empty:
                    if self._closed.is_set() or time.monotonic() > deadline:
                        raise CourseError(f"Chromium did not answer {method} "
                                          f"({'it stopped' if self._closed.is_set() else 'timeout'}).") from None
        finally:
            with self._waiting_lock:
                self._waiting.pop(message_id, None)
        if "error" in reply:
            raise CourseError(f"Chromium refused {method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def _read_loop(self) -> None:
        import websocket

        while not self._closed.is_set():
            try:
                raw = self._socket.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                break
            try:
                message = json.loads(raw)
                if "id" in message:
                    with self._waiting_lock:
                        box = self._waiting.get(message["id"])
                    if box is not None:
                        box.put(message)
                else:
                    self._on_event(message)
            except Exception:  # one bad event must not stop the filter
                continue
        self._closed.set()

    def _record(self, session: str | None, request_id: str, url: str, kind: str, blocked: bool) -> None:
        # An outside URL is one entry however many ids it has (the page's request, its CORS
        # preflight, the Fetch pause): the record says that it was asked for and if it was stopped.
        key = ("", url) if not is_local_url(url) else (request_id, url)
        with self._waiting_lock:
            index = self._request_index.get(key)
            entry = BrowserRequest(url, kind, self._sessions.get(session or "", "?"), blocked)
            if index is None:
                self._request_index[key] = len(self.requests)
                self.requests.append(entry)
            elif blocked:
                self.requests[index] = entry

    def _on_event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        session = message.get("sessionId")
        if method == "Fetch.requestPaused":
            url = params["request"]["url"]
            request_id = params.get("networkId") or params["requestId"]
            if is_local_url(url):
                self._send(session, "Fetch.continueRequest", {"requestId": params["requestId"]})
                self._record(session, request_id, url, params.get("resourceType", "Other"), False)
            else:
                self._send(session, "Fetch.failRequest",
                           {"requestId": params["requestId"], "errorReason": "BlockedByClient"})
                self._record(session, request_id, url, params.get("resourceType", "Other"), True)
        elif method == "Network.requestWillBeSent":
            self._record(session, params.get("requestId", ""), params["request"]["url"],
                         params.get("type", "Other"), False)
        elif method == "Network.webSocketCreated":
            self._record(session, params.get("requestId", ""), params["url"], "WebSocket", False)
        elif method == "Target.attachedToTarget":
            self._on_attached(params)
        elif method == "Target.detachedFromTarget":
            self._sessions.pop(params.get("sessionId", ""), None)
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = str(entry.get("text", ""))
            self.console.append(f"{entry.get('level', '?')} {entry.get('source', '?')}: {text}")
            # A request the page's Content-Security-Policy refused never reaches the network
            # (nor Fetch): the browser only logs it. It is an attempt all the same.
            refused = _CSP_REFUSED.search(text) if entry.get("source") == "security" else None
            if refused:
                self._record(session, "csp", refused.group(1), "RefusedByContentSecurityPolicy", True)
        elif method == "Page.javascriptDialogOpening":  # "leave page?" and alerts: never hang
            self._send(session, "Page.handleJavaScriptDialog", {"accept": True})

    def _on_attached(self, params: dict[str, Any]) -> None:
        session = params["sessionId"]
        kind = params["targetInfo"].get("type", "other")
        self._sessions[session] = kind
        if kind in ("page", "iframe", "worker", "shared_worker", "service_worker"):
            self._send(session, "Network.enable", {})
            self._send(session, "Log.enable", {})
            self._send(session, "Fetch.enable", {"patterns": [{"urlPattern": "*"}]})
            self._send(session, "Target.setAutoAttach",
                       {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True})
        self._send(session, "Runtime.runIfWaitingForDebugger", {})
        if kind == "page" and self._page_session is None:
            self._page_session = session
            self._page_ready.set()

    # -- protocol for the page -------------------------------------------------------
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command to the page and return its result."""
        if self._page_session is None or self._closed.is_set():
            raise CourseError("The browser is not running; use it inside `with cu.Browser() as b:`.")
        return self._call(self._page_session, method, **params)

    def evaluate(self, expression: str, frame: str | None = None) -> Any:
        """Evaluate JavaScript in the page and return its (JSON-able) value.

        `frame`: run it in the first frame whose URL starts with this instead (an inline frame
        of a page on 127.0.0.1, e.g. Netron inside JupyterLab); None when no such frame exists.
        """
        params: dict[str, Any] = {}
        if frame is not None:
            context = self._frame_context(frame)
            if context is None:
                return None
            params["contextId"] = context
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True, **params)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CourseError(f"JavaScript failed: {text}")
        return result.get("result", {}).get("value")

    def frames(self) -> list[str]:
        """The URLs of the page's frames (the page first, then its inline frames)."""
        found: list[str] = []

        def walk(node: dict[str, Any]) -> None:
            found.append(node["frame"].get("url", ""))
            for child in node.get("childFrames", []):
                walk(child)

        walk(self.call("Page.getFrameTree")["frameTree"])
        return found

    def _frame_context(self, prefix: str) -> int | None:
        def find(node: dict[str, Any]) -> str | None:
            if node["frame"].get("url", "").startswith(prefix):
                return node["frame"]["id"]
            for child in node.get("childFrames", []):
                hit = find(child)
                if hit:
                    return hit
            return None

        frame_id = find(self.call("Page.getFrameTree")["frameTree"])
        if frame_id is None:
            return None
        try:  # an isolated world shares the frame's DOM, not its scripts' variables
            return self.call("Page.createIsolatedWorld", frameId=frame_id,
                             worldName="course-browser")["executionContextId"]
        except CourseError:
            return None  # the frame went away (re-rendered) between the two calls

    def open(self, url: str, cookies: dict[str, str] | None = None, wait_s: float = 0.0,
             timeout_s: float = 30.0) -> None:
        """Set `cookies` for `url`, navigate there, wait for the load, then `wait_s` more seconds."""
        for name, value in (cookies or {}).items():
            self.call("Network.setCookie", name=name, value=value, url=url)
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CourseError(f"Chromium could not open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout_s)
        time.sleep(wait_s)  # pages like Netron lay out after load; real time is what they need

    def wait_for(self, condition: str, timeout_s: float = 30.0, interval_s: float = 0.25,
                 frame: str | None = None) -> Any:
        """Poll a JavaScript expression (in the page, or in `frame`) until it is truthy; return it.

        CourseError after `timeout_s`, with the page's first visible words to say where it was.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(condition, frame=frame)
            if value:
                return value
            if time.monotonic() > deadline:
                page = " ".join(self.text().split())[:300]
                raise CourseError(f"Timed out after {timeout_s:.0f} s waiting for: {condition} "
                                  f"(the page shows: {page!r})")
            time.sleep(interval_s)

    def text(self) -> str:
        """The page's visible text."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def click(self, selector: str, text: str | None = None, timeout_s: float = 30.0) -> None:
        """Click (real mouse events) the first visible element matching a CSS selector.

        With `text`, the first one whose visible text, stripped, equals `text`. Waits until
        such an element is there; CourseError after `timeout_s`.
        """
        finder = f"""(() => {{
          const wanted = {json.dumps(text)};
          for (const el of document.querySelectorAll({json.dumps(selector)})) {{
            const box = el.getBoundingClientRect();
            if (box.width === 0 || box.height === 0) continue;
            if (wanted !== null && el.innerText.trim() !== wanted) continue;
            return [box.left + box.width / 2, box.top + box.height / 2];
          }}
          return null;
        }})()"""
        x, y = self.wait_for(finder, timeout_s)
        self.mouse(x, y)

    def mouse(self, x: float, y: float) -> None:
        """Move to (x, y) and press and release the left button there."""
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def key(self, key: str, code: str, modifiers: int = 0, key_code: int = 0) -> None:
        """Press and release one key (DevTools key names; modifiers: 2 = Ctrl, 8 = Shift)."""
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, modifiers=modifiers,
                      windowsVirtualKeyCode=key_code)

    def type_text(self, text: str) -> None:
        """Type `text` into the focused element (as an input method would)."""
        self.call("Input.insertText", text=text)

    def screenshot(self, path: str | os.PathLike[str],
                   clip: tuple[float, float, float, float] | None = None, scale: float = 1.0) -> Path:
        """Save a PNG of the viewport, or of `clip` = (x, y, width, height) in CSS pixels
        scaled by `scale`, to `path` (folders created) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            x, y, width, height = clip
            params["clip"] = {"x": x, "y": y, "width": width, "height": height, "scale": scale}
        data = self.call("Page.captureScreenshot", **params)["data"]
        target.write_bytes(base64.b64decode(data))
        return target

    # -- what the pages asked for -----------------------------------------------------
    def outside_requests(self) -> list[BrowserRequest]:
        """Requests to any host other than 127.0.0.1 / localhost (all of them were blocked)."""
        return [r for r in self.requests if not r.local]

    def forget_requests(self) -> None:
        """Start a fresh record (e.g. after a page a test does not judge)."""
        with self._waiting_lock:
            self.requests.clear()
            self._request_index.clear()
