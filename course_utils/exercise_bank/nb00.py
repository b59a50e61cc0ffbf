"""Checks for the exercises of 00_environment_check: lanes of other machines, and where files go."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..exercises import Wrong, exercise, expect_equal, expect_type
from ..lanes import GpuInfo, capabilities, lane_name
from ..paths import models_dir, repo_root
from ..trt import RTX_RUNTIME_CAPABILITIES, TENSORRT_MIN_CAPABILITY, TensorRTInfo

#: The GPUs of exercise 1: a classroom's mixed machines.
CLASSROOM_GPUS: dict[str, tuple[int, int]] = {
    "GeForce RTX 3060 Laptop": (8, 6),
    "GeForce RTX 4090": (8, 9),
    "GeForce RTX 5080": (12, 0),
    "Tesla T4": (7, 5),
    "H100": (9, 0),
    "GeForce GTX 1080": (6, 1),
}


def _runs_with(gpus: dict[str, tuple[int, int]]) -> dict[str, str]:
    answer = {}
    for name, capability in gpus.items():
        if capability in RTX_RUNTIME_CAPABILITIES:
            answer[name] = "both"
        elif capability >= TENSORRT_MIN_CAPABILITY:
            answer[name] = "tensorrt"
        else:
            answer[name] = "neither"
    return answer


@exercise(
    "00.1",
    answers={"ex1_runs_with": "dict[str, str]: GPU name -> 'both', 'tensorrt' or 'neither'"},
    hint="Step 4 gives the two rules: TensorRT 11 needs compute capability >= 7.5; TensorRT-RTX 1.7 "
         "runs engines only on 8.0, 8.6, 8.9, 12.0 and 12.1.",
    hint2="Compare each (major, minor) pair with cu.trt.TENSORRT_MIN_CAPABILITY and "
          "cu.trt.RTX_RUNTIME_CAPABILITIES; tuples compare element by element.",
    wrong=[
        ({"ex1_runs_with": {name: "both" for name in CLASSROOM_GPUS}}, r"`ex1_runs_with\['Tesla T4'\]` is 'both'"),
        ({"ex1_runs_with": {"H100": "tensorrt"}}, r"missing .*GeForce"),
        ({"ex1_runs_with": [("H100", "tensorrt")]}, r"should be a dict"),
    ],
)
def _lanes_of_classroom_gpus(ex1_runs_with: object) -> str:
    want = _runs_with(CLASSROOM_GPUS)
    expect_type("ex1_runs_with", ex1_runs_with, dict, "a dict")
    missing = sorted(set(want) - set(ex1_runs_with))
    if missing:
        raise Wrong(f"`ex1_runs_with` is missing {missing}; it needs one entry per GPU of CLASSROOM_GPUS.")
    for name, expected in want.items():
        got = ex1_runs_with[name]
        if got not in ("both", "tensorrt", "neither"):
            raise Wrong(f"`ex1_runs_with[{name!r}]` is {got!r}; use 'both', 'tensorrt' or 'neither'.")
        if got != expected:
            raise Wrong(f"`ex1_runs_with[{name!r}]` is {got!r}, expected {expected!r} "
                        f"(compute capability {CLASSROOM_GPUS[name][0]}.{CLASSROOM_GPUS[name][1]}).")
    return "The H100 builds and runs with TensorRT 11, but TensorRT-RTX refuses it; the GTX 1080 is too old for both."


#: The machine of exercise 2, as its `make doctor --json` would describe it.
STUDENT_LAPTOP = {
    "gpu": {"available": True, "name": "NVIDIA GeForce RTX 4060 Laptop GPU", "capability": [8, 9]},
    "tensorrt": {"flavour": "tensorrt-rtx", "can_build": True, "can_run": True},
}


def _student_lane() -> str:
    gpu = GpuInfo(True, STUDENT_LAPTOP["gpu"]["name"], (8, 9))
    trt = TensorRTInfo("tensorrt-rtx", "tensorrt_rtx", "1.7", True, True, "")
    return lane_name(capabilities(gpu, trt), trt.flavour)


@exercise(
    "00.2",
    answers={"ex2_lane": "str, a lane name exactly as the README's lane table writes it",
             "ex2_requirements": "set[str], the requirement names that laptop meets"},
    hint="Read STUDENT_LAPTOP like the doctor does: is there a GPU, which TensorRT flavour, can it build, "
         "can it run? Then find the row of the lane table (step 2).",
    hint2="The requirement names are cu.KNOWN_REQUIREMENTS; TensorRT-RTX builds and, on this GPU, runs "
          "engines, but it has no Python plugin API, so 'tensorrt-plugins' is not met.",
    wrong=[
        ({"ex2_lane": "NVIDIA GPU", "ex2_requirements": {"gpu"}}, r"`ex2_lane` is 'NVIDIA GPU', expected"),
        ({"ex2_lane": "TensorRT-RTX", "ex2_requirements": {"gpu", "tensorrt-builder"}},
         r"missing \['tensorrt-rtx', 'tensorrt-runtime'\]"),
        ({"ex2_lane": "TensorRT-RTX", "ex2_requirements": {"gpu", "tensorrt-builder", "tensorrt-rtx",
                                                           "tensorrt-runtime", "tensorrt-plugins"}},
         r"unexpected \['tensorrt-plugins'\]"),
    ],
)
def _lane_of_a_student_laptop(ex2_lane: object, ex2_requirements: object) -> None:
    from ..exercises import expect_set

    expect_equal("ex2_lane", ex2_lane, _student_lane())
    expect_set("ex2_requirements", ex2_requirements, {"gpu", "tensorrt-builder", "tensorrt-rtx", "tensorrt-runtime"})


@exercise(
    "00.3",
    answers={"ex3_path": "pathlib.Path of the file you wrote"},
    hint="cu.model_path('exercises/notes.txt') gives the path and creates the folder; Path.write_text writes it.",
    hint2="The file must hold exactly 'engines are built, not downloaded', sit inside cu.models_dir(), and be "
          "ignored by git (models/ is in .gitignore).",
    wrong=[
        ({"ex3_path": "models/exercises/notes.txt"}, r"should be a pathlib\.Path, but it is str"),
        ({"ex3_path": Path("/tmp/definitely-not-in-models.txt")}, r"not inside the models folder"),
    ],
)
def _file_in_the_models_folder(ex3_path: object) -> str:
    expect_type("ex3_path", ex3_path, Path, "a pathlib.Path")
    path = Path(ex3_path).resolve()
    if not path.is_relative_to(models_dir().resolve()):
        raise Wrong(f"`ex3_path` ({ex3_path}) is not inside the models folder {models_dir()}.")
    if not path.is_file():
        raise Wrong(f"there is no file at `ex3_path` ({path.name}); write it first.")
    text = path.read_text(encoding="utf-8", errors="replace")
    expect_equal("the file's text", text, "engines are built, not downloaded")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=repo_root(), check=False)
    if ignored.returncode == 1:
        raise Wrong(f"git would commit {path.name}: keep generated files inside models/.")
    return "Generated files stay out of git, so a `git pull` never fights with your models."
