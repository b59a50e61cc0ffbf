"""The notebook harness itself (course_utils/tooling/pytest_plugin.py), each guard proven on a planted case.

Every case runs pytest in a subprocess against a throwaway copy of `course_utils` (a git
checkout of its own, or a plain folder for the "not a git checkout" case), so a planted
leftover never touches this repository and the run's verdict does not depend on what
else is happening in the working tree. The lanes are forced on both sides, so each case
runs identically on a laptop and on a GPU machine:
- in the harness (the pytest process) by a planted conftest.py that replaces
  `lanes.capabilities`;
- in the notebook's kernel by a first cell that replaces the `%%requires` magic's view.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

import course_utils as cu
from course_utils.lanes import KNOWN_REQUIREMENTS
from course_utils.tooling import pytest_plugin

EVERYTHING = sorted(KNOWN_REQUIREMENTS)
GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "init.defaultBranch=main"]


@pytest.fixture
def course(tmp_path) -> Path:
    """A git checkout holding a copy of course_utils and the .gitignore: the harness's REPO."""
    root = tmp_path / "course"
    shutil.copytree(cu.repo_root() / "course_utils", root / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(cu.repo_root() / ".gitignore", root / ".gitignore")
    (root / "notebooks").mkdir()
    (root / "tests").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "."], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "copy"], cwd=root, check=True)
    return root


def _notebook(path: Path, requires: list[str], *sources: str, kernel_has: list[str] | None = None) -> None:
    """A notebook whose first cell (when `kernel_has` is given) fixes what its kernel's magic sees."""
    cells = []
    if kernel_has is not None:
        cells.append(nbformat.v4.new_code_cell(
            "import course_utils.tooling.magics as magics\n"
            f"magics.capabilities = lambda: {set(kernel_has)!r}"))
    cells += [nbformat.v4.new_code_cell(source) for source in (sources or ("print('ran')",))]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"course": {"requires": requires}})
    nbformat.write(nb, path)


def _harness_has(course: Path, capabilities: list[str]) -> None:
    """Plant a conftest.py that makes the harness (the pytest process) see these capabilities."""
    (course / "conftest.py").write_text(
        "import course_utils.lanes as lanes\n"
        f"lanes.capabilities = lambda *args, **kwargs: {set(capabilities)!r}\n"
    )


def _pytest(course: Path, *args: str, flag: bool = True, report: bool = False) -> subprocess.CompletedProcess[str]:
    """pytest in `course` with the course plugin of its copy, the notebooks of course/notebooks.

    The run report (it probes the GPU: seconds) is written only when the case reads it.
    """
    command = [sys.executable, "-m", "pytest", "-p", "course_utils.tooling.pytest_plugin", "--nbval-lax",
               "--nbval-current-env", "-p", "no:cacheprovider", "-q", "-rs",
               f"--course-notebooks={course / 'notebooks'}",
               f"--run-report={course / 'build' / 'report.json' if report else 'none'}"]
    if flag:
        command.append("--require-all-runnable")
    env = {**os.environ, "PYTHONPATH": str(course), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*command, *args], cwd=course, env=env, capture_output=True, text=True, timeout=300)


def _report(course: Path) -> dict:
    return json.loads((course / "build" / "report.json").read_text())


def _gone(pid: int) -> bool:
    status = pytest_plugin._proc_status(pid)
    return status is None or status[0] == "Z"


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# -- lanes and the course-run gate -----------------------------------------------------------


def test_a_clean_course_run_passes_and_skips_a_missing_lane_with_the_reason(course) -> None:
    _harness_has(course, [])
    _notebook(course / "notebooks" / "01_cpu.ipynb", [])
    _notebook(course / "notebooks" / "02_lane.ipynb", ["gpu"])
    result = _pytest(course)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "02_lane.ipynb needs gpu" in result.stdout
    assert "notebooks: 1 executed, 1 skipped" in result.stdout
    assert "HARNESS" not in result.stdout


def test_a_broken_gate_that_skips_everything_fails_the_run(course) -> None:
    _harness_has(course, [])
    _notebook(course / "notebooks" / "01_cpu.ipynb", [])
    with (course / "conftest.py").open("a") as conftest:
        conftest.write("import pytest\n"
                       "def pytest_collection_modifyitems(items):\n"
                       "    for item in items:\n"
                       "        item.add_marker(pytest.mark.skip(reason='broken gate'))\n")
    result = _pytest(course)
    assert result.returncode == 1, result.stdout
    assert "runnable here but not executed: 01_cpu.ipynb" in result.stdout


def test_a_failing_notebook_cell_fails_the_run(course) -> None:
    _notebook(course / "notebooks" / "01_cpu.ipynb", [], "raise ValueError('lesson broke')")
    result = _pytest(course)
    assert result.returncode == 1 and "lesson broke" in result.stdout


def test_a_course_run_that_collects_no_notebook_fails(course) -> None:
    # `-o testpaths=tests` (or a path argument) collects only the unit tests: a course run must not pass.
    _harness_has(course, [])
    _notebook(course / "notebooks" / "01_cpu.ipynb", [])
    (course / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    result = _pytest(course, "-o", "testpaths=tests")
    assert result.returncode == 1, result.stdout
    assert "HARNESS FAILURE: no notebook was collected although notebooks/ has 1" in result.stdout
    result = _pytest(course, "tests")
    assert result.returncode == 1 and "no notebook was collected" in result.stdout, result.stdout
    # A developer running part of the tests without --require-all-runnable is not bothered.
    result = _pytest(course, "-o", "testpaths=tests", flag=False)
    assert result.returncode == 0 and "HARNESS" not in result.stdout, result.stdout


def test_a_course_run_missing_one_notebook_fails(course) -> None:
    _harness_has(course, [])
    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        _notebook(course / "notebooks" / name, [])
    result = _pytest(course, "notebooks/01_a.ipynb", "notebooks/02_b.ipynb")
    assert result.returncode == 1
    assert "runnable here but not collected: 03_c.ipynb" in result.stdout, result.stdout
    result = _pytest(course, "notebooks", "-k", "not 02_b")
    assert result.returncode == 1
    assert "runnable here but not executed: 02_b.ipynb (1 of its 1 cells deselected" in result.stdout, result.stdout


# -- cells marked %%requires -----------------------------------------------------------------


def test_cells_skipped_here_are_listed_with_the_reason(course) -> None:
    _harness_has(course, [])
    _notebook(course / "notebooks" / "01_cells.ipynb", [], "%%requires gpu tensorrt-runtime\nprint('gpu work')",
              "print('cpu work')", kernel_has=[])
    result = _pytest(course, report=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("01_cells.ipynb Cell 1 skipped here (%%requires gpu tensorrt-runtime): needs an NVIDIA GPU"
            in result.stdout), result.stdout
    [entry] = _report(course)["notebooks"]
    assert entry["result"] == "passed" and entry["cells"] == entry["cells_passed"] == 3
    [cell] = entry["skipped_cells"]
    assert cell["cell"] == 1 and cell["missing"] == ["gpu", "tensorrt-runtime"]
    assert cell["reason"].startswith("needs an NVIDIA GPU visible to PyTorch")


def test_a_cell_gate_that_skips_a_cell_this_machine_can_run_fails_a_course_run(course) -> None:
    _harness_has(course, EVERYTHING)  # the machine has everything ...
    _notebook(course / "notebooks" / "01_cells.ipynb", [], "%%requires gpu\nprint('gpu work')",
              kernel_has=[])          # ... but the magic's gate says no
    result = _pytest(course)
    assert result.returncode == 1, result.stdout
    assert ("HARNESS FAILURE: 01_cells.ipynb Cell 1 (%%requires gpu): this machine has what it needs but "
            "the cell printed the skip line: the %%requires gate is broken") in result.stdout, result.stdout
    assert _pytest(course, flag=False).returncode == 0


def test_a_cell_that_runs_without_its_requirement_fails_a_course_run(course) -> None:
    _harness_has(course, [])
    _notebook(course / "notebooks" / "01_cells.ipynb", [], "%%requires gpu\nprint('gpu work')",
              kernel_has=EVERYTHING)
    result = _pytest(course)
    assert result.returncode == 1, result.stdout
    assert "lacks gpu but the cell did not print the skip line" in result.stdout, result.stdout


def test_an_unknown_cell_requirement_fails_the_run(course) -> None:
    _notebook(course / "notebooks" / "01_cells.ipynb", [], "%%requires quantum\nprint(1)")
    result = _pytest(course, flag=False)
    assert result.returncode == 1
    assert "declares unknown requirements ['quantum']" in result.stdout, result.stdout


# -- the run report --------------------------------------------------------------------------


def test_the_run_report_says_what_ran_where(course) -> None:
    _harness_has(course, [])
    _notebook(course / "notebooks" / "01_ok.ipynb", [])
    _notebook(course / "notebooks" / "02_broken.ipynb", [], "print(1)", "raise ValueError('lesson broke')")
    _notebook(course / "notebooks" / "03_gpu.ipynb", ["gpu"])
    _notebook(course / "notebooks" / "04_left_out.ipynb", [])
    result = _pytest(course, *(f"notebooks/{n}" for n in ("01_ok.ipynb", "02_broken.ipynb", "03_gpu.ipynb")),
                     report=True)
    assert result.returncode == 1
    report = _report(course)
    assert report["format"] == "course-run-report/1" and report["course_run"] is True
    assert report["result"] == "failed" and report["capabilities"] == []
    assert report["lane"] == "CPU only"  # the lane of what the harness was made to see
    assert any("not collected: 04_left_out.ipynb" in p for p in report["harness_problems"])
    machine = report["machine"]
    gpu = cu.gpu_info()
    assert machine["gpu"] == (gpu.name if gpu.available else None)
    assert machine["cpu_cores"] == os.cpu_count() and machine["cpu"]
    assert machine["compute_capability"] == (f"{gpu.capability[0]}.{gpu.capability[1]}" if gpu.available else None)
    entries = {e["notebook"]: e for e in report["notebooks"]}
    assert list(entries) == ["01_ok.ipynb", "02_broken.ipynb", "03_gpu.ipynb", "04_left_out.ipynb"]
    for entry in entries.values():
        assert entry["lane"] == report["lane"] and entry["date"] == report["date"]
        assert entry["machine"] == pytest_plugin._machine_label(machine)
    assert entries["01_ok.ipynb"]["result"] == "passed" and entries["01_ok.ipynb"]["reason"] is None
    assert 0 < entries["01_ok.ipynb"]["wall_s"] < report["wall_s"]
    assert entries["02_broken.ipynb"]["result"] == "failed"
    assert "Cell 1 failed (call)" in entries["02_broken.ipynb"]["reason"]
    assert entries["02_broken.ipynb"]["cells_passed"] == 1
    assert entries["03_gpu.ipynb"]["result"] == "skipped"
    assert entries["03_gpu.ipynb"]["reason"] == "needs an NVIDIA GPU visible to PyTorch (CUDA)"
    assert entries["04_left_out.ipynb"]["result"] == "not run"


def test_the_default_report_name_has_the_lane_and_the_date() -> None:
    config = type("Config", (), {"getoption": staticmethod(lambda name: "auto")})()
    harness = object.__new__(pytest_plugin.CourseHarness)
    harness.config, harness.course_run = config, True
    harness.started = pytest_plugin.datetime.datetime(2026, 12, 1, 9, 0)
    path = harness._report_path("TensorRT GPU machine")
    assert path == pytest_plugin.REPO / "build" / "reports" / "run-tensorrt-gpu-machine-2026-12-01.json"
    harness.course_run = False
    assert harness._report_path("CPU only").name == "partial-run-cpu-only-2026-12-01.json"
    assert "build/" in (cu.repo_root() / ".gitignore").read_text().splitlines()


# -- a clean run -----------------------------------------------------------------------------


def test_leftover_files_and_processes_of_a_unit_test_fail_the_run(course) -> None:
    pid_file = course / "build" / "pid"
    (course / "tests" / "test_leaky.py").write_text(
        "import subprocess\n"
        "def test_leaks():\n"
        f"    import os; os.makedirs({str(course / 'build')!r})\n"
        f"    open({str(course / 'stray.txt')!r}, 'w').write('left behind')\n"
        f"    open({str(course / 'course_utils' / 'errors.py')!r}, 'a').write('# edited')\n"
        f"    open({str(course / 'build' / 'ignored.txt')!r}, 'w').write('fine: git-ignored')\n"
        "    p = subprocess.Popen(['sleep', '60'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
    )
    try:
        result = _pytest(course, "tests", flag=False)
    finally:
        pids = [int(pid_file.read_text())] if pid_file.exists() else []
        _kill(pids)
    assert result.returncode == 1, result.stdout
    assert "files left outside git-ignored folders:  M course_utils/errors.py; ?? stray.txt" in result.stdout
    assert "ignored.txt" not in result.stdout
    assert "processes left running (stopped by the harness)" in result.stdout and "sleep 60" in result.stdout
    assert pids and all(_gone(pid) for pid in pids)


def test_a_server_a_notebook_starts_in_its_own_session_fails_the_run(course) -> None:
    # The kernel dies at the end of its notebook; a process in its own session outlives it and
    # would be re-parented to init. Both kinds below must be found, and stopped.
    pid_file = course / "build" / "pids"
    pid_file.parent.mkdir()
    _notebook(course / "notebooks" / "01_server.ipynb", [],
              "import os, subprocess\n"
              "server = subprocess.Popen(['sleep', '61'], start_new_session=True)\n"
              "# a daemon: double fork, own session, environment scrubbed\n"
              "launcher = subprocess.Popen(['sh', '-c', 'sleep 62 >/dev/null & echo $!'], start_new_session=True,\n"
              "                            env={'PATH': os.environ['PATH']}, stdout=subprocess.PIPE, text=True)\n"
              "daemon = int(launcher.stdout.readline())\n"
              "launcher.wait()\n"
              f"open({str(pid_file)!r}, 'w').write(f'{{server.pid}} {{daemon}}')\n")
    try:
        result = _pytest(course, flag=False)
    finally:
        pids = [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []
        _kill(pids)
    assert len(pids) == 2
    assert result.returncode == 1, result.stdout
    assert "processes left running (stopped by the harness)" in result.stdout, result.stdout
    assert f"{pids[0]}: sleep 61" in result.stdout and f"{pids[1]}: sleep 62" in result.stdout
    assert all(_gone(pid) for pid in pids)


def test_without_a_subreaper_the_session_marker_still_finds_the_server(course) -> None:
    # Where prctl is unavailable the server is re-parented to init; its inherited marker gives it away.
    (course / "conftest.py").write_text("import course_utils.tooling.pytest_plugin as plugin\n"
                                        "plugin._set_subreaper = lambda on: False\n")
    pid_file = course / "build" / "pid"
    pid_file.parent.mkdir()
    _notebook(course / "notebooks" / "01_server.ipynb", [],
              "import subprocess\n"
              "server = subprocess.Popen(['sleep', '63'], start_new_session=True)\n"
              f"open({str(pid_file)!r}, 'w').write(str(server.pid))\n")
    try:
        result = _pytest(course, flag=False)
    finally:
        pids = [int(pid_file.read_text())] if pid_file.exists() else []
        _kill(pids)
    assert result.returncode == 1, result.stdout
    assert "HARNESS WARNING: could not become a child subreaper" in result.stdout
    assert f"processes left running (stopped by the harness): {pids[0]}: sleep 63" in result.stdout, result.stdout
    assert _gone(pids[0])


def test_the_session_marker_finds_a_process_outside_the_tree() -> None:
    token = f"test-{uuid.uuid4().hex}"
    env = {"PATH": os.environ["PATH"], pytest_plugin.SESSION_MARKER: token}
    process = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while process.pid not in pytest_plugin._marked(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pytest_plugin._marked(token) == {process.pid}
        assert pytest_plugin._marked(token + "x") == set()
    finally:
        process.kill()
        process.wait()
    assert process.pid not in pytest_plugin._marked(token)


def test_outside_a_git_checkout_the_file_check_compares_a_snapshot_and_says_so(tmp_path) -> None:
    # A course downloaded as an archive has no .git: the check must neither switch off nor stay silent.
    root = tmp_path / "course"
    shutil.copytree(cu.repo_root() / "course_utils", root / "course_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(cu.repo_root() / ".gitignore", root / ".gitignore")
    (root / "tests").mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tests" / "test_leaky.py").write_text(
        "def test_leaks():\n"
        f"    open({str(root / 'stray.txt')!r}, 'w').write('left behind')\n"
        f"    import os; os.makedirs({str(root / 'models')!r}, exist_ok=True)\n"
        f"    open({str(root / 'models' / 'm.onnx')!r}, 'w').write('fine: git-ignored')\n"
    )
    result = _pytest(root, "tests", flag=False)
    assert result.returncode == 1, result.stdout
    header, _, _ = result.stdout.partition("test_leaky.py")
    assert "HARNESS WARNING: course/ is not a git checkout" in header, result.stdout
    assert "compares a snapshot of the file tree" in header
    assert "files left outside git-ignored folders (file-tree snapshot, not a git checkout): ?? stray.txt" \
        in result.stdout
    assert "m.onnx" not in result.stdout
    (root / "tests" / "test_leaky.py").write_text("def test_clean():\n    pass\n")
    (root / "stray.txt").unlink()
    result = _pytest(root, "tests", flag=False)
    assert result.returncode == 0 and "HARNESS WARNING: course/ is not a git checkout" in result.stdout


def test_the_snapshot_ignores_what_gitignore_ignores(tmp_path) -> None:
    (tmp_path / ".gitignore").write_text("# generated\n.venv/\nmodels/*\n!models/README.md\n/.whl/\n*.egg-info/\n")
    for name in ("a.py", "notebooks/01_x.ipynb", ".venv/lib/x.py", "models/m.onnx", ".whl/t.whl",
                 "pkg.egg-info/PKG-INFO", "course_utils/__pycache__/a.pyc", "build/r.json", ".git/HEAD"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert sorted(pytest_plugin._tree_snapshot(tmp_path)) == [".gitignore", "a.py", "notebooks/01_x.ipynb"]
    assert pytest_plugin._git_status(tmp_path)[0] is None
