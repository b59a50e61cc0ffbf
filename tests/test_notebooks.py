"""Every committed notebook has the lesson shape, is clean, and carries outputs of a real run."""

from __future__ import annotations

import json
import re
import subprocess

import nbformat
import pytest

import course_utils as cu
from course_utils.tooling.notebooks import clean_notebook, has_uncommitted_edits, is_clean

NOTEBOOKS = cu.list_notebooks()
# Requirements that the CPU lane (and CI) satisfy: TensorRT-RTX builds on a CPU.
CPU_LANE = {"tensorrt-builder", "tensorrt-rtx"}


def test_the_course_has_notebooks_in_order() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names and names[0] == "00_environment_check.ipynb"
    numbers = [int(n[:2]) for n in names]
    assert numbers == sorted(set(numbers)), "two notebooks share a number"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_shape(path) -> None:
    assert cu.check_structure(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path) -> None:
    nb = json.loads(path.read_text())
    assert set(nb["metadata"]) <= {"kernelspec", "language_info", "course"}
    for cell in nb["cells"]:
        assert set(cell.get("metadata", {})) <= {"tags", "jupyter", "collapsed"}, cell["metadata"]
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"error output in {path.name}: {output}"
    assert is_clean(path), f"{path.name} is not clean: run `python -m course_utils refresh`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_come_from_a_real_run(path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    if set(cu.notebook_requirements(path)) <= CPU_LANE:
        assert None not in counts, f"{path.name}: some cells were never run"
        assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom"
    else:  # GPU notebooks: outputs only where a GPU truly ran them (noted in metadata)
        ran_on = nb.metadata.get("course", {}).get("executed_on")
        if ran_on is None:
            assert all(not c.outputs for c in code), f"{path.name}: outputs without a GPU run"


def test_committed_language_info_is_what_this_kernel_reports() -> None:
    # JupyterLab marks a notebook modified on open when its language_info differs from the kernel's.
    import platform

    from course_utils.tooling.launch import kernel_language_info
    from course_utils.tooling.notebooks import LANGUAGE_INFO

    assert {**LANGUAGE_INFO, "version": platform.python_version()} == kernel_language_info()


def test_clean_notebook_strips_editor_state() -> None:
    nb = nbformat.v4.new_notebook(metadata={"widgets": {}, "course": {"requires": []}})
    cell = nbformat.v4.new_code_cell("1", metadata={"execution": {"iopub.status.idle": "2026"}, "scrolled": True,
                                                    "tags": ["x"]})
    nb.cells.append(cell)
    clean_notebook(nb)
    assert set(nb.metadata) == {"kernelspec", "language_info", "course"}
    assert nb.cells[0].metadata == {"tags": ["x"]}


def test_check_structure_lists_what_is_missing(tmp_path) -> None:
    path = tmp_path / "99_bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    problems = cu.check_structure(path)
    assert any("first cell" in p for p in problems)
    assert any("Summary" in p for p in problems) and any("Exercises" in p for p in problems)
    assert any("last cell" in p for p in problems)


def test_damaged_notebook_gives_a_clear_error(tmp_path) -> None:
    path = tmp_path / "01_broken.ipynb"
    path.write_text("{ not json")
    with pytest.raises(cu.CourseError, match="not a readable notebook"):
        cu.notebook_requirements(path)


def test_unknown_requirement_is_refused(tmp_path) -> None:
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(metadata={"course": {"requires": ["quantum"]}}), path)
    with pytest.raises(cu.CourseError, match="unknown requirements"):
        cu.notebook_requirements(path)


def test_refresh_refuses_a_notebook_with_uncommitted_edits(tmp_path, monkeypatch) -> None:
    # A throwaway git repository so the real notebooks are never touched.
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    notebook = repo / "notebooks" / "00_a.ipynb"
    nbformat.write(nbformat.v4.new_notebook(metadata={"course": {"requires": []}}), notebook)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    monkeypatch.setattr(cu.tooling.notebooks, "repo_root", lambda: repo)
    monkeypatch.setattr(cu.tooling.notebooks, "list_notebooks", lambda: [notebook])
    assert not has_uncommitted_edits(notebook)
    notebook.write_text(notebook.read_text().replace('"cells": []', '"cells": [] '))
    assert has_uncommitted_edits(notebook)
    before = notebook.read_text()
    assert cu.tooling.notebooks.refresh(["00_a.ipynb"]) == 1
    assert notebook.read_text() == before


# An absolute path into the repository's generated folders, e.g. /home/me/course/models/x.onnx.
_ABSOLUTE_REPO_PATH = re.compile(r"(?<![\w.<>])/(?:[\w.-]+/)+(?:models|build|notebooks)/")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_read_well_on_the_web(path) -> None:
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            where = f"{path.name} cell {index}"
            assert "\x1b[" not in text, f"{where}: ANSI escape codes in a committed output"
            assert str(cu.repo_root()) not in text, f"{where}: shows this machine's repository path"
            found = _ABSOLUTE_REPO_PATH.search(text)
            assert not found, f"{where}: absolute path {found.group(0)!r}; print it relative to the repo"


def test_clean_notebook_merges_a_print_split_by_a_busy_kernel() -> None:
    nb = nbformat.v4.new_notebook(metadata={"course": {"requires": []}})
    cell = nbformat.v4.new_code_cell("print('a'); print('b')")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="b\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="w\n")]
    nb.cells.append(cell)
    clean_notebook(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [("stdout", "a\nb\n"), ("stderr", "w\n")]
