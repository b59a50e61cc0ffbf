"""The README's "open the course" command, seen in a real headless browser; cu.Browser itself.

`make course` must set up, serve JupyterLab on 127.0.0.1 (also as root), print its URL and
nothing else, and the page must list the course notebooks. cu.Browser blocks and records every
request beyond 127.0.0.1 (from a page, its frames, its workers, WebSockets). The launcher's
contents manager hands JupyterLab a notebook with this kernel's `language_info` and saves an
unchanged notebook byte for byte (tests/test_browser_course.py proves it in JupyterLab).
Browser tests skip with the reason when Chromium is missing; CI installs it, and sets
COURSE_REQUIRE_BROWSER=1 so that they cannot skip there.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

import course_utils as cu
from course_utils.tooling.launch import free_port, jupyterlab_command

needs_chromium = pytest.mark.skipif(
    cu.find_chromium() is None and not os.environ.get("COURSE_REQUIRE_BROWSER"),
    reason=f"Chromium is not installed ({cu.INSTALL_CHROMIUM})",
)


def stop_launcher(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


URL_LINE = re.compile(r"course at:\s+(http://127\.0\.0\.1:\d+)/\S*\?token=(\w+)")


def wait_for_url(process: subprocess.Popen[str], timeout_s: float = 180) -> tuple[str, str, list[str]]:
    """(base URL, token, lines before it) from the launcher's output; AssertionError after timeout_s.

    The output is read by a thread, so a launcher that prints nothing cannot block the test.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        match = URL_LINE.search(line)
        if match:
            return match.group(1), match.group(2), seen[:-1]
    raise AssertionError("the launcher printed no URL:\n" + "".join(seen[-40:]))


@needs_chromium
def test_make_course_serves_jupyterlab_listing_the_notebooks() -> None:
    process = subprocess.Popen(
        ["make", "--no-print-directory", "course", "PORT=0"], cwd=cu.repo_root(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        base, token, before = wait_for_url(process)
        # Only the one-time setup (when pyproject.toml changed) may print before the URL.
        setup = ("Installing the course into", "-m pip install --quiet")
        noise = [line for line in before if line.strip() and not any(s in line for s in setup)]
        assert noise == [], f"noise before the URL: {before}"
        with cu.Browser(width=1400, height=900) as browser:
            browser.open(f"{base}/lab?token={token}", timeout_s=60)
            browser.wait_for("document.querySelector('.jp-DirListing-content') !== null", 90)
            browser.wait_for("document.body.innerText.includes('00_environment_check.ipynb')", 60)
            listed = set(re.findall(r"\d\d_[a-z0-9_]+\.ipynb", browser.text()))
            shot = browser.screenshot(cu.build_dir("screenshots") / "jupyterlab.png")
        assert {p.name for p in cu.list_notebooks()} <= listed
        assert shot.stat().st_size > 10_000  # a real picture, not an empty page
    finally:
        stop_launcher(process)


@needs_chromium
def test_browser_reads_a_local_page_and_stops_cleanly(tmp_path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>Hello course</h1></body></html>")
    with cu.Browser(width=400, height=300) as browser:
        browser.open(page.as_uri())
        assert "Hello course" in browser.text()
        assert browser.evaluate("1 + 2") == 3
        shot = browser.screenshot(tmp_path / "shot.png")
        with pytest.raises(cu.CourseError, match="Timed out"):
            browser.wait_for("false", timeout_s=0.5)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(cu.CourseError, match="not running"):
        browser.call("Runtime.evaluate", expression="1")


@needs_chromium
def test_browser_blocks_and_records_every_request_beyond_this_machine(tmp_path) -> None:
    """A page, its inline frame and its worker ask for outside hosts: all blocked, all recorded."""
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    (tmp_path / "frame.html").write_text("<script>fetch('https://frame.example.org/beacon')</script>")
    (tmp_path / "csp.html").write_text("""<meta http-equiv="Content-Security-Policy" content="connect-src 'self'">
      <script>navigator.sendBeacon('https://beacon.example.com/collect', 'x')</script>""")
    (tmp_path / "worker.js").write_text("fetch('http://203.0.113.7/worker').catch(() => {}); postMessage(1);")
    (tmp_path / "index.html").write_text("""<html><body>
      <img src="https://images.example.com/logo.png">
      <iframe src="/frame.html"></iframe>
      <iframe src="/csp.html"></iframe>
      <script>
        const socket = new WebSocket('wss://socket.example.net/');
        socket.onerror = () => document.body.dataset.socket = 'refused';
        fetch('https://ipinfo.io/json').then(() => document.title = 'reached', () => document.title = 'refused');
        new Worker('/worker.js').onmessage = () => document.body.dataset.worker = 'ran';
        fetch('/frame.html').then(r => document.body.dataset.local = r.status);
      </script></body></html>""")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with cu.Browser(width=400, height=300) as browser:
            browser.open(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            browser.wait_for("document.title === 'refused' && document.body.dataset.worker === 'ran' "
                             "&& document.body.dataset.local === '200' && document.body.dataset.socket === 'refused'",
                             15)
            time.sleep(1)  # the frame's and the worker's own requests
            outside = {r.host: r for r in browser.outside_requests()}
            local = [r for r in browser.requests if r.local]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert set(outside) == {"images.example.com", "frame.example.org", "ipinfo.io", "203.0.113.7",
                            "socket.example.net", "beacon.example.com"}, outside
    assert outside["beacon.example.com"].kind == "RefusedByContentSecurityPolicy"  # never reached Fetch
    assert all(r.blocked for host, r in outside.items() if host != "socket.example.net")
    assert outside["socket.example.net"].kind == "WebSocket"  # refused by the host resolver rules
    assert {r.url.rsplit("/", 1)[1] for r in local} >= {"index.html", "frame.html", "worker.js"}
    assert all(r.host == "127.0.0.1" for r in local)
    assert cu.is_local_url("data:text/plain,hi") and cu.is_local_url("http://localhost:8888/lab")
    assert not cu.is_local_url("https://127.0.0.1.example.com/") and not cu.is_local_url("ws://10.0.0.1/")


def test_missing_chromium_gives_the_install_command(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COURSE_CHROMIUM", str(tmp_path / "no-chromium"))
    assert cu.find_chromium() is None
    with pytest.raises(cu.BrowserUnavailable, match="apt-get install -y chromium"):
        with cu.Browser():
            pass


def test_free_port_and_the_jupyterlab_command() -> None:
    port = free_port(0)
    command = jupyterlab_command(port, "secret")
    assert "--ServerApp.ip=127.0.0.1" in command and f"--ServerApp.port={port}" in command
    assert any(part.endswith("notebooks") for part in command)
    assert ("--allow-root" in command) == (os.geteuid() == 0)


def _python_notebook(version: str) -> dict:
    import nbformat

    from course_utils.tooling.launch import kernel_language_info

    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {**kernel_language_info(), "version": version},
    })
    nb.cells.append(nbformat.v4.new_code_cell("1 + 1", id="c0"))
    return nb


def test_kernel_language_info_is_what_ipykernel_reports() -> None:
    import platform

    from course_utils.tooling.launch import kernel_language_info

    info = kernel_language_info()
    assert info["name"] == "python" and info["version"] == platform.python_version()
    assert info["codemirror_mode"] == {"name": "ipython", "version": 3} and info["file_extension"] == ".py"
    info["version"] = "changed"
    assert kernel_language_info()["version"] == platform.python_version()  # a copy each time


def test_the_server_opens_and_saves_a_notebook_of_another_python_unchanged(tmp_path, monkeypatch) -> None:
    """JupyterLab gets this kernel's language_info; a save with nothing changed writes the same bytes."""
    import asyncio

    import nbformat

    from course_utils.tooling import launch

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))  # the trust database
    path = tmp_path / "lesson.ipynb"
    nbformat.write(_python_notebook("3.99.0"), path)
    before = path.read_bytes()
    manager = launch.CourseContentsManager(root_dir=str(tmp_path))
    model = asyncio.run(manager.get("lesson.ipynb", content=True, type="notebook"))
    assert model["content"]["metadata"]["language_info"] == launch.kernel_language_info()
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": model["content"]}, "lesson.ipynb"))
    assert path.read_bytes() == before  # Ctrl+S on an unchanged notebook
    listing = asyncio.run(manager.get("lesson.ipynb", content=False))
    assert listing["content"] is None  # a listing is passed through untouched
    # A real change is saved, and the file keeps its own language_info.
    model = asyncio.run(manager.get("lesson.ipynb", content=True, type="notebook"))
    model["content"]["cells"][0]["source"] = "2 + 2"
    asyncio.run(manager.save({"type": "notebook", "format": "json", "content": model["content"]}, "lesson.ipynb"))
    saved = nbformat.read(path, as_version=4)
    assert saved.cells[0].source == "2 + 2" and saved.metadata.language_info.version == "3.99.0"


def test_other_kernels_and_new_files_are_left_alone(tmp_path) -> None:
    from course_utils.tooling.launch import match_kernel_metadata, restore_file_language_info

    r_notebook = {"metadata": {"kernelspec": {"name": "ir"}, "language_info": {"name": "R", "version": "4.4"}}}
    assert match_kernel_metadata(r_notebook)["metadata"]["language_info"] == {"name": "R", "version": "4.4"}
    fresh = match_kernel_metadata(_python_notebook("3.99.0"))
    info = dict(fresh["metadata"]["language_info"])
    assert restore_file_language_info(fresh, tmp_path / "new.ipynb")["metadata"]["language_info"] == info
    (tmp_path / "r.ipynb").write_text('{"metadata": {"language_info": {"name": "R"}}}')
    assert restore_file_language_info(fresh, tmp_path / "r.ipynb")["metadata"]["language_info"] == info
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert restore_file_language_info(fresh, tmp_path / "broken.ipynb")["metadata"]["language_info"] == info
