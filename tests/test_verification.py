"""The README's verification table is exactly what the kept run reports say (reports/runs/)."""

from __future__ import annotations

import json

import pytest

import course_utils as cu
from course_utils.tooling import verification


def _report(date: str, gpu: str | None, caps: list[str], tensorrt: str | None, entries: list[dict]) -> dict:
    return {"format": verification.FORMAT, "date": date, "started": f"{date}T10:00:00", "lane": "x",
            "capabilities": caps, "course_run": True, "result": "passed",
            "machine": {"gpu": gpu, "cpu_cores": 2, "tensorrt": tensorrt}, "notebooks": entries}


def test_the_readme_table_matches_the_kept_reports() -> None:
    assert verification.update_readme(check=True), "run `make verification-table` and commit README.md"


def test_every_kept_report_is_a_course_run_that_passed_or_says_why() -> None:
    reports = verification.load_reports()
    assert reports, "no run report is kept in reports/runs/"
    for report in reports:
        assert report["course_run"], f"{report['_file']}: only course runs (--require-all-runnable) count"
        for entry in report["notebooks"]:
            assert entry["result"] in ("passed", "skipped"), f"{report['_file']}: {entry}"
            if entry["result"] == "skipped":
                assert entry.get("reason"), f"{report['_file']}: {entry['notebook']} skipped without a reason"


def test_the_table_takes_each_lanes_newest_report_and_says_what_never_ran(tmp_path) -> None:
    old = _report("2026-11-01", None, ["tensorrt-builder"], "tensorrt-rtx 1.7", [
        {"notebook": "00_a.ipynb", "result": "failed", "reason": "boom"}])
    new = _report("2026-12-01", None, ["tensorrt-builder"], "tensorrt-rtx 1.7", [
        {"notebook": "00_a.ipynb", "result": "passed", "skipped_cells": [
            {"cell": 3, "missing": ["gpu"]}, {"cell": 4, "missing": ["gpu", "tensorrt-runtime"]}]}])
    gpu = _report("2026-12-01", "NVIDIA H200", ["gpu"], None, [
        {"notebook": "00_a.ipynb", "result": "skipped", "reason": "needs tensorrt-runtime"}])
    for name, report in (("1.json", old), ("2.json", new), ("3.json", gpu)):
        (tmp_path / name).write_text(json.dumps(report))
    table = verification.verification_table(verification.load_reports(tmp_path), ["00_a.ipynb", "01_b.ipynb"])
    row00 = next(line for line in table.splitlines() if line.startswith("| 00 |"))
    cells = [c.strip() for c in row00.split("|")[2:-1]]
    assert cells[0] == "ran 2026-12-01 (CPU, 2 cores); 2 cell(s) skipped: need gpu, tensorrt-runtime"
    assert cells[1] == "skipped 2026-12-01: needs tensorrt-runtime"
    assert cells[2].startswith("never run here: no machine here can install TensorRT 11")
    assert cells[3].startswith("never run here: no RTX-class GPU")
    row01 = next(line for line in table.splitlines() if line.startswith("| 01 |"))
    assert "not in the 2026-12-01 run" in row01


def test_a_damaged_or_foreign_report_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "bad.json").write_text("{ nope")
    with pytest.raises(cu.CourseError, match="not valid JSON"):
        verification.load_reports(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(cu.CourseError, match="has format 'other/1'"):
        verification.load_reports(tmp_path)


@pytest.mark.parametrize(("gpu", "caps", "tensorrt", "column"), [
    (None, [], None, "CPU (CI)"),
    (None, ["tensorrt-builder"], "tensorrt-rtx 1.7", "CPU (CI)"),
    ("NVIDIA H200", ["gpu", "tensorrt-builder"], "tensorrt-rtx 1.7", "NVIDIA GPU, no TensorRT"),
    ("NVIDIA L4", ["gpu", "tensorrt-builder", "tensorrt-runtime"], "tensorrt 11.4", "GPU with TensorRT 11"),
    ("RTX 4090", ["gpu", "tensorrt-builder", "tensorrt-runtime"], "tensorrt-rtx 1.7", "TensorRT-RTX on an RTX GPU"),
])
def test_each_machine_lands_in_its_lane_column(gpu, caps, tensorrt, column) -> None:
    assert verification.lane_column(_report("d", gpu, caps, tensorrt, [])) == column
