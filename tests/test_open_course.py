"""The README's "open the course" command, seen in a real headless browser.

`make course` must set up, serve JupyterLab on 127.0.0.1 (also as root), print its URL, and
the page must list the course notebooks. Skipped with the reason when Chromium is missing;
CI installs it, and sets COURSE_REQUIRE_BROWSER=1 so that this cannot skip there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

import course_utils as cu
from course_utils.tooling.launch import free_port, jupyterlab_command

needs_chromium = pytest.mark.skipif(
    cu.find_chromium() is None and not os.environ.get("COURSE_REQUIRE_BROWSER"),
    reason=f"Chromium is not installed ({cu.INSTALL_CHROMIUM})",
)


def _stop(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _wait_for_url(process: subprocess.Popen[str], timeout_s: float = 180) -> tuple[str, str, list[str]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"open at:\s+(http://127\.0\.0\.1:\d+)/\S*\?token=(\w+)", line)
        if match:
            return match.group(1), match.group(2), seen[:-1]
    raise AssertionError("make course printed no URL:\n" + "".join(seen[-40:]))


@needs_chromium
def test_make_course_serves_jupyterlab_listing_the_notebooks() -> None:
    process = subprocess.Popen(
        ["make", "--no-print-directory", "course", "PORT=0"], cwd=cu.repo_root(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        base, token, before = _wait_for_url(process)
        assert [line for line in before if line.strip()] == [], f"noise before the URL: {before}"
        with cu.Browser(width=1400, height=900) as browser:
            browser.open(f"{base}/lab?token={token}", timeout_s=60)
            browser.wait_for("document.querySelector('.jp-DirListing-content') !== null", 90)
            browser.wait_for("document.body.innerText.includes('00_environment_check.ipynb')", 60)
            listed = set(re.findall(r"\d\d_[a-z0-9_]+\.ipynb", browser.text()))
            shot = browser.screenshot(cu.build_dir("screenshots") / "jupyterlab.png")
        assert {p.name for p in cu.list_notebooks()} <= listed
        assert shot.stat().st_size > 10_000  # a real picture, not an empty page
    finally:
        _stop(process)


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
