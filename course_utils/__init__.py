"""course_utils: the code the course notebooks share. Use it as `import course_utils as cu`.

Lesson stages live at the top of the package, one module per pipeline stage; the course's own
plumbing (headless browser, JupyterLab launcher, notebook tools, pytest plugin) lives in
`course_utils/tooling/`. Each module lists its public names in `__all__` and they are all
reachable here (`cu.model_path`, `cu.fold_batchnorm`, ...). A stage is imported the first
time one of its names is used, so `import course_utils` stays fast and a stage whose package
is missing fails only when used, with the install command. Each public function's docstring
ends with the notebook that teaches it.

| module          | stage                                                    |
|-----------------|----------------------------------------------------------|
| errors          | CourseError: clear, actionable errors; expect_error      |
| paths           | where models and artifacts go, created on demand         |
| trt             | the one door to TensorRT / TensorRT-RTX                  |
| lanes           | GPU probe, requirements met, the README's lane           |
| environment     | the doctor (make doctor)                                 |
| exercises       | exercise checks: not attempted / wrong (why) / right     |
| fusion          | layer fusion math: fold BN, merge parallel convs (01)    |
| quantization    | quantize / dequantize and error metrics (01, 09)         |
| calibration     | calibration ranges and Q/DQ models (09)                  |
| timing          | cu.benchmark: warm-up, sync, repeats, spread (01+)       |
| roofline        | arithmetic intensity, roofline, model cost (01)          |
| plots           | diagrams and figures (01+)                               |
| export          | verify an ONNX export against PyTorch (02, 03)           |
| netron_view     | Netron inline and as a static PNG (02, 03, 06, 07)       |
| onnx_io         | load ONNX with clear errors; read weights (04)           |
| onnx_inspect    | one-glance summary and weight table of a model (02-04)   |
| operators       | unsupported ops: export helpers, side-by-side pictures (05)|
| graphs          | graph surgery: patterns, extraction, replacement (06, 07)|
| engines         | TensorRT engines: parse, build, run, inspect (08-10)     |
| plugins         | the custom op as a Triton kernel and TensorRT plugin (10)|
| tooling.*       | plumbing: browser, launch, notebooks, magics, pytest     |
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import CaughtError, CourseError, MissingDependencyError, expect_error

__version__ = "0.1.0"

#: Lesson stages in order, then the plumbing that lessons may call (cu.Browser, cu.check_structure).
_STAGES = (
    "paths", "trt", "lanes", "environment", "exercises",
    "fusion", "quantization", "calibration", "timing", "roofline", "plots",
    "export", "netron_view", "onnx_io", "onnx_inspect", "operators", "graphs", "engines", "plugins",
    "tooling.browser", "tooling.notebooks",
)
_HERE = Path(__file__).resolve().parent
_ALL = re.compile(r"^__all__\s*=\s*(\[.*?\])", re.MULTILINE | re.DOTALL)


def _public_names() -> dict[str, str]:
    """name -> stage, read from each stage's `__all__` in its source (nothing is imported)."""
    names: dict[str, str] = {}
    for stage in _STAGES:
        path = _HERE.joinpath(*stage.split(".")).with_suffix(".py")
        if not path.is_file():
            continue  # that stage is not written yet
        found = _ALL.search(path.read_text(encoding="utf-8"))
        for name in ast.literal_eval(found.group(1)) if found else ():
            names.setdefault(name, stage)
    return names


_NAMES = _public_names()


def _import_stage(stage: str) -> ModuleType:
    try:
        return importlib.import_module(f".{stage}", __name__)
    except ImportError as error:  # a missing package, or one whose binary will not load
        raise MissingDependencyError(
            f"a package that course_utils.{stage} needs ({error})", "pip install -e '.[dev,rtx]'   # or: make setup",
            needed_for=f"the helpers of course_utils.{stage}",
        ) from error


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(_import_stage(_NAMES[name]), name)
    elif name in _STAGES:
        value = _import_stage(name)
    else:
        raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES) | {s for s in _STAGES if "." not in s})


def _find_the_environments_tools() -> None:
    """Put this Python's scripts folder on PATH, as an activated venv would, so that a notebook
    started from `.venv/bin/python` finds `polygraphy`, `netron` ... (`shutil.which`, `!polygraphy`)."""
    import os
    import sys

    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


_find_the_environments_tools()


def _register_cell_magics() -> None:
    """In a Jupyter kernel, `%%requires gpu` skips a cell with the reason where a lane is missing."""
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and hasattr(shell, "register_magic_function"):
        from .tooling.magics import register

        register(shell)


_register_cell_magics()

__all__ = ["CaughtError", "CourseError", "MissingDependencyError", "expect_error", "__version__"]
