"""Every exercise check of every notebook: the placeholder reads "not attempted", each planted
wrong answer is rejected with its specific message and the second hint, and the notebooks call
exactly the exercises that are registered. (The notebook run proves each worked solution passes.)"""

from __future__ import annotations

import json
import re

import pytest

import course_utils as cu
from course_utils.exercises import NOT_ATTEMPTED, RIGHT, WRONG, judge_exercise

EXERCISES = cu.registered_exercises()


def _context(exercise: cu.Exercise) -> dict:
    return exercise.context() if exercise.context else {}


@pytest.mark.parametrize("exercise", EXERCISES.values(), ids=lambda e: e.id)
def test_the_placeholder_reads_not_attempted(exercise) -> None:
    result = judge_exercise(exercise.id, **{name: ... for name in exercise.answers})
    assert result.status == NOT_ATTEMPTED, result.message
    assert "not attempted yet" in result.message and exercise.hint in result.message
    for name in exercise.answers:
        assert f"`{name}`" in result.message


@pytest.mark.parametrize("exercise", EXERCISES.values(), ids=lambda e: e.id)
def test_planted_wrong_answers_are_rejected_with_a_specific_message(exercise) -> None:
    assert exercise.wrong, f"exercise {exercise.id} lists no planted wrong answer"
    context = _context(exercise)
    for answers, pattern in exercise.wrong:
        result = judge_exercise(exercise.id, **answers, **context)
        assert result.status == WRONG, f"{exercise.id} accepted the planted wrong answer {answers}"
        assert re.search(pattern, result.message), f"{exercise.id}: {result.message!r} does not match {pattern!r}"
        assert exercise.hint2 in result.message


def test_a_value_that_breaks_the_judge_is_reported_not_raised() -> None:
    result = judge_exercise("00.1", ex1_runs_with={name: object() for name in ("a",)})
    assert result.status == WRONG and "missing" in result.message


def test_unknown_exercise_and_missing_names_are_clear_errors() -> None:
    with pytest.raises(cu.CourseError, match="There is no exercise 00.99"):
        judge_exercise("00.99", x=1)
    with pytest.raises(cu.CourseError, match="ids look like"):
        judge_exercise("zero.one", x=1)
    with pytest.raises(cu.CourseError, match="pass ex1_runs_with=ex1_runs_with"):
        judge_exercise("00.1")


def test_a_worked_solution_that_fails_its_check_raises(capsys) -> None:
    with pytest.raises(AssertionError, match="worked solution of exercise 00.1 fails"):
        cu.check_exercise("00.1", ex1_runs_with={}, solution=True)
    cu.check_exercise("00.1", ex1_runs_with=...)  # a learner's placeholder never raises
    assert "not attempted yet" in capsys.readouterr().out


def test_right_answers_are_confirmed() -> None:
    from course_utils.exercise_bank import nb00

    result = judge_exercise("00.1", ex1_runs_with=nb00._runs_with(nb00.CLASSROOM_GPUS))
    assert result.status == RIGHT and "correct" in result.message


@pytest.mark.parametrize(
    ("helper", "args", "message"),
    [
        (cu.expect_close, ("x", 1.2, 1.0), r"`x` = 1\.2, expected 1 \(off by \+0\.2, 20\.0%\)"),
        (cu.expect_close, ("x", float("nan"), 1.0), r"`x` is NaN"),
        (cu.expect_close, ("x", "1.0", 1.0), r"`x` should be a number, but it is str"),
        (cu.expect_close, ("x", True, 1.0), r"should be a number, but it is bool"),
        (cu.expect_sequence, ("ops", ["Conv", "Add"], ["Conv", "Relu"]), r"`ops\[1\]` is 'Add', expected 'Relu'"),
        (cu.expect_sequence, ("ops", ["Conv"], ["Conv", "Relu"]), r"missing \['Relu'\] at the end"),
        (cu.expect_sequence, ("ops", ["Conv", "Relu", "Add"], ["Conv", "Relu"]), r"extra \['Add'\]"),
        (cu.expect_set, ("s", {"a", "c"}, {"a", "b"}), r"missing \['b'\]; unexpected \['c'\]"),
        (cu.expect_array, ("w", [[1.0, 2.0]], [[1.0, 2.5]]), r"1 of 2 elements differ; the worst is `w\[0, 1\]` = 2"),
        (cu.expect_array, ("w", [1.0, 2.0], [[1.0, 2.0]]), r"has shape \(2,\), expected \(1, 2\)"),
        (cu.expect_array, ("w", "abc", [1.0]), r"should be an array"),
        (cu.expect_array, ("w", [1.0, float("nan")], [1.0, 2.0]), r"`w\[1\]` is NaN"),
        (cu.expect_equal, ("n", 3, 4), r"`n` is 3, expected 4"),
        (cu.expect_equal, ("n", "3", 3), r"should be int, but it is str"),
    ],
)
def test_each_expect_helper_says_exactly_what_is_wrong(helper, args, message) -> None:
    with pytest.raises(cu.Wrong, match=message):
        helper(*args)


def test_expect_helpers_accept_right_values() -> None:
    import numpy as np

    cu.expect_close("x", 1.0005, 1.0, rtol=1e-3)
    cu.expect_close("x", np.float32(2.0), 2.0)
    cu.expect_array("w", np.ones((2, 2)), [[1, 1], [1, 1]])
    cu.expect_sequence("ops", ("Conv", "Relu"), ["Conv", "Relu"])
    cu.expect_set("s", ["b", "a"], {"a", "b"})
    cu.expect_equal("n", 3.0, 3)


def test_every_exercise_a_notebook_checks_is_registered_and_every_registered_one_is_used() -> None:
    used = set()
    for path in cu.list_notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            used |= {f"{a}.{b}" for a, b in re.findall(r"check_exercise\(\s*[\"'](\d\d)\.(\d+)", source)}
    assert used - set(EXERCISES) == set(), f"checked in a notebook but not registered: {sorted(used - set(EXERCISES))}"
    assert set(EXERCISES) - used == set(), f"registered but no notebook uses it: {sorted(set(EXERCISES) - used)}"


def test_a_unit_slip_reads_as_a_ratio() -> None:
    with pytest.raises(cu.Wrong, match=r"1e\+12x the expected value"):
        cu.expect_close("tflops", 250e12, 250.0)
    with pytest.raises(cu.Wrong, match=r"0\.001x the expected value"):
        cu.expect_close("ms", 0.004, 4.0)
