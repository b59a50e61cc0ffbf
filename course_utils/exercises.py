"""Exercise checks: tell a learner "not attempted yet", exactly what is wrong, or "correct".

Every exercise of the course has four cells (COURSE.md, the exercise contract):

    ### Exercise 2 ...                       task: what to do, and the names the check reads
    ex2_error = ...                          your turn: placeholders (`...`)
    cu.check_exercise("01.2", ex2_error=ex2_error)            the check
    cu.check_exercise("01.2", ex2_error=my_error, solution=True)   worked solution (collapsed)

The check of each exercise lives in `course_utils/exercise_bank/nbNN.py`, registered with
`@exercise(...)`. It computes the right answer itself (nothing above the solution reveals it)
or checks properties of the learner's result, and raises `Wrong` with a specific message
built by the `expect_*` helpers below (wrong type, wrong shape, which element, by how much).
Each registered exercise also lists planted wrong answers; the tests prove every one of them
is rejected with its message, that the placeholder reads as "not attempted", and (in the
notebook run) that the worked solution passes.
Taught in: every notebook's Exercises section (first in 00_environment_check).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import CourseError

__all__ = [
    "check_exercise", "judge_exercise", "CheckResult", "Exercise", "exercise", "Wrong", "registered_exercises",
    "expect_type", "expect_close", "expect_equal", "expect_array", "expect_sequence", "expect_set", "expect_true",
]

NOT_ATTEMPTED, WRONG, RIGHT = "not attempted", "wrong", "right"
_ID = re.compile(r"^(\d\d)\.(\d+)$")


class Wrong(Exception):
    """Raised by an exercise's judge: the message says exactly what is wrong with the answer."""


@dataclass
class Exercise:
    """One exercise: the names it reads, two hints, its judge and planted wrong answers."""

    id: str
    answers: dict[str, str]  # name -> the type the task asks for, as the learner reads it
    hint: str  # first hint, shown while the placeholder is still there
    hint2: str  # second hint, shown with a wrong answer
    judge: Callable[..., str | None]  # raises Wrong; may return a short "why it matters" note
    wrong: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (answers, message regex)
    context: Callable[[], dict[str, Any]] | None = None  # builds the lesson objects a judge needs, for tests


@dataclass(frozen=True)
class CheckResult:
    """What a check said: status ("not attempted", "wrong", "right") and the message shown."""

    exercise: str
    status: str
    message: str

    @property
    def right(self) -> bool:
        return self.status == RIGHT

    def __str__(self) -> str:
        return self.message


_REGISTRY: dict[str, Exercise] = {}


def exercise(
    id: str, *, answers: dict[str, str], hint: str, hint2: str,
    wrong: Sequence[tuple[dict[str, Any], str]] = (), context: Callable[[], dict[str, Any]] | None = None,
) -> Callable[[Callable[..., str | None]], Callable[..., str | None]]:
    """Register the decorated judge as exercise `id` ("NN.M"). Plumbing: used in exercise_bank/."""
    if not _ID.match(id):
        raise ValueError(f"exercise ids look like '01.2', got {id!r}")

    def register(judge: Callable[..., str | None]) -> Callable[..., str | None]:
        if id in _REGISTRY:
            raise ValueError(f"exercise {id} is registered twice")
        _REGISTRY[id] = Exercise(id, dict(answers), hint, hint2, judge, list(wrong), context)
        return judge

    return register


def _load_bank(notebook: str) -> None:
    try:
        importlib.import_module(f".exercise_bank.nb{notebook}", __package__)
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.exercise_bank.nb{notebook}":
            raise


def registered_exercises() -> dict[str, Exercise]:
    """Every exercise of every notebook, by id. Plumbing: the tests iterate over it."""
    from pathlib import Path

    bank = Path(__file__).parent / "exercise_bank"
    for path in sorted(bank.glob("nb[0-9][0-9].py")):
        _load_bank(path.stem[2:])
    return dict(sorted(_REGISTRY.items()))


def _lookup(exercise_id: str) -> Exercise:
    found = _ID.match(str(exercise_id))
    if not found:
        raise CourseError(f"Exercise ids look like '01.2' (notebook.number), got {exercise_id!r}.")
    _load_bank(found.group(1))
    if exercise_id not in _REGISTRY:
        known = ", ".join(k for k in sorted(_REGISTRY) if k.startswith(found.group(1) + ".")) or "none"
        raise CourseError(f"There is no exercise {exercise_id}; this notebook's exercises are: {known}.")
    return _REGISTRY[exercise_id]


def judge_exercise(exercise_id: str, /, **values: Any) -> CheckResult:
    """Judge the learner's values for one exercise without printing. Plumbing: used by the tests."""
    ex = _lookup(exercise_id)
    answers = {name: values.pop(name) for name in list(values) if name in ex.answers}
    missing = [name for name in ex.answers if name not in answers]
    if missing:
        raise CourseError(
            f"Exercise {exercise_id} reads {', '.join(ex.answers)}; pass "
            + ", ".join(f"{name}={name}" for name in missing) + " to cu.check_exercise."
        )
    title = f"Exercise {exercise_id}"
    placeholders = [name for name, value in answers.items() if value is Ellipsis]
    if placeholders:
        wanted = ", ".join(f"`{name}` ({ex.answers[name]})" for name in placeholders)
        text = (f"{title} · not attempted yet. Set {wanted} in the cell above, then run this cell again.\n"
                f"  Hint: {ex.hint}")
        return CheckResult(exercise_id, NOT_ATTEMPTED, text)
    try:
        note = ex.judge(**answers, **values)
    except Wrong as problem:
        return CheckResult(exercise_id, WRONG, f"{title} · not right yet: {problem}\n  Hint: {ex.hint2}")
    except Exception as error:  # the learner's value broke the judge: say so, never a deep traceback
        why = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        return CheckResult(exercise_id, WRONG, f"{title} · not right yet: checking your answer raised {why}\n"
                                               f"  Hint: {ex.hint2}")
    return CheckResult(exercise_id, RIGHT, f"{title} · correct." + (f" {note}" if note else ""))


def check_exercise(exercise_id: str, /, solution: bool = False, **values: Any) -> None:
    """Check a learner's answer to exercise `exercise_id` and print what the check found.

    Prints "not attempted yet" and a first hint while a placeholder (`...`) is still there;
    exactly what is wrong and a second hint for a wrong value; "correct" otherwise. Never
    raises for a learner's answer. A worked solution passes `solution=True`: then anything but
    "correct" raises, because the lesson itself is broken.
    Taught in: every notebook's Exercises section (first in 00_environment_check).
    """
    result = judge_exercise(exercise_id, **values)
    if solution:
        if not result.right:
            raise AssertionError(f"the worked solution of exercise {exercise_id} fails its own check:\n{result}")
        print(f"Exercise {exercise_id} · the worked solution passes its check.")  # says nothing of the answer
        return
    print(result.message)


# --- helpers that judges use to say exactly what is wrong ---------------------------------------

def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def expect_type(name: str, value: Any, types: type | tuple[type, ...], described: str = "") -> None:
    """Raise Wrong unless `value` is an instance of `types`. Plumbing: for exercise judges."""
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        pass  # True is an int to Python, never the number a task asks for
    elif isinstance(value, types):
        return
    wanted = described or " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    raise Wrong(f"`{name}` should be {wanted}, but it is {type(value).__name__} {_show(value)}.")


def expect_close(name: str, value: Any, want: float, rtol: float = 1e-3, atol: float = 0.0, unit: str = "") -> None:
    """Raise Wrong unless `value` is a number within rtol/atol of `want`, saying by how much.

    Plumbing: for exercise judges.
    """
    try:
        import numpy as np

        if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
            value = value.item()
    except ImportError:
        pass
    expect_type(name, value, (int, float), "a number")
    suffix = f" {unit}" if unit else ""
    if math.isnan(value):
        raise Wrong(f"`{name}` is NaN; expected about {want:.4g}{suffix}.")
    off = value - want
    if abs(off) > atol + rtol * abs(want):
        ratio = abs(value / want) if want else 0.0
        if want and (ratio >= 10 or 0 < ratio <= 0.1):  # a unit or scale slip reads better as a ratio
            relative = f", {ratio:.3g}x the expected value"
        else:
            relative = f", {abs(off) / abs(want):.1%}" if want else ""
        raise Wrong(f"`{name}` = {value:.6g}{suffix}, expected {want:.6g}{suffix} "
                    f"(off by {off:+.3g}{suffix}{relative}).")


def expect_equal(name: str, value: Any, want: Any) -> None:
    """Raise Wrong unless `value == want` (same type family), showing both. Plumbing: for judges."""
    if isinstance(want, list | tuple) and isinstance(value, list | tuple):
        expect_sequence(name, value, want)
        return
    if type(want) in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
        pass
    elif not isinstance(value, type(want)):
        raise Wrong(f"`{name}` should be {type(want).__name__}, but it is {type(value).__name__} {_show(value)}.")
    if value != want:
        raise Wrong(f"`{name}` is {_show(value)}, expected {_show(want)}.")


def expect_sequence(name: str, value: Any, want: Sequence[Any]) -> None:
    """Raise Wrong unless `value` is a list/tuple equal to `want`: says which position differs,
    or which items are missing or extra. Plumbing: for exercise judges."""
    expect_type(name, value, (list, tuple), "a list")
    value = list(value)
    want = list(want)
    for index, (got, expected) in enumerate(zip(value, want, strict=False)):
        if got != expected:
            right = f" (the first {index} item(s) are right)" if index else ""
            raise Wrong(f"`{name}[{index}]` is {_show(got)}, expected {_show(expected)}{right}.")
    if len(value) < len(want):
        raise Wrong(f"`{name}` has {len(value)} item(s), expected {len(want)}: "
                    f"missing {_show(want[len(value):])} at the end.")
    if len(value) > len(want):
        raise Wrong(f"`{name}` has {len(value)} item(s), expected {len(want)}: "
                    f"extra {_show(value[len(want):])} at the end.")


def expect_set(name: str, value: Any, want: Iterable[Any]) -> None:
    """Raise Wrong unless `value` holds exactly the items of `want` (order ignored), naming the
    missing and the extra ones. Plumbing: for exercise judges."""
    expect_type(name, value, (list, tuple, set, frozenset), "a list or set")
    got, expected = set(value), set(want)
    missing, extra = sorted(expected - got, key=str), sorted(got - expected, key=str)
    if missing or extra:
        parts = ([f"missing {_show(missing)}"] if missing else []) + ([f"unexpected {_show(extra)}"] if extra else [])
        raise Wrong(f"`{name}` is not the right set: " + "; ".join(parts) + ".")


def expect_array(name: str, value: Any, want: Any, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Raise Wrong unless `value` is an array (numpy or torch) of `want`'s shape whose elements are
    close to it; names the worst element and its error. Plumbing: for exercise judges."""
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray | list | tuple):
        raise Wrong(f"`{name}` should be an array, but it is {type(value).__name__} {_show(value)}.")
    try:
        got = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise Wrong(f"`{name}` cannot be read as an array of numbers ({error}).") from None
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise Wrong(f"`{name}` has shape {tuple(got.shape)}, expected {tuple(want.shape)}.")
    if np.isnan(got).any():
        index = tuple(int(i) for i in np.argwhere(np.isnan(got))[0])
        raise Wrong(f"`{name}{list(index)}` is NaN.")
    error = np.abs(got - want)
    bad = error > atol + rtol * np.abs(want)
    if bad.any():
        index = np.unravel_index(int(np.argmax(np.where(bad, error, -1))), got.shape)
        where = list(int(i) for i in index)
        raise Wrong(f"{int(bad.sum())} of {got.size} elements differ; the worst is `{name}{where}` = "
                    f"{got[index]:.6g}, expected {want[index]:.6g} (off by {got[index] - want[index]:+.3g}).")


def expect_true(condition: bool, message: str) -> None:
    """Raise Wrong(message) unless `condition`. Plumbing: for exercise judges."""
    if not condition:
        raise Wrong(message)
