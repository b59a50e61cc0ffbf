"""Course plumbing for the notebooks themselves: requirements, cleaning, shape check, refresh.

- Each notebook declares what it needs in `metadata.course.requires` (see `lanes`); the
  tests skip it where those are missing.
- `clean_notebook` strips what editors add (timings, UI state) so committed notebooks diff well.
- `check_structure` lists where a notebook departs from the course's lesson shape.
- `python -m course_utils refresh [NAMES]` re-executes notebooks in place so their
  committed outputs are fresh; it refuses a notebook with uncommitted edits.
Plumbing for maintainers (make refresh-notebooks, the tests).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CourseError
from ..lanes import capabilities, notebook_requirements
from ..paths import list_notebooks, repo_root
from .student import SOLUTION_TAG, exercise_problems

if TYPE_CHECKING:
    import nbformat

__all__ = ["check_structure", "clean_notebook", "is_clean", "read_notebook", "refresh"]

_KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info", "course")
_KEEP_CELL_METADATA = ("tags", "jupyter", "collapsed")
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
#: What ipykernel 7.4 reports as `language_info` (JupyterLab writes it into the notebook when the
#: kernel connects and marks the notebook modified if it differs), less the Python version.
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
    "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read a notebook, with a clear error for a missing or damaged file. Plumbing: notebook tools."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise CourseError(f"No notebook at {path}.")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:
        raise CourseError(
            f"{path} is not a readable notebook ({type(error).__name__}: {error}). "
            "Restore it with `git checkout -- <file>`."
        ) from None


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip editor state (timings, scroll flags) in place. Plumbing: refresh and the tests.

    What is kept is what JupyterLab 4.6 itself writes, so that opening a notebook (and even
    saving it unchanged) leaves the file as it is: the kernel's full `language_info` (the
    Python version of the run that made the outputs, or this Python's), and `collapsed`
    mirroring `jupyter.outputs_hidden` on code cells.
    """
    import platform

    import nbformat

    version = nb.metadata.get("language_info", {}).get("version") or platform.python_version()
    nb.metadata = nbformat.from_dict(
        {key: nb.metadata[key] for key in _KEEP_NOTEBOOK_METADATA if key in nb.metadata}
    )
    nb.metadata["kernelspec"] = nbformat.from_dict(_KERNELSPEC)
    nb.metadata["language_info"] = nbformat.from_dict({**LANGUAGE_INFO, "version": version})
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict(
            {key: cell.metadata[key] for key in _KEEP_CELL_METADATA if key in cell.metadata}
        )
        hidden = cell.metadata.get("jupyter", {}).get("outputs_hidden")
        if cell.cell_type == "code" and hidden is not None:
            cell.metadata["collapsed"] = bool(hidden)
        else:
            cell.metadata.pop("collapsed", None)
        if cell.cell_type == "code":
            if SOLUTION_TAG in cell.metadata.get("tags", []):
                cell.outputs = []  # a worked solution's output is its answer: never committed
            cell.outputs = _coalesce_streams(cell.get("outputs", []))
            for output in cell.get("outputs", []):
                if "metadata" in output and not output["metadata"]:
                    output["metadata"] = {}
    return nb


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive outputs of the same stream (a busy kernel splits one print into several)."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = previous["text"] + output["text"]
        else:
            merged.append(output)
    return merged


def is_clean(path: str | Path) -> bool:
    """True when the file on disk is exactly what `clean_notebook` would write. Plumbing: the tests."""
    import nbformat

    text = Path(path).read_text(encoding="utf-8")
    cleaned = clean_notebook(nbformat.reads(text, as_version=4))
    return nbformat.writes(cleaned) + "\n" == text or nbformat.writes(cleaned) == text


def _headings(nb: nbformat.NotebookNode) -> list[str]:
    found = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found += [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
    return found


def check_structure(path: str | Path) -> list[str]:
    """Where a notebook departs from the lesson shape of COURSE.md (empty list = good).

    Shape: title + purpose; "What you will learn"; "Prerequisites" with "GPU: yes/no";
    "Setup" followed by a code cell importing `course_utils as cu`; numbered steps;
    "Summary" with a Chinese 本节要点; "Exercises" that follow the exercise contract
    (`tooling.student.exercise_problems`); a last code cell that asserts and prints one line.
    Plumbing: used by tests/test_notebooks.py and `python -m course_utils check`.
    """
    nb = read_notebook(path)
    problems: list[str] = []
    cells = nb.cells
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.startswith("# "):
        problems.append("the first cell must be markdown starting with '# Title'")
    elif len([ln for ln in cells[0].source.splitlines()[1:] if ln.strip()]) < 1:
        problems.append("the first cell needs a one-line purpose under the title")
    heads = [h.lower() for h in _headings(nb)]
    for wanted in ("what you will learn", "prerequisites", "setup", "summary", "exercises"):
        if not any(h.startswith(wanted) for h in heads):
            problems.append(f"missing a '{wanted.capitalize()}' heading")
    if not any(re.match(r"(step )?\d+[.:)]? ", h) for h in heads):
        problems.append("missing numbered steps ('## 1. ...')")
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    if not re.search(r"GPU:\s*(yes|no|optional)", markdown, re.IGNORECASE):
        problems.append("the prerequisites must say 'GPU: yes', 'GPU: no' or 'GPU: optional'")
    setup_index = next(
        (i for i, c in enumerate(cells) if c.cell_type == "markdown"
         and any(ln.lstrip("#").strip().lower().startswith("setup")
                 for ln in c.source.splitlines() if ln.startswith("#"))),
        None,
    )
    if setup_index is not None:
        following = next((c for c in cells[setup_index + 1:] if c.cell_type == "code"), None)
        if following is None or "import course_utils as cu" not in following.source:
            problems.append("the code cell after 'Setup' must `import course_utils as cu`")
    if not re.search(r"本节要点", markdown):
        problems.append("the Summary must end with a short Chinese summary headed 本节要点")
    problems += exercise_problems(nb, Path(path).name[:2])
    last = cells[-1] if cells else None
    if last is None or last.cell_type != "code" or "assert" not in last.source or "print(" not in last.source:
        problems.append("the last cell must assert the notebook's key facts and print one line")
    if "requires" not in nb.metadata.get("course", {}):
        problems.append("metadata.course.requires is missing (use [] for CPU-only notebooks)")
    return problems


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo_root(), capture_output=True, text=True, check=False
    )
    return result.stdout if result.returncode == 0 else ""


def has_uncommitted_edits(path: Path) -> bool:
    """True when a tracked notebook differs from the last commit (staged or not)."""
    status = _git("status", "--porcelain", "--", str(path))
    return any(line[:2].strip() not in ("", "??", "A") for line in status.splitlines())


def execute_notebook(path: Path, timeout_s: int = 600) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a fresh kernel (cwd = its folder) and return it cleaned."""
    from nbclient import NotebookClient

    nb = read_notebook(path)
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return clean_notebook(nb)


def refresh(names: list[str] | None = None) -> int:
    """Re-execute notebooks in place (all runnable ones by default); refuse dirty ones.

    Plumbing: make refresh-notebooks.
    """
    import nbformat

    found = capabilities()
    paths = list_notebooks()
    if names:
        wanted = {Path(n).name for n in names}
        paths = [p for p in paths if p.name in wanted]
        missing = wanted - {p.name for p in paths}
        if missing:
            print(f"No such course notebook: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    failed = 0
    for path in paths:
        if has_uncommitted_edits(path):
            print(f"SKIP {path.name}: it has uncommitted edits; commit or stash them first "
                  "(refresh never overwrites your work).")
            failed += 1
            continue
        lacking = sorted(set(notebook_requirements(path)) - found)
        if lacking:
            print(f"SKIP {path.name}: needs {', '.join(lacking)}, which this machine lacks.")
            continue
        print(f"RUN  {path.name} ...", flush=True)
        try:
            nb = execute_notebook(path)
        except Exception as error:
            print(f"FAIL {path.name}: {type(error).__name__}: {str(error)[-2000:]}")
            failed += 1
            continue
        nbformat.write(nb, path)
        print(f"OK   {path.name}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("refresh", help="re-execute notebooks in place (outputs from a real run)")
    run.add_argument("names", nargs="*", help="notebook file names (default: all runnable)")
    check = sub.add_parser("check", help="check lesson shape and cleanliness")
    check.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "refresh":
        return refresh(args.names)
    status = 0
    for path in list_notebooks():
        if args.names and path.name not in {Path(n).name for n in args.names}:
            continue
        problems = check_structure(path) + ([] if is_clean(path) else ["not clean"])
        for problem in problems:
            print(f"{path.name}: {problem}")
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
