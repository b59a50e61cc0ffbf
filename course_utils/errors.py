"""The one exception type the course raises for problems a learner can fix.

Every helper in `course_utils` turns low-level failures (protobuf parse errors, missing
packages, unwritable folders) into a `CourseError` whose message says what is wrong and
what to do. Notebooks catch nothing: the message itself is the lesson.
Taught in: 00_environment_check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CourseError", "MissingDependencyError", "CaughtError", "expect_error"]


class CourseError(RuntimeError):
    """A clear, actionable error: what went wrong and the command or step that fixes it."""


class MissingDependencyError(CourseError, ImportError):
    """A package the course needs is not importable; the message names the install command."""

    def __init__(self, package: str, install: str, needed_for: str = "") -> None:
        self.package = package
        self.install = install
        purpose = f" (needed for {needed_for})" if needed_for else ""
        super().__init__(f"{package} is not installed{purpose}. Install it with:\n    {install}")


@dataclass
class CaughtError:
    """What `expect_error` caught: the exception, once the `with` block has ended."""

    error: BaseException | None = None

    @property
    def message(self) -> str:
        return "" if self.error is None else str(self.error)


@contextmanager
def expect_error(
    *types: type[BaseException], match: str | None = None, show_lines: int = 6, max_chars: int = 400
) -> Iterator[CaughtError]:
    """Run a block that is *meant* to fail, print the error as the lesson, and keep going.

    Fails loudly (AssertionError) if nothing is raised or the message does not match
    `match` (a regex): then the lesson's premise has changed and the notebook must say so.
    At most `show_lines` lines are shown, each cut at `max_chars` characters.
    Notebooks use it instead of leaving an error output in a cell.
    Taught in: 05_unsupported_operators (and every notebook that shows a real error).
    """
    wanted = types or (Exception,)
    caught = CaughtError()
    try:
        yield caught
    except wanted as error:
        if match is not None and not re.search(match, str(error), re.DOTALL):
            raise AssertionError(
                f"expected an error matching {match!r}, got {type(error).__name__}: {error}"
            ) from error
        caught.error = error
        # The lesson is the message, not where this checkout lives: show repo paths relative.
        root = str(Path(__file__).resolve().parent.parent) + os.sep
        # No ANSI colour codes or memory addresses in a lesson's output either.
        text = re.sub(r" at 0x[0-9a-fA-F]+", "", re.sub(r"\x1b\[[0-9;]*m", "", str(error)))
        lines = text.replace(root, "").strip().splitlines() or [""]
        lines = [line if len(line) <= max_chars else line[:max_chars].rstrip() + " ..." for line in lines]
        shown = "\n    ".join(lines[:show_lines]) + ("\n    ..." if len(lines) > show_lines else "")
        print(f"Expected error -> {type(error).__name__}: {shown}")
        return
    names = ", ".join(t.__name__ for t in wanted)
    raise AssertionError(
        f"expected {names} but the block ran without error: the behaviour this cell "
        "demonstrates has changed (a newer library?); update the lesson."
    )
