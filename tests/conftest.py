"""Test-suite plumbing: the student editions execute in a second process, beside the rest.

When the run collects `test_the_student_edition_runs_green...` items, one background process
(`python -m course_utils student --run`) executes those notebooks' student editions, one after
another, from the start of the run; the unit tests and the nbval run of the full notebooks use
the other core meanwhile. The student-edition items are moved to the end of the run, where each
waits for its notebook's result. At the end the process is stopped if it still runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import course_utils as cu

_state: dict = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    student = [item for item in items if item.get_closest_marker("student_run")]
    if not student:
        return
    items[:] = [item for item in items if item not in student] + student  # they wait, so they go last


def pytest_collection_finish(session: pytest.Session) -> None:
    names = [item.callspec.params["path"].name for item in session.items
             if item.get_closest_marker("student_run") and hasattr(item, "callspec")]
    if not names or session.config.option.collectonly:
        return
    out = cu.build_dir("student-run", f"{os.getpid()}")
    for stale in out.glob("*.json"):
        stale.unlink()
    command = [sys.executable, "-m", "course_utils", "student", "--run", "--out", str(out), *names]
    log = open(out / "runner.log", "w")  # noqa: SIM115 - closed in pytest_sessionfinish
    _state.update(out=out, log=log, process=subprocess.Popen(command, cwd=cu.repo_root(), stdout=log,
                                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))


@pytest.fixture
def student_result():
    """`student_result(name)` waits for the background run of that student edition; its result dict."""
    return _wait_for_student_result


def _wait_for_student_result(name: str, timeout_s: float = 900) -> dict:
    import json

    if "out" not in _state:
        pytest.fail("the student editions were not started in the background (see tests/conftest.py)")
    path: Path = _state["out"] / f"{name}.json"
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if _state["process"].poll() is not None and not path.exists():
            log = (_state["out"] / "runner.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"the student-edition runner stopped before {name}:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"no result for {name}'s student edition after {timeout_s:.0f} s")
        time.sleep(0.5)
    return json.loads(path.read_text())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    process = _state.get("process")
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if "log" in _state:
        _state["log"].close()
