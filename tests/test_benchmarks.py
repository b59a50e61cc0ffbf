"""The GPU benchmark scripts also run on a CPU (small shapes), so they cannot rot unseen."""

from __future__ import annotations

import json
import subprocess
import sys

import course_utils as cu


def test_conv_roofline_script_runs_on_cpu_and_writes_its_json(tmp_path) -> None:
    out = tmp_path / "cpu.json"
    completed = subprocess.run(
        [sys.executable, str(cu.repo_root() / "benchmarks" / "conv_roofline.py"),
         "--device", "cpu", "--out", str(out), "--repeats", "2", "--matmul-size", "256",
         "--channels", "16", "--size", "28"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["bandwidth_Bps"] > 0
    assert {conv["kernel"] for conv in result["convs"]} == {1, 7}


def test_recorded_gpu_result_is_labelled() -> None:
    recorded = json.loads((cu.repo_root() / "benchmarks" / "results" / "h100.json").read_text())
    assert recorded["device"] == "cuda" and "H100" in recorded["device_name"]
    assert recorded["date"] and recorded["script"].endswith("conv_roofline.py")
