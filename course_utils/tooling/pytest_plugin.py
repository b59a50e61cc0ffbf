"""pytest plugin of the course (loaded by the root conftest.py): notebook lanes and a clean run.

- A notebook declares what it needs in `metadata.course.requires`; its cells are skipped,
  with the missing requirement in the reason, where this machine lacks it.
- `--require-all-runnable` (the README's `make test` passes it) fails the run when a
  notebook this machine can run did not execute: a broken gate must not skip silently.
- At the end the run fails if it left files outside git-ignored folders, child processes,
  or listening sockets of its own behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # the repository (course_utils is installed editable)
_state: dict = {"collected": set(), "deselected": set(), "executed": set(), "skipped": {}}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-all-runnable", action="store_true",
        help="fail when a notebook this machine can run was not executed",
    )


def _notebook_of(item: pytest.Item) -> Path | None:
    path = Path(str(item.path))
    return path if path.suffix == ".ipynb" else None


def _git_status() -> set[str]:
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    return set(result.stdout.splitlines()) if result.returncode == 0 else set()


def _children(pid: int) -> set[int]:
    """All live descendants of `pid` (from /proc; Linux only)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _listening_inodes() -> set[str]:
    """Inodes of this process's listening TCP sockets."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        listening |= {row.split()[9] for row in rows if row.split()[3] == "0A"}
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    return listening & mine


def pytest_sessionstart(session: pytest.Session) -> None:
    _state["git"] = _git_status()
    _state["sockets"] = _listening_inodes()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from ..lanes import capabilities, notebook_requirements

    notebooks = {nb for nb in map(_notebook_of, items) if nb is not None}
    if not notebooks:
        return
    found = capabilities()
    for notebook in notebooks:
        _state["collected"].add(notebook.name)
        missing = sorted(set(notebook_requirements(notebook)) - found)
        if missing:
            _state["skipped"][notebook.name] = missing
    for item in items:
        notebook = _notebook_of(item)
        if notebook is not None and notebook.name in _state["skipped"]:
            needs = ", ".join(_state["skipped"][notebook.name])
            item.add_marker(pytest.mark.skip(reason=f"{notebook.name} needs {needs}; "
                                             "this machine lacks it (see make doctor)"))


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        notebook = _notebook_of(item)
        if notebook is not None:
            _state["deselected"].add(notebook.name)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    file = report.nodeid.split("::")[0]
    if report.when == "call" and not report.skipped and file.endswith(".ipynb"):
        _state["executed"].add(Path(file).name)


def _problems(session: pytest.Session) -> list[str]:
    problems = []
    if session.config.getoption("--require-all-runnable"):
        from ..paths import list_notebooks

        all_notebooks = {p.name for p in list_notebooks()}
        course_run = any(Path(str(a)).resolve() in (REPO, REPO / "notebooks")
                         for a in session.config.args) or not session.config.args
        if course_run and all_notebooks and not _state["collected"]:
            problems.append("no notebook was collected although notebooks/ has "
                            f"{len(all_notebooks)}; check testpaths and nbval")
        runnable = _state["collected"] - set(_state["skipped"]) - _state["deselected"]
        not_run = sorted(runnable - _state["executed"])
        if not_run:
            problems.append(f"runnable here but not executed: {', '.join(not_run)}")
    new_files = sorted(_git_status() - _state.get("git", set()))
    if new_files:
        problems.append("files left outside git-ignored folders: " + "; ".join(new_files))
    deadline = time.monotonic() + 5
    while (children := _children(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)
    if children:
        commands = []
        for pid in sorted(children):
            try:
                commands.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:120])
            except OSError:
                pass
        problems.append("processes left running: " + "; ".join(commands))
    sockets = _listening_inodes() - _state.get("sockets", set())
    if sockets:
        problems.append(f"{len(sockets)} listening socket(s) left open by the test process")
    return problems


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = _problems(session)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")  # pytest has not ended its progress line yet
    if _state["collected"] and reporter is not None:
        ran = len(_state["executed"])
        reporter.write_line(
            f"notebooks: {ran} executed, {len(_state['skipped'])} skipped for missing "
            f"requirements ({', '.join(f'{k}: {v}' for k, v in sorted(_state['skipped'].items())) or 'none'})"
        )
    if problems:
        if reporter is not None:
            for problem in problems:
                reporter.write_line(f"HARNESS FAILURE: {problem}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
