"""The exercise contract in a notebook's cells, and the student edition built from it.

An exercise is four adjacent cells (COURSE.md):
1. markdown whose heading starts "Exercise N": the task, naming the results the check reads;
2. code, "your turn": those names set to the placeholder `...`;
3. code, the check: `cu.check_exercise("NN.N", name=name, ...)`;
4. code, the worked solution: tagged "solution", source and outputs collapsed, computing its
   own result under other names and calling the same check with `solution=True`.
`exercise_problems` lists where a notebook breaks that; `student_edition` removes the worked
solutions and clears the exercise cells' outputs; `write_student_editions` (`make student`)
writes every notebook's student edition into the git-ignored `build/student/`.
Plumbing: the notebook tests, `make student`.
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paths import build_dir, list_notebooks

if TYPE_CHECKING:
    import nbformat

__all__ = ["ExerciseCells", "exercise_cells", "exercise_problems", "student_edition", "write_student_editions",
           "SOLUTION_TAG", "run_student_editions"]

SOLUTION_TAG = "solution"
_TASK = re.compile(r"^#+\s*Exercise\s+(\d+)\b", re.IGNORECASE | re.MULTILINE)
_CHECK = re.compile(r"cu\.check_exercise\(\s*[\"'](\d\d)\.(\d+)[\"']")
_PLACEHOLDER = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?::[^=]+)?=\s*\.\.\.\s*(#.*)?$", re.MULTILINE)


@dataclass
class ExerciseCells:
    """The indices of one exercise's four cells in a notebook (None where a cell is missing)."""

    number: int
    task: int
    your_turn: int | None
    check: int | None
    solution: int | None


def _is_solution(cell: Any) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def exercise_cells(nb: nbformat.NotebookNode) -> list[ExerciseCells]:
    """Find each exercise's task, your-turn, check and solution cells. Plumbing: the tests."""
    found = []
    cells = nb.cells
    for index, cell in enumerate(cells):
        match = _TASK.search(cell.source) if cell.cell_type == "markdown" else None
        if not match:
            continue
        following = cells[index + 1:index + 4]
        slots: list[int | None] = []
        for offset, nxt in enumerate(following, start=index + 1):
            slots.append(offset if nxt.cell_type == "code" else None)
        slots += [None] * (3 - len(slots))
        found.append(ExerciseCells(int(match.group(1)), index, *slots))
    return found


def exercise_problems(nb: nbformat.NotebookNode, notebook_number: str) -> list[str]:
    """Where the notebook's exercises break the exercise contract (empty list = good).

    Plumbing: called by `check_structure`.
    """
    problems: list[str] = []
    blocks = exercise_cells(nb)
    if not blocks:
        return ["no exercises: add at least one '### Exercise 1' with its four cells"]
    numbers = [b.number for b in blocks]
    if numbers != list(range(1, len(blocks) + 1)):
        problems.append(f"exercises are numbered {numbers}; number them 1, 2, 3 ...")
    used = set()
    for block in blocks:
        name = f"Exercise {block.number}"
        if None in (block.your_turn, block.check, block.solution):
            problems.append(f"{name}: the task must be followed by three code cells: your turn, check, solution")
            continue
        turn, check, solution = (nb.cells[i] for i in (block.your_turn, block.check, block.solution))
        placeholders = _PLACEHOLDER.findall(turn.source)
        if not placeholders or _is_solution(turn):
            problems.append(f"{name}: the cell after the task must set the results to `...` (your turn)")
        ids = _CHECK.findall(check.source)
        wanted = (notebook_number, str(block.number))
        if ids != [wanted] or "solution=True" in check.source or _is_solution(check):
            problems.append(f"{name}: the second cell must be exactly one cu.check_exercise(\"{notebook_number}."
                            f"{block.number}\", ...) without solution=True")
        for variable, _comment in placeholders:
            if variable not in check.source:
                problems.append(f"{name}: the check does not read `{variable}`, which the your-turn cell sets")
        hidden = solution.get("metadata", {}).get("jupyter", {})
        if not _is_solution(solution):
            problems.append(f"{name}: the third cell must be the worked solution, tagged '{SOLUTION_TAG}'")
        if not (hidden.get("source_hidden") and hidden.get("outputs_hidden")):
            problems.append(f"{name}: the worked solution must be collapsed (source and outputs hidden)")
        if solution.get("outputs"):
            problems.append(f"{name}: the worked solution's outputs must not be committed (they show the answer)")
        if _CHECK.findall(solution.source) != [wanted] or "solution=True" not in solution.source:
            problems.append(f"{name}: the worked solution must run the same check with solution=True")
        for variable, _comment in placeholders:
            if re.search(rf"^\s*{re.escape(variable)}\s*=", solution.source, re.MULTILINE):
                problems.append(f"{name}: the worked solution overwrites the learner's `{variable}`; "
                                "use other names")
        used.add(wanted)
    solutions = [i for i, c in enumerate(nb.cells) if _is_solution(c)]
    expected = {b.solution for b in blocks}
    if set(solutions) - expected:
        problems.append("a cell tagged 'solution' is not the third cell of an exercise")
    last = nb.cells[-1] if nb.cells else None
    if last is not None and _is_solution(last):
        problems.append("the last cell (key facts) must not be a solution")
    return problems


def student_edition(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `nb` with worked solutions removed and the exercise cells' outputs cleared.

    Plumbing: `make student`.
    """
    student = copy.deepcopy(nb)
    clear = set()
    for block in exercise_cells(student):
        clear |= {i for i in (block.your_turn, block.check) if i is not None}
    for index in sorted(clear):
        cell = student.cells[index]
        cell.outputs = []
        cell.execution_count = None
    student.cells = [cell for cell in student.cells if not _is_solution(cell)]
    return student


def write_student_editions(out_dir: str | Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Write the student edition of every course notebook (or of `names`) into `out_dir`.

    Default `build/student/` (git-ignored). Never touches the committed notebooks.
    Plumbing: `make student`.
    """
    import nbformat

    target = Path(out_dir) if out_dir else build_dir("student")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in list_notebooks():
        if names and path.name not in names:
            continue
        student = student_edition(nbformat.read(path, as_version=4))
        out = target / path.name
        nbformat.write(student, out)
        written.append(out)
    return written


def run_student_editions(names: list[str], out_dir: Path) -> None:
    """Execute the student edition of each notebook in `names`, one after another, and write
    `<out_dir>/<name>.json` ({"ok", "error", "checks", "last", "wall_s"}) as each one finishes.

    The test suite starts this in a second process at the start of a run, so the student
    editions execute on the second core while the unit tests and nbval run on the first.
    Plumbing: tests/test_student_edition.py.
    """
    import json
    import time

    import nbformat
    from nbclient import NotebookClient

    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {p.name: p for p in list_notebooks()}
    for name in names:
        started = time.monotonic()
        result: dict[str, Any] = {"ok": False, "error": None, "checks": [], "last": ""}
        try:
            student = student_edition(nbformat.read(by_name[name], as_version=4))
            client = NotebookClient(student, timeout=600, kernel_name="python3",
                                    resources={"metadata": {"path": str(out_dir)}})
            try:
                client.execute()
                result["ok"] = True
            finally:
                nbformat.write(student, out_dir / name)

            def shown(cell: Any) -> str:
                return "".join(o.get("text", "") for o in cell.get("outputs", []))

            result["checks"] = [shown(student.cells[b.check]) for b in exercise_cells(student) if b.check is not None]
            result["last"] = shown(student.cells[-1])
        except Exception as error:  # reported to the test, which fails with it
            result["error"] = f"{type(error).__name__}: {error}"[-4000:]
        result["wall_s"] = round(time.monotonic() - started, 1)
        (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`python -m course_utils student [--out DIR] [NAMES]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_utils student",
                                     description="write the student edition (no worked solutions)")
    parser.add_argument("--out", default=None, help="folder to write into (default build/student)")
    parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--run", action="store_true", help="also execute them (results as JSON in --out)")
    args = parser.parse_args(argv)
    if args.run:
        out = Path(args.out) if args.out else build_dir("student-run")
        run_student_editions([Path(n).name for n in args.names] or [p.name for p in list_notebooks()], out)
        return 0
    written = write_student_editions(args.out, [Path(n).name for n in args.names] or None)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("no notebook matched", file=sys.stderr)
        return 2
    return 0
