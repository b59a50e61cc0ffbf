"""pytest plugin of the course (loaded by the root conftest.py): notebook lanes, a clean run, a run report.

Lanes
- A notebook declares what it needs in `metadata.course.requires`; its cells are skipped,
  with the missing requirement in the reason, where this machine lacks it.
- A cell that needs more starts with `%%requires NAME ...` (course_utils/tooling/magics.py):
  where this machine lacks NAME the magic prints one "Skipped on this machine ..." line
  instead of running the body. The harness reads the same first line and lists, per
  notebook, which cells are skipped here and why (`lanes.capabilities()`).

`--require-all-runnable` (the README's `make test` passes it) makes the run a course run. It fails when
- a course notebook (`notebooks/NN_name.ipynb`, or `--course-notebooks DIR`) that this machine
  can run was not collected (`-o testpaths=tests`, a path argument, nbval not loaded) or not
  executed (skipped by a broken gate, deselected with -k/-m): a course run runs every one;
- a `%%requires` cell whose requirements this machine meets printed the skip line (the
  magic's gate is broken), or a cell whose requirements are missing did not print it.
A developer's `pytest tests/test_x.py` (no flag) is not bothered by any of this; the
notebooks it does run are still gated and reported.

A clean run (always checked; each problem fails the run with a "HARNESS FAILURE:" line)
- Files: `git status --porcelain --untracked-files=all` before and after. Outside a git
  checkout (a downloaded archive) or without git, a snapshot of the file tree (paths, sizes,
  mtimes; .gitignore's simple patterns and the usual generated folders left out) is compared
  instead, and the run says so at the top and at the end ("HARNESS WARNING").
- Processes: at the start the pytest process becomes a *child subreaper*
  (prctl(PR_SET_CHILD_SUBREAPER), Linux >= 3.4, no privilege needed) and puts a marker
  `COURSE_PYTEST_SESSION=<pid>-<random>` in its environment. A process that a notebook
  cell starts in its own session (`start_new_session=True`, a server) outlives the kernel
  that started it; without a subreaper it would be re-parented to init and escape a
  parent-pid walk. With one, every orphaned descendant is re-parented to pytest, whatever
  its session, process group or environment. The marker catches, from /proc/PID/environ,
  descendants that escape the tree anyway (where prctl is unavailable, or started through
  a helper outside it but with our environment). At the end the run waits up to 5 s, then
  lists every live process found either way, stops it (SIGTERM, then SIGKILL) and fails.
  /proc/PID/environ holds the environment a process was exec'd with, so pytest itself
  (exec'd before the marker) never matches; a fork without exec is still in the tree.
- Sockets: listening TCP sockets the pytest process itself opened and did not close.

Run report (issue 16), written at the end of every run that collected a course notebook or
had `--require-all-runnable`: `build/reports/run-<lane>-<date>.json` for a course run,
`build/reports/partial-run-<lane>-<date>.json` otherwise (`--run-report PATH` or `none`
overrides). <lane> is the README's lane name in lower case with dashes ("cpu-only",
"nvidia-gpu", "tensorrt-gpu-machine", "tensorrt-rtx"); <date> is YYYY-MM-DD (local).
build/ is git-ignored. Format (stable; "format" changes only when a key changes meaning):

    {
      "format": "course-run-report/1",
      "date": "2026-12-01", "started": "2026-12-01T09:47:35+01:00", "wall_s": 412.3,
      "lane": "TensorRT-RTX",                      # lanes.current_lane().name
      "capabilities": ["tensorrt-builder"],         # lanes.capabilities()
      "course_run": true,                            # --require-all-runnable was given
      "result": "passed",                            # passed | failed: the whole pytest run
      "harness_problems": [],                        # the HARNESS FAILURE lines
      "machine": {"cpu": "Intel(R) Xeon(R) ...", "cpu_cores": 2, "gpu": null,
                  "compute_capability": null, "gpu_memory_gib": null, "cuda": "13.0",
                  "tensorrt": "tensorrt-rtx 1.7.1.116", "python": "3.11.7",
                  "platform": "Linux x86_64"},
      "notebooks": [
        {"notebook": "00_environment_check.ipynb", "lane": "TensorRT-RTX", "date": "2026-12-01",
         "machine": "CPU only: Intel(R) Xeon(R) ...",   # or "NVIDIA H200 (compute capability 9.0)"
         "result": "passed",        # passed | failed | skipped | not run
         "reason": null,            # why failed / skipped / not run (null when passed)
         "wall_s": 14.2,            # kernel start to kernel stop, all its cells
         "cells": 27, "cells_passed": 27,
         "skipped_cells": [{"cell": 5, "requires": ["gpu"], "missing": ["gpu"],
                            "reason": "needs an NVIDIA GPU visible to PyTorch (CUDA)"}]}
      ]
    }

"cell" is nbval's code-cell number (the node id `notebooks/NN_x.ipynb::Cell 5`). A notebook
skipped as a whole has result "skipped" and its missing requirements in "reason"; "not run"
is a course notebook that was runnable here but not collected or deselected.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import platform
import re
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # the repository (course_utils is installed editable)
#: The environment variable every process started during a run inherits (see the docstring).
SESSION_MARKER = "COURSE_PYTEST_SESSION"
#: What the `%%requires` magic prints instead of running a cell (course_utils/tooling/magics.py).
SKIP_LINE = "Skipped on this machine ("
REPORT_FORMAT = "course-run-report/1"
_PR_SET_CHILD_SUBREAPER = 36
# Left out of the file-tree snapshot even when .gitignore is missing.
_ALWAYS_IGNORED = (".git", ".venv", "venv", "models", "build", "mutants", "__pycache__", "*.egg-info",
                   ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", ".mypy_cache")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course", "the course's notebook harness")
    group.addoption(
        "--require-all-runnable", action="store_true",
        help="a course run: fail when a course notebook this machine can run was not collected or "
             "not executed, or when a %%%%requires gate is broken",
    )
    group.addoption(
        "--course-notebooks", default=None, metavar="DIR",
        help="folder of the course notebooks that --require-all-runnable expects (default: notebooks/)",
    )
    group.addoption(
        "--run-report", default="auto", metavar="PATH",
        help="where to write the JSON run report: auto (build/reports/...), none, or a file path",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "planted_bugs: re-plants known bugs in a copy of course_utils and expects "
                                       "a unit test to fail (tests/test_planted_bugs.py; part of make test)")
    if not config.pluginmanager.has_plugin("course-harness"):
        config.pluginmanager.register(CourseHarness(config), "course-harness")


def pytest_unconfigure(config: pytest.Config) -> None:
    harness = config.pluginmanager.get_plugin("course-harness")
    if isinstance(harness, CourseHarness):
        harness.restore()
        config.pluginmanager.unregister(harness)


# ---------------------------------------------------------------------------------------------
# Helpers that read the machine (Linux /proc); each one is tested in tests/test_harness.py.


def _git_status(repo: Path) -> tuple[set[str] | None, str]:
    """`git status` lines of `repo`, or (None, why not) outside a git checkout / without git."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=repo,
                                capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"git is not usable here ({type(error).__name__}: {error})"
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        detail = inside.stderr.strip().splitlines()[0] if inside.stderr.strip() else "not a work tree"
        return None, f"{repo.name}/ is not a git checkout ({detail[:160]})"
    result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."], cwd=repo,
                            capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        return None, f"git status failed: {result.stderr.strip()[:200]}"
    return set(result.stdout.splitlines()), ""


def _ignore_patterns(repo: Path) -> list[str]:
    """.gitignore's plain patterns (negations and comments dropped) plus `_ALWAYS_IGNORED`."""
    patterns = list(_ALWAYS_IGNORED)
    try:
        lines = (repo / ".gitignore").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        line = line.lstrip("/").rstrip("/")
        patterns.append(line[:-2] if line.endswith("/*") else line)
    return patterns


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern + "/*"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def _tree_snapshot(repo: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file not covered by the ignore patterns."""
    patterns = _ignore_patterns(repo)
    snapshot: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(repo):
        base = Path(folder).relative_to(repo).as_posix()
        base = "" if base == "." else base + "/"
        dirs[:] = [d for d in dirs if not _ignored(base + d, patterns)]
        for name in files:
            relative = base + name
            if _ignored(relative, patterns):
                continue
            try:
                stat = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            snapshot[relative] = (stat.st_size, stat.st_mtime_ns)
    return snapshot


def _proc_status(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _live_pids() -> list[int]:
    try:
        return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _children(pid: int) -> set[int]:
    """All live (not zombie) descendants of `pid` (from /proc; Linux only)."""
    parents: dict[int, int] = {}
    for other in _live_pids():
        status = _proc_status(other)
        if status and status[0] != "Z":
            parents[other] = status[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _marked(token: str) -> set[int]:
    """Live processes (other than this one) whose exec-time environment carries our marker."""
    needle = f"{SESSION_MARKER}={token}".encode()
    found = set()
    for pid in _live_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone, or another user's process
            continue
        if needle in environ.split(b"\0"):
            status = _proc_status(pid)
            if status and status[0] != "Z":
                found.add(pid)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "?"


def _stop(pids: set[int]) -> None:
    """SIGTERM, a grace of 2 s, then SIGKILL: only processes this run started (found above)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any((s := _proc_status(p)) and s[0] != "Z" for p in pids):
            time.sleep(0.1)


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


def _set_subreaper(on: bool) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The machine a run report describes: CPU, GPU and compute capability, CUDA, TensorRT.

    Plumbing: the run report of the test harness.
    """
    from .. import lanes

    gpu = lanes.gpu_info()
    tensorrt = lanes.tensorrt_here(gpu)
    capability = f"{gpu.capability[0]}.{gpu.capability[1]}" if gpu.available and gpu.capability else None
    return {
        "cpu": _cpu_model(), "cpu_cores": os.cpu_count(),
        "gpu": gpu.name if gpu.available else None, "compute_capability": capability,
        "gpu_memory_gib": gpu.memory_gib if gpu.available else None, "cuda": gpu.cuda_version,
        "tensorrt": f"{tensorrt.flavour} {tensorrt.version}" if tensorrt.flavour else None,
        "python": platform.python_version(), "platform": f"{platform.system()} {platform.machine()}",
    }


def _machine_label(machine: dict) -> str:
    if machine["gpu"]:
        return f"{machine['gpu']} (compute capability {machine['compute_capability']})"
    return f"CPU only: {machine['cpu']}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------------------------------------


@dataclass
class _Notebook:
    name: str
    missing: list[str] = field(default_factory=list)  # notebook-level requirements missing here
    cells: int = 0
    deselected: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    failure: str | None = None
    skipped_cells: list[dict] = field(default_factory=list)


class CourseHarness:
    """The hooks, with the state of one pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.course_run = bool(config.getoption("--require-all-runnable"))
        folder = config.getoption("--course-notebooks")
        self.course_dir = Path(folder).resolve() if folder else REPO / "notebooks"
        self.notebooks: dict[str, _Notebook] = {}
        self.item_notebook: dict[str, str] = {}  # nodeid -> notebook name
        self.cell_needs: dict[str, tuple[list[str], list[str]]] = {}  # nodeid -> (requires, missing)
        self.gate_problems: list[str] = []
        self.lane_problems: list[str] = []
        self.capabilities: set[str] | None = None
        self.started = datetime.datetime.now().astimezone()
        self.clock = time.monotonic()
        self.git: set[str] | None = None
        self.tree: dict[str, tuple[int, int]] | None = None
        self.file_check = ""
        self.sockets: set[str] = set()
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.old_marker = os.environ.get(SESSION_MARKER)
        os.environ[SESSION_MARKER] = self.token
        self.subreaper = _set_subreaper(True)

    def restore(self) -> None:
        if self.old_marker is None:
            os.environ.pop(SESSION_MARKER, None)
        else:
            os.environ[SESSION_MARKER] = self.old_marker
        if self.subreaper:
            _set_subreaper(False)

    # -- start -----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.git, why = _git_status(REPO)
        if self.git is None:
            self.tree = _tree_snapshot(REPO)
            self.file_check = (f"{why}: the leftover-file check compares a snapshot of the file tree "
                               "instead of git status (new, changed and deleted files; .gitignore's "
                               "simple patterns left out)")
        self.sockets = _listening_inodes()

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = []
        if self.file_check:
            lines.append(f"HARNESS WARNING: {self.file_check}")
        if not self.subreaper:
            lines.append("HARNESS WARNING: could not become a child subreaper (not Linux?); leftover "
                         f"processes are found only through their {SESSION_MARKER} marker")
        return lines

    # -- collection ------------------------------------------------------------------------

    def _capabilities(self) -> set[str]:
        if self.capabilities is None:
            from .. import lanes

            self.capabilities = set(lanes.capabilities())
        return self.capabilities

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        from .. import lanes
        from ..errors import CourseError
        from .magics import cell_requirements

        notebook_items = [(item, Path(str(item.path))) for item in items if Path(str(item.path)).suffix == ".ipynb"]
        if not notebook_items:
            return
        found = self._capabilities()
        for item, path in notebook_items:
            entry = self.notebooks.get(path.name)
            if entry is None:
                try:
                    missing = sorted(set(lanes.notebook_requirements(path)) - found)
                except CourseError as error:
                    self.lane_problems.append(str(error))
                    missing = []
                entry = self.notebooks[path.name] = _Notebook(path.name, missing)
            entry.cells += 1
            self.item_notebook[item.nodeid] = path.name
            if entry.missing:
                item.add_marker(pytest.mark.skip(
                    reason=f"{path.name} needs {', '.join(entry.missing)}; this machine lacks it (see make doctor)"))
                continue
            source = getattr(getattr(item, "cell", None), "source", None)
            requires = cell_requirements(source) if isinstance(source, str) else None
            if requires is None:
                continue
            try:
                cell_missing = lanes.missing_requirements(requires, found)
            except CourseError as error:
                self.lane_problems.append(f"{path.name} {item.name}: {error}")
                continue
            self.cell_needs[item.nodeid] = (requires, cell_missing)
            if cell_missing:
                entry.skipped_cells.append({
                    "cell": getattr(item, "cell_num", None), "requires": requires, "missing": cell_missing,
                    "reason": "needs " + "; ".join(lanes.REQUIREMENT_MEANING[m] for m in cell_missing),
                })

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            name = self.item_notebook.get(item.nodeid)
            if name is not None:
                self.notebooks[name].deselected += 1

    # -- running ---------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if call.when == "call" and item.nodeid in self.cell_needs and report.passed:
            requires, missing = self.cell_needs[item.nodeid]
            outputs = getattr(item, "test_outputs", None) or []
            text = "".join(str(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
            where = f"{self.item_notebook[item.nodeid]} {item.name} (%%requires {' '.join(requires)})"
            if not missing and SKIP_LINE in text:
                self.gate_problems.append(f"{where}: this machine has what it needs but the cell printed "
                                          "the skip line: the %%requires gate is broken")
            elif missing and SKIP_LINE not in text:
                self.gate_problems.append(f"{where}: this machine lacks {', '.join(missing)} but the cell did "
                                          "not print the skip line")
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = self.item_notebook.get(report.nodeid)
        if name is None:
            return
        entry = self.notebooks[name]
        entry.wall_s += report.duration
        if report.failed:
            if entry.failure is None:
                message = str(report.longrepr).strip().splitlines() if report.longrepr else [""]
                last = next((line for line in reversed(message) if line.strip()), "")
                entry.failure = f"{report.nodeid.split('::')[-1]} failed ({report.when}): {last.strip()[:200]}"
            if report.when == "call":
                entry.failed += 1
        elif report.when == "call":
            if report.skipped:
                entry.skipped += 1
            else:
                entry.passed += 1
        elif report.skipped and report.when == "setup":
            entry.skipped += 1

    # -- the end ---------------------------------------------------------------------------

    def _expected_notebooks(self) -> tuple[list[str], list[str]]:
        """(course notebooks runnable here, notebook-level problems)."""
        from .. import lanes
        from ..errors import CourseError
        from ..paths import list_notebooks

        runnable, problems = [], []
        found = self._capabilities()
        for path in list_notebooks(self.course_dir) if self.course_dir.is_dir() else []:
            try:
                if not set(lanes.notebook_requirements(path)) - found:
                    runnable.append(path.name)
            except CourseError as error:
                problems.append(str(error))
        return runnable, problems

    def _notebook_problems(self) -> list[str]:
        problems = list(self.lane_problems)
        if not self.course_run:
            return problems
        runnable, unreadable = self._expected_notebooks()
        problems += unreadable
        where = _relative(self.course_dir)
        if not runnable and not unreadable:
            problems.append(f"--require-all-runnable: no course notebook found in {where}/")
        not_collected = [n for n in runnable if n not in self.notebooks]
        if runnable and not self.notebooks:
            problems.append(f"no notebook was collected although {where}/ has {len(runnable)} that this machine "
                            "can run; a course run (--require-all-runnable) runs them all: check testpaths, "
                            "the path arguments and nbval (for part of the tests, run pytest without "
                            "--require-all-runnable)")
        elif not_collected:
            problems.append(f"runnable here but not collected: {', '.join(not_collected)} (a course run "
                            "runs every notebook; run pytest without --require-all-runnable for part of them)")
        for name, entry in sorted(self.notebooks.items()):
            if name in runnable or not entry.missing:
                if entry.deselected:
                    problems.append(f"runnable here but not executed: {name} ({entry.deselected} of its "
                                    f"{entry.cells} cells deselected with -k/-m)")
                elif entry.passed + entry.failed < entry.cells - entry.deselected:
                    problems.append(f"runnable here but not executed: {name} ({entry.skipped} of its "
                                    f"{entry.cells} cells skipped)")
        problems += self.gate_problems
        return problems

    def _clean_run_problems(self) -> list[str]:
        problems = []
        if self.git is not None:
            after, why = _git_status(REPO)
            if after is None:
                problems.append(f"git status stopped working during the run ({why})")
            else:
                new = sorted(after - self.git)
                if new:
                    problems.append("files left outside git-ignored folders: " + "; ".join(new))
        elif self.tree is not None:
            after_tree = _tree_snapshot(REPO)
            changed = sorted(f"?? {p}" for p in after_tree.keys() - self.tree.keys())
            changed += sorted(f" D {p}" for p in self.tree.keys() - after_tree.keys())
            changed += sorted(f" M {p}" for p in after_tree.keys() & self.tree.keys()
                              if after_tree[p] != self.tree[p])
            if changed:
                problems.append("files left outside git-ignored folders (file-tree snapshot, not a git "
                                "checkout): " + "; ".join(changed))
        deadline = time.monotonic() + 5
        while (leftovers := _children(os.getpid()) | _marked(self.token)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if leftovers:
            commands = [f"{pid}: {_command(pid)}" for pid in sorted(leftovers)]
            _stop(leftovers)
            problems.append("processes left running (stopped by the harness): " + "; ".join(commands))
        sockets = _listening_inodes() - self.sockets
        if sockets:
            problems.append(f"{len(sockets)} listening socket(s) left open by the test process")
        return problems

    def _report_path(self, lane: str) -> Path | None:
        choice = self.config.getoption("--run-report")
        if choice == "none":
            return None
        if choice != "auto":
            return Path(choice)
        prefix = "run" if self.course_run else "partial-run"
        return REPO / "build" / "reports" / f"{prefix}-{_slug(lane)}-{self.started.date().isoformat()}.json"

    def _write_report(self, problems: list[str], exitstatus: int) -> Path | None:
        from .. import lanes

        lane = lanes.current_lane().name
        path = self._report_path(lane)
        if path is None:
            return None
        machine = machine_info()
        date = self.started.date().isoformat()
        entries = []
        runnable = self._expected_notebooks()[0] if self.course_run else []
        for name in sorted(set(self.notebooks) | set(runnable)):
            entry = self.notebooks.get(name)
            if entry is None:
                result, reason = "not run", "not collected"
            elif entry.missing:
                result, reason = "skipped", "needs " + "; ".join(lanes.REQUIREMENT_MEANING[m] for m in entry.missing)
            elif entry.failed or entry.failure:
                result, reason = "failed", entry.failure
            elif entry.deselected or entry.passed < entry.cells:
                result = "not run"
                reason = f"{entry.deselected} cells deselected, {entry.skipped} skipped"
            else:
                result, reason = "passed", None
            entries.append({
                "notebook": name, "lane": lane, "date": date, "machine": _machine_label(machine),
                "result": result, "reason": reason, "wall_s": round(entry.wall_s, 2) if entry else 0.0,
                "cells": entry.cells if entry else 0, "cells_passed": entry.passed if entry else 0,
                "skipped_cells": entry.skipped_cells if entry and not entry.missing else [],
            })
        report = {
            "format": REPORT_FORMAT, "date": date, "started": self.started.isoformat(timespec="seconds"),
            "wall_s": round(time.monotonic() - self.clock, 1), "lane": lane,
            "capabilities": sorted(self._capabilities()), "course_run": self.course_run,
            "result": "passed" if exitstatus == 0 else "failed", "harness_problems": problems,
            "machine": machine, "notebooks": entries,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return path

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        problems = self._notebook_problems() + self._clean_run_problems()
        if problems:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        write = reporter.write_line if reporter is not None else (lambda *a, **k: None)
        write("")  # pytest has not ended its progress line yet
        if self.notebooks:
            executed = [n for n, e in self.notebooks.items() if not e.missing and e.passed + e.failed]
            skipped = {n: e.missing for n, e in sorted(self.notebooks.items()) if e.missing}
            write(f"notebooks: {len(executed)} executed, {len(skipped)} skipped for missing requirements "
                  f"({', '.join(f'{k}: {v}' for k, v in skipped.items()) or 'none'})")
            for name, entry in sorted(self.notebooks.items()):
                for cell in entry.skipped_cells if not entry.missing else []:
                    write(f"  {name} Cell {cell['cell']} skipped here (%%requires {' '.join(cell['requires'])}): "
                          f"{cell['reason']}")
        if self.notebooks or self.course_run:
            try:
                path = self._write_report(problems, int(session.exitstatus))
            except (OSError, ValueError) as error:
                write(f"HARNESS WARNING: could not write the run report ({error})", yellow=True)
            else:
                if path is not None:
                    write(f"run report: {_relative(path)}")
        for warning in self.pytest_report_header(self.config):  # again at the end: -q hides the header
            write(warning, yellow=True, bold=True)
        for problem in problems:
            write(f"HARNESS FAILURE: {problem}", red=True, bold=True)


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(path)
