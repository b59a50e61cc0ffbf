"""The notebook harness itself: lanes skip with a reason, a broken gate fails the run,
and a run that leaves files or processes behind fails. Each case runs pytest in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import nbformat
import pytest

import course_utils as cu

PLUGIN_ARGS = ["-p", "course_utils.tooling.pytest_plugin", "--nbval-lax", "--nbval-current-env",
               "-p", "no:cacheprovider", "-q", "--require-all-runnable"]


def _notebook(path, requires: list[str], source: str = "print('ran')") -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)],
                                  metadata={"course": {"requires": requires}})
    nbformat.write(nb, path)


def _pytest(folder, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", *PLUGIN_ARGS, *extra, str(folder)],
                          cwd=folder, capture_output=True, text=True, timeout=300)


def test_a_notebook_needing_a_missing_lane_is_skipped_with_the_reason(tmp_path) -> None:
    missing = sorted({"gpu", "tensorrt-runtime"} - cu.capabilities())
    if not missing:
        pytest.skip("this machine has every lane")
    _notebook(tmp_path / "01_cpu.ipynb", [])
    _notebook(tmp_path / "02_lane.ipynb", [missing[0]])
    result = _pytest(tmp_path, "-rs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"02_lane.ipynb needs {missing[0]}" in result.stdout
    assert "notebooks: 1 executed, 1 skipped" in result.stdout


def test_a_broken_gate_that_skips_everything_fails_the_run(tmp_path) -> None:
    _notebook(tmp_path / "01_cpu.ipynb", [])
    (tmp_path / "conftest.py").write_text(
        "import pytest\n"
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        item.add_marker(pytest.mark.skip(reason='broken gate'))\n"
    )
    result = _pytest(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "runnable here but not executed: 01_cpu.ipynb" in result.stdout


def test_a_failing_notebook_cell_fails_the_run(tmp_path) -> None:
    _notebook(tmp_path / "01_cpu.ipynb", [], source="raise ValueError('lesson broke')")
    result = _pytest(tmp_path)
    assert result.returncode == 1 and "lesson broke" in result.stdout


def test_leftover_files_and_processes_fail_the_run(tmp_path) -> None:
    stray = cu.repo_root() / f"stray-{uuid.uuid4().hex[:8]}.txt"
    pid_file = tmp_path / "pid"
    (tmp_path / "test_leaky.py").write_text(
        "import subprocess\n"
        "def test_leaks():\n"
        f"    open({str(stray)!r}, 'w').write('left behind')\n"
        "    p = subprocess.Popen(['sleep', '60'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
    )
    try:
        result = _pytest(tmp_path)
    finally:
        stray.unlink(missing_ok=True)
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert result.returncode == 1, result.stdout
    assert "files left outside git-ignored folders" in result.stdout and stray.name in result.stdout
    assert "processes left running" in result.stdout and "sleep 60" in result.stdout
