"""The README's verification table: which notebook ran on which lane, when, and what was skipped.

The table is generated from the run reports the test harness writes (`build/reports/run-*.json`,
format "course-run-report/1", see tooling/pytest_plugin.py) and that a maintainer keeps in
`reports/runs/` (committed). One row per notebook, one column per lane:

| lane column                  | a run counts for it when ...                                   |
|------------------------------|----------------------------------------------------------------|
| CPU (CI)                     | no GPU (the CI machine; TensorRT-RTX builds engines there)     |
| NVIDIA GPU, no TensorRT      | a GPU and no TensorRT that runs engines                        |
| GPU with TensorRT 11         | the "TensorRT GPU machine" lane                                 |
| TensorRT-RTX on an RTX GPU   | TensorRT-RTX that runs engines on the GPU                      |

Each cell reads "ran <date> on <machine>" (+ how many cells were skipped and why), "failed
<date>: ...", "skipped: <reason>", or "never run here: <why>" when no report covers that lane.
`python -m course_utils verification-table` rewrites the table in README.md between its
markers; `--check` only compares (a test runs it).
Plumbing: `make verification-table`; tests/test_verification.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..errors import CourseError
from ..paths import list_notebooks, repo_root

__all__ = ["LANE_COLUMNS", "load_reports", "lane_column", "verification_table", "update_readme", "main"]

LANE_COLUMNS = ("CPU (CI)", "NVIDIA GPU, no TensorRT", "GPU with TensorRT 11", "TensorRT-RTX on an RTX GPU")
#: Why a lane column has no report: no machine of that kind was ever available to this project.
NEVER_RUN = {
    "CPU (CI)": "no CPU run report kept yet",
    "NVIDIA GPU, no TensorRT": "no GPU run report kept yet",
    "GPU with TensorRT 11": "no machine here can install TensorRT 11 (NVIDIA's index is unreachable)",
    "TensorRT-RTX on an RTX GPU": "no RTX-class GPU here (TensorRT-RTX refuses the H100/H200)",
}
START, END = "<!-- verification-table:start -->", "<!-- verification-table:end -->"
FORMAT = "course-run-report/1"


def reports_dir() -> Path:
    """Where the kept run reports live (committed). Plumbing: the verification table."""
    return repo_root() / "reports" / "runs"


def load_reports(folder: Path | None = None) -> list[dict]:
    """Every run report in `folder` (default reports/runs), oldest first, validated.

    Plumbing: the verification table.
    """
    folder = folder or reports_dir()
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise CourseError(f"{path.name} is not valid JSON ({error}); restore it from git.") from None
        if data.get("format") != FORMAT:
            raise CourseError(f"{path.name} has format {data.get('format')!r}, expected {FORMAT!r}.")
        for key in ("date", "lane", "capabilities", "machine", "notebooks", "course_run"):
            if key not in data:
                raise CourseError(f"{path.name} lacks the key {key!r}; it is not a run report of the harness.")
        data["_file"] = path.name
        reports.append(data)
    return sorted(reports, key=lambda r: (r.get("started") or r["date"], r["_file"]))


def lane_column(report: dict) -> str:
    """The table column a report belongs to. Plumbing: the verification table."""
    caps = set(report["capabilities"])
    gpu = report["machine"].get("gpu")
    if not gpu:
        return "CPU (CI)"
    if "tensorrt-runtime" not in caps:
        return "NVIDIA GPU, no TensorRT"
    tensorrt = str(report["machine"].get("tensorrt") or "")
    return "TensorRT-RTX on an RTX GPU" if tensorrt.startswith("tensorrt-rtx") else "GPU with TensorRT 11"


def _short_machine(report: dict) -> str:
    machine = report["machine"]
    if machine.get("gpu"):
        return str(machine["gpu"]).replace("NVIDIA ", "")
    return f"CPU, {machine.get('cpu_cores', '?')} cores"


def _cell_text(entry: dict, report: dict) -> str:
    result = entry.get("result")
    if result == "passed":
        text = f"ran {report['date']} ({_short_machine(report)})"
        skipped = entry.get("skipped_cells") or []
        if skipped:
            needs = sorted({name for cell in skipped for name in cell.get("missing", [])})
            text += f"; {len(skipped)} cell(s) skipped: need {', '.join(needs)}"
        return text
    if result == "skipped":
        return f"skipped {report['date']}: {entry.get('reason') or 'requirements missing'}"
    reason = (entry.get("reason") or "").replace("|", "/")[:80]
    return f"{result} {report['date']}: {reason}"


def verification_table(reports: list[dict], notebooks: list[str] | None = None) -> str:
    """The markdown table: notebooks x lanes, from the newest course-run report of each lane.

    Plumbing: the verification table.
    """
    notebooks = notebooks or [p.name for p in list_notebooks()]
    newest: dict[str, dict] = {}
    for report in reports:
        if report.get("course_run"):
            newest[lane_column(report)] = report  # reports are oldest first
    rows = ["| notebook | " + " | ".join(LANE_COLUMNS) + " |", "|---|" + "---|" * len(LANE_COLUMNS)]
    for name in notebooks:
        cells = []
        for column in LANE_COLUMNS:
            report = newest.get(column)
            entry = next((e for e in report["notebooks"] if e["notebook"] == name), None) if report else None
            if report is None:
                cells.append(f"never run here: {NEVER_RUN[column]}")
            elif entry is None:
                cells.append(f"not in the {report['date']} run (the notebook is newer)")
            else:
                cells.append(_cell_text(entry, report))
        rows.append(f"| {name[:2]} | " + " | ".join(cells) + " |")
    sources = ", ".join(f"`reports/runs/{newest[c]['_file']}`" for c in LANE_COLUMNS if c in newest) or "none"
    rows.append("")
    rows.append(f"Generated by `make verification-table` from {sources}.")
    return "\n".join(rows)


def update_readme(check: bool = False, readme: Path | None = None) -> bool:
    """Rewrite (or with `check`, compare) README's table; True when it is up to date.

    Plumbing: `make verification-table`, tests/test_verification.py.
    """
    readme = readme or repo_root() / "README.md"
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), re.DOTALL)
    found = pattern.search(text)
    if not found:
        raise CourseError(f"README.md has no {START} ... {END} markers for the verification table.")
    table = verification_table(load_reports())
    if found.group(1).strip("\n") == table.strip("\n"):
        return True
    if not check:
        block = f"{START}\n{table.strip(chr(10))}\n{END}"
        readme.write_text(text[:found.start()] + block + text[found.end():], encoding="utf-8")
    return False


def main(argv: list[str] | None = None) -> int:
    """`python -m course_utils verification-table [--check]`. Plumbing: make verification-table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in argv
    fresh = update_readme(check=check)
    if check and not fresh:
        print("README.md's verification table differs from reports/runs/: run `make verification-table`.",
              file=sys.stderr)
        return 1
    print("README.md's verification table is up to date." if fresh else "README.md's verification table rewritten.")
    return 0
