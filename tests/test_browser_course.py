"""The course in JupyterLab, driven in a real headless Chromium the way a learner uses it.

One JupyterLab (`python -m course_utils open --port 0`, what `make course` runs) and one
Chromium serve every test of this module. The tests prove, on the committed notebooks in
notebooks/ themselves:
- opening every notebook and letting its kernel connect marks none of them unsaved, and after
  closing them each file is byte for byte what it was (and `git status` says the same);
- Run All on notebook 00 through the Run menu runs every cell without an error; a cell typed
  into it with `cu.show_netron(path)` shows Netron drawing the graph inline with no prompt;
  running that cell again replaces its server (the earlier port is closed); closing the
  notebook and choosing "Discard" leaves the file as committed; shutting the kernels down
  from the Kernel menu stops the viewer's server;
- no page (JupyterLab, Netron inside it) asked for anything beyond 127.0.0.1;
- afterwards no JupyterLab server, kernel or Chromium is left running.
JupyterLab runs with its own empty settings and workspace folders (a developer's own
settings cannot change what is tested) and with autosave off, so that a slow run can never
write a notebook's new outputs into the committed file; a notebook that stays unmodified,
what these tests assert, is never autosaved anyway.
Skipped with the reason when Chromium is missing, except with COURSE_REQUIRE_BROWSER set (CI).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_open_course import stop_launcher, wait_for_url

import course_utils as cu

pytestmark = pytest.mark.skipif(
    cu.find_chromium() is None and not os.environ.get("COURSE_REQUIRE_BROWSER"),
    reason=f"Chromium is not installed ({cu.INSTALL_CHROMIUM})",
)

def _committed_notebooks() -> list[str]:
    """The course notebooks git tracks (all of them in a clone; not a colleague's new draft)."""
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=cu.repo_root(), capture_output=True,
                             text=True, check=False).stdout.split()
    names = {Path(p).name for p in tracked}
    listed = [p.name for p in cu.list_notebooks()]
    return [n for n in listed if n in names] if names else listed


NOTEBOOKS = _committed_notebooks()
RUN_ALL = "00_environment_check.ipynb"  # the smallest notebook: Run All takes ~10 s on 2 cores
MAIN = "#jp-main-dock-panel"
DIRTY_TABS = (f"Array.from(document.querySelectorAll('{MAIN} .lm-TabBar-tab.jp-mod-dirty'))"
              ".map(t => t.innerText.trim())")
OPEN_TABS = f"Array.from(document.querySelectorAll('{MAIN} .lm-TabBar-tab')).map(t => t.innerText.trim())"


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", "notebooks"], cwd=cu.repo_root(),
                          capture_output=True, text=True, check=False).stdout


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _kernel_processes(kernel_ids: set[str]) -> list[int]:
    """PIDs of live processes whose command line names one of these kernels' connection files."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(f"kernel-{kernel}.json" in command for kernel in kernel_ids):
            found.append(int(entry.name))
    return found


class Lab:
    """The running JupyterLab: its address, token and process."""

    def __init__(self, process: subprocess.Popen[str], base: str, token: str) -> None:
        self.process, self.base, self.token = process, base, token
        self.kernel_ids: set[str] = set()

    @property
    def log(self) -> str:
        """JupyterLab's own log (the launcher keeps it under build/)."""
        port = self.base.rsplit(":", 1)[1]
        for candidate in (cu.build_dir("logs") / f"jupyterlab-{port}.log", cu.build_dir() / "jupyterlab.log"):
            if candidate.is_file() and f":{port}/" in candidate.read_text(errors="replace"):
                return candidate.read_text(errors="replace")
        raise AssertionError(f"no JupyterLab log for port {port} under build/")

    def saved(self) -> list[str]:
        """The files JupyterLab was asked to write (its log's "Saving file at" lines)."""
        return re.findall(r"Saving file at (\S+)", self.log)

    def api(self, browser: cu.Browser, path: str) -> object:
        """GET a JupyterLab REST endpoint from inside the page (its cookie and token)."""
        return browser.evaluate(f"fetch('{path}?token={self.token}').then(r => r.json())")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("jupyterlab")
    settings = home / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    process = subprocess.Popen(
        [sys.executable, "-m", "course_utils", "open", "--port", "0"], cwd=cu.repo_root(),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        base, token, _ = wait_for_url(process)
        lab = Lab(process, base, token)
        yield lab
    finally:
        stop_launcher(process)
    # The server stops its kernels when it stops: none may outlive it.
    deadline = time.monotonic() + 10
    while _kernel_processes(lab.kernel_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _kernel_processes(lab.kernel_ids) == [], "kernels outlived the JupyterLab server"
    assert not _port_open(int(lab.base.rsplit(":", 1)[1])), "JupyterLab still listens"


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[cu.Browser]:
    with cu.Browser(width=1400, height=1000) as page:
        page.open(f"{lab.base}/lab?token={lab.token}", timeout_s=90)
        page.wait_for("document.querySelector('.jp-DirListing-content .jp-DirListing-item') !== null", 90)
        yield page
    assert page._process is None  # Chromium and its profile are gone


@pytest.fixture(scope="module")
def committed() -> dict[str, bytes]:
    """Every course notebook's bytes and the notebooks' git status before any test here."""
    return {name: (cu.notebooks_dir() / name).read_bytes() for name in NOTEBOOKS}


def _open(browser: cu.Browser, name: str) -> None:
    """Open a notebook from the file browser (double click on its name), as a learner does."""
    finder = f"""(() => {{
      for (const text of document.querySelectorAll('.jp-DirListing-item .jp-DirListing-itemText')) {{
        if (text.innerText.trim() !== {json.dumps(name)}) continue;
        const box = text.getBoundingClientRect();
        return [box.left + Math.min(60, box.width / 2), box.top + box.height / 2];
      }}
      return null;
    }})()"""
    opened = f"{OPEN_TABS}.includes({json.dumps(name)})"
    for _attempt in range(3):  # a listing that was just re-rendered may miss a double click
        x, y = browser.wait_for(finder, 30)
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for count in (1, 2):
            for kind in ("mousePressed", "mouseReleased"):
                browser.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                             clickCount=count)
        try:
            browser.wait_for(opened, 15)
            return
        except cu.CourseError:
            continue
    browser.wait_for(opened, 1)


def _kernels_idle(lab: Lab, browser: cu.Browser, count: int, timeout_s: float = 120) -> None:
    """Wait until `count` notebook sessions have a kernel and all of them are idle."""
    deadline = time.monotonic() + timeout_s
    while True:
        sessions = lab.api(browser, "/api/sessions") or []
        lab.kernel_ids |= {s["kernel"]["id"] for s in sessions if s.get("kernel")}
        states = [s["kernel"]["execution_state"] for s in sessions if s.get("kernel")]
        if len(states) >= count and all(state == "idle" for state in states):
            return
        assert time.monotonic() < deadline, f"kernels not idle after {timeout_s:.0f} s: {states}"
        time.sleep(0.5)


def _menu(browser: cu.Browser, menu: str, item: str) -> None:
    browser.click(".lm-MenuBar-item", text=menu)
    browser.click(".lm-Menu-item .lm-Menu-itemLabel", text=item)


def test_opening_every_notebook_changes_nothing(committed: dict[str, bytes], lab: Lab,
                                                browser: cu.Browser) -> None:
    status = _git_status()
    for name in NOTEBOOKS:
        _open(browser, name)
    _kernels_idle(lab, browser, len(NOTEBOOKS))
    time.sleep(2)  # the kernels' info reaches each notebook's model after "idle"
    assert browser.evaluate(DIRTY_TABS) == [], "opening marked notebooks unsaved"
    _menu(browser, "File", "Close All Tabs")
    browser.wait_for(f"{OPEN_TABS}.filter(t => t.endsWith('.ipynb')).length === 0", 30)
    assert lab.saved() == [], "JupyterLab wrote notebooks that were only opened and closed"
    changed = [n for n in NOTEBOOKS if (cu.notebooks_dir() / n).read_bytes() != committed[n]]
    assert changed == [], f"{changed} changed, though JupyterLab saved nothing: another program wrote them"
    assert _git_status() == status


def test_run_all_and_the_live_netron_viewer(committed: dict[str, bytes], lab: Lab, browser: cu.Browser,
                                            tmp_path: Path) -> None:
    from test_netron_view import conv_relu_gemm

    model = conv_relu_gemm(tmp_path / "viewer.onnx")
    _open(browser, RUN_ALL)
    _kernels_idle(lab, browser, 1)
    _menu(browser, "Run", "Run All Cells")
    panel = f"{MAIN} .jp-NotebookPanel:not(.lm-mod-hidden)"
    # Running marks the notebook modified and every queued cell [*]; done = none left queued.
    queued = (f"Array.from(document.querySelectorAll('{panel} .jp-CodeCell .jp-InputPrompt'))"
              ".filter(p => p.textContent.includes('*')).length")
    browser.wait_for(f"{DIRTY_TABS}.includes({json.dumps(RUN_ALL)})", 30)
    browser.wait_for(f"{queued} === 0", 180, interval_s=0.5)
    _kernels_idle(lab, browser, 1)
    errors = browser.evaluate(f"document.querySelectorAll('{panel} "
                              "[data-mime-type=\"application/vnd.jupyter.error\"]').length")
    assert errors == 0, browser.evaluate(f"document.querySelector('{panel} .jp-RenderedText"
                                         "[data-mime-type=\"application/vnd.jupyter.error\"]').innerText")

    # A learner's own cell below the last one: the live viewer.
    browser.click(f"{panel} .jp-Cell:last-child .jp-InputPrompt")
    browser.key("Escape", "Escape", key_code=27)
    browser.key("b", "KeyB", key_code=66)
    browser.key("Enter", "Enter", key_code=13)
    browser.type_text(f"viewer = cu.show_netron({str(model)!r}); viewer")
    run_cell = "Run Selected Cell and Do not Advance"
    _menu(browser, "Run", run_cell)
    first = _viewer_port(browser, panel)
    _menu(browser, "Run", run_cell)  # run it again: a new server replaces the first
    second = _viewer_port(browser, panel, not_port=first)
    assert not _port_open(first) and _port_open(second), "the earlier viewer's server still listens"
    shot = browser.screenshot(cu.build_dir("screenshots") / "jupyterlab-netron.png")
    assert shot.stat().st_size > 10_000
    # The record covers the frame (Netron's own files) and the kernel's channels.
    assert any(r.url.startswith(f"http://127.0.0.1:{second}/") and "browser.js" in r.url for r in browser.requests)
    assert any(r.kind == "WebSocket" and "/api/kernels/" in r.url for r in browser.requests)

    # Close without saving: the committed file is untouched.
    browser.click(f"{MAIN} .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon")
    browser.click(".jp-Dialog-button", text="Discard")
    browser.wait_for(f"!{OPEN_TABS}.includes({json.dumps(RUN_ALL)})", 30)
    assert lab.saved() == []
    assert (cu.notebooks_dir() / RUN_ALL).read_bytes() == committed[RUN_ALL]

    # The kernel keeps running after its tab closes (JupyterLab's default); shutting it down
    # from the Kernel menu stops the viewer with it.
    assert _port_open(second)
    _menu(browser, "Kernel", "Shut Down All Kernels…")
    browser.click(".jp-Dialog-button", text="Shut Down All")
    deadline = time.monotonic() + 30
    while _port_open(second) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(second), "the viewer's server outlived its kernel"
    browser.wait_for(f"fetch('/api/kernels?token={lab.token}').then(r => r.json())"
                     ".then(k => k.length === 0)", 60)


def _viewer_port(browser: cu.Browser, panel: str, not_port: int | None = None) -> int:
    """Wait for the Netron frame in the current cell's output to draw the graph; its port."""
    frame_src = (f"(() => {{ const f = document.querySelector('{panel} .jp-Cell.jp-mod-selected "
                 "iframe[title^=\"Netron\"]'); return f ? f.src : null; })()")
    src = browser.wait_for(f"(() => {{ const s = {frame_src}; return s && !s.endsWith(':{not_port}/') "
                           "? s : null; })()", 60)
    port = int(re.match(r"http://127\.0\.0\.1:(\d+)/", src).group(1))
    nodes = browser.wait_for("document.querySelectorAll('#canvas .graph-node').length", 60, frame=src)
    assert nodes == 4
    text = browser.evaluate("document.body.innerText", frame=src)
    assert "cookies" not in text and "Accept" not in text, text
    assert "Conv" in text and "Gemm" in text
    return port


def test_no_page_asked_for_anything_beyond_this_machine(lab: Lab, browser: cu.Browser) -> None:
    hosts = {r.host for r in browser.requests if r.url.startswith(("http", "ws"))}
    assert hosts == {"127.0.0.1"}, hosts
    assert browser.outside_requests() == []
