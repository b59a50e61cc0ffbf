"""cu.expect_error: the error a lesson shows on purpose, printed readably; a changed premise fails."""

from __future__ import annotations

import pytest

import course_utils as cu


def test_the_expected_error_is_printed_and_kept(capsys) -> None:
    with cu.expect_error(ValueError, match="bad shape") as caught:
        raise ValueError("bad shape (2, 3)")
    assert caught.message == "bad shape (2, 3)"
    assert capsys.readouterr().out == "Expected error -> ValueError: bad shape (2, 3)\n"


def test_no_error_or_another_message_fails_the_lesson() -> None:
    with pytest.raises(AssertionError, match="ran without error"):
        with cu.expect_error(ValueError):
            pass
    with pytest.raises(AssertionError, match="expected an error matching 'opset 9'"):
        with cu.expect_error(ValueError, match="opset 9"):
            raise ValueError("opset 11")
    with pytest.raises(KeyError):  # an error of another type is not swallowed
        with cu.expect_error(ValueError):
            raise KeyError("x")


def test_addresses_colour_codes_repo_paths_and_long_lines_never_reach_the_output(capsys) -> None:
    root = str(cu.repo_root())
    long_line = "IR " + "x" * 1000
    with cu.expect_error(RuntimeError, show_lines=3, max_chars=50):
        raise RuntimeError(f"\x1b[31mboom\x1b[0m <object at 0x7f3a2b1c> in {root}/models/a.onnx\n"
                           f"{long_line}\nline 3\nline 4")
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "0x7f3a" not in out and root not in out
    assert "models/a.onnx" in out
    assert "x" * 60 not in out and "x ..." in out
    assert "line 3" in out and "line 4" not in out and out.rstrip().endswith("...")
