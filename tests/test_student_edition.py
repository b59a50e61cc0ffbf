"""The student edition of every notebook (worked solutions removed): nothing of a solution survives,
the lesson keeps its outputs, and it runs top to bottom green with every exercise "not attempted"."""

from __future__ import annotations

import re

import nbformat
import pytest

import course_utils as cu
from course_utils.tooling.student import SOLUTION_TAG, exercise_cells, student_edition

NOTEBOOKS = cu.list_notebooks()


def _runnable(path) -> bool:
    return not cu.missing_requirements(cu.notebook_requirements(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_solution_survives_and_the_lesson_keeps_its_outputs(path) -> None:
    full = nbformat.read(path, as_version=4)
    student = student_edition(full)
    solutions = [c for c in full.cells if SOLUTION_TAG in c.metadata.get("tags", [])]
    assert solutions, f"{path.name} has no worked solutions"
    text = "\n".join(c.source for c in student.cells)
    assert "solution=True" not in text and "Worked solution" not in text
    # A solution line that the lesson itself also has (an import, a plotting call) reveals nothing.
    lesson = set("\n".join(c.source for c in full.cells if SOLUTION_TAG not in c.metadata.get("tags", [])).splitlines())
    for cell in solutions:
        body = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        revealing = [ln for ln in body if len(ln.strip()) > 25 and ln not in lesson]
        assert revealing, f"{path.name}: a worked solution only repeats lesson lines"
        assert not any(line in text for line in revealing), f"{path.name}: solution text survives"
    # Every lesson cell before the exercises is unchanged, outputs included.
    first_exercise = exercise_cells(full)[0].task
    assert student.cells[:first_exercise] == full.cells[:first_exercise]
    for block in exercise_cells(student):
        for index in (block.your_turn, block.check):
            assert student.cells[index].outputs == []


def test_write_student_editions_writes_every_notebook(tmp_path) -> None:
    from course_utils.tooling.student import write_student_editions

    written = write_student_editions(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in written:
        tagged = [c for c in nbformat.read(path, as_version=4).cells if SOLUTION_TAG in c.metadata.get("tags", [])]
        assert not tagged, f"{path.name} keeps {len(tagged)} worked solution(s)"


@pytest.mark.student_run
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _runnable(p)], ids=lambda p: p.name)
def test_the_student_edition_runs_green_with_every_exercise_not_attempted(path, student_result) -> None:
    result = student_result(path.name)  # tests/conftest.py runs them in a second process
    assert result["ok"], f"{path.name}'s student edition failed: {result['error']}"
    assert result["checks"], f"{path.name}: no check cell ran"
    for shown in result["checks"]:
        assert re.search(r"Exercise \d\d\.\d+ · not attempted yet", shown), f"{path.name}: {shown!r}"
    assert re.match(r"\d\d OK", result["last"]), f"{path.name}: the key-facts cell printed {result['last']!r}"
