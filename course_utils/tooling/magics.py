"""The `%%requires` cell magic: run a cell only where this machine has what it needs.

    %%requires gpu tensorrt-runtime
    engine = ...                      # runs on a GPU machine with TensorRT

Where a requirement is missing the cell body is not run and the cell prints one line saying
what it needs, so "Run All" on a laptop goes on to the next cell. Where the cell runs, its
output starts with the machine that produced it, so a committed GPU output always says where
it came from. `import course_utils` registers the magic in a Jupyter kernel; the test
harness reads the same first line to report skipped cells.
Plumbing: registered by `import course_utils as cu`; taught in 00_environment_check.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from ..lanes import REQUIREMENT_MEANING, capabilities, current_lane, gpu_info, missing_requirements

__all__ = ["register", "cell_requirements"]

_FIRST_LINE = re.compile(r"^%%requires\b(.*)$")


def cell_requirements(source: str) -> list[str] | None:
    """The requirements a cell declares with `%%requires ...` on its first line, or None.

    Plumbing: used by the magic and by the test harness.
    """
    first = source.lstrip("\n").split("\n", 1)[0].strip()
    found = _FIRST_LINE.match(first)
    return found.group(1).split() if found else None


def machine_label() -> str:
    """'NVIDIA H200 (compute capability 9.0), 2026-12-01': where a GPU cell ran, and when."""
    gpu = gpu_info()
    today = datetime.date.today().isoformat()
    if not gpu.available:
        return f"this CPU-only machine, {today}"
    major, minor = gpu.capability or (0, 0)
    return f"{gpu.name} (compute capability {major}.{minor}), {today}"


class _CellFailed(Exception):
    """Marks the magic's cell as failed after IPython already showed the real error once."""

    def _render_traceback_(self) -> list[str]:
        return ["(the error above came from this cell)"]


def requires(line: str, cell: str) -> Any:
    """`%%requires NAME ...`: run the cell only where every named requirement is met."""
    from IPython import get_ipython

    needs = line.split()
    if not needs:
        raise ValueError(f"%%requires needs at least one of {', '.join(REQUIREMENT_MEANING)}")
    missing = missing_requirements(needs, capabilities())
    if missing:
        wanted = "; ".join(REQUIREMENT_MEANING[name] for name in missing)
        print(f"Skipped on this machine ({current_lane().name} lane): this cell needs {wanted}.")
        return None
    print(f"[ran on {machine_label()}]")
    result = get_ipython().run_cell(cell, store_history=False)
    if not result.success:
        raise _CellFailed()
    return None


def register(shell: Any) -> None:
    """Register `%%requires` in an IPython shell. Plumbing: called by `import course_utils`."""
    shell.register_magic_function(requires, magic_kind="cell", magic_name="requires")
