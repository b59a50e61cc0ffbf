"""course_utils: the code the course notebooks share. Use it as `import course_utils as cu`.

One module per pipeline stage; each module lists its public names in `__all__`, and
they are all re-exported here (`cu.model_path`, `cu.fold_batchnorm`, ...). Each public
function's docstring ends with the notebook that teaches it.

| module          | stage                                                    |
|-----------------|----------------------------------------------------------|
| errors          | CourseError: clear, actionable errors                    |
| paths           | where models and artifacts go, created on demand         |
| environment     | the doctor: GPU, packages, TensorRT flavour, lanes       |
| trt             | the one door to TensorRT / TensorRT-RTX                  |
| notebooks       | notebook requirements, cleaning, refresh (plumbing)      |
| browser         | headless Chromium: screenshots and page text             |
| launch          | `python -m course_utils open`: JupyterLab on 127.0.0.1   |
| fusion          | layer fusion math: fold BN, merge parallel convs (01)    |
| quantization    | quantize / dequantize and error metrics (01, 09)         |
| timing          | cu.benchmark: warm-up, sync, repeats, spread (01+)       |
| roofline        | arithmetic intensity and the roofline (01)               |
| plots           | diagrams and figures (01+)                               |
| export          | verify an ONNX export against PyTorch (02, 03)           |
| netron_view     | Netron inline and as a static PNG (02, 03)               |
| onnx_io         | load ONNX with clear errors; read weights (04)           |
| onnx_inspect    | summarize and print any ONNX model (02-04)               |
| operators       | custom operators and export helpers (05)                 |

A stage whose third-party package is missing does not break the rest: its names raise
a clear error naming the install command when used, and the doctor still runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import CaughtError, CourseError, MissingDependencyError, expect_error

__version__ = "0.1.0"

_STAGES = (
    "paths", "environment", "trt", "notebooks", "browser", "launch",
    "fusion", "quantization", "timing", "roofline", "plots",
    "export", "netron_view", "onnx_io", "onnx_inspect", "operators",
)
_unavailable: dict[str, str] = {}  # stage -> why it could not be imported

for _stage in _STAGES:
    try:
        _module = importlib.import_module(f".{_stage}", __name__)
    except ImportError as _error:  # a missing package, or one whose binary will not load
        if isinstance(_error, ModuleNotFoundError) and (_error.name or "").startswith(f"{__name__}.{_stage}"):
            continue  # that stage is not written yet
        _unavailable[_stage] = f"{_error} (pip install -e . installs the course's packages)"
        continue
    globals()[_stage] = _module
    for _name in getattr(_module, "__all__", ()):
        globals()[_name] = getattr(_module, _name)

del _stage


def __getattr__(name: str) -> Any:
    message = f"module 'course_utils' has no attribute {name!r}"
    if _unavailable:  # the name may belong to a stage that could not be imported
        reasons = "; ".join(f"course_utils.{stage}: {why}" for stage, why in _unavailable.items())
        message += f". Some stages could not be imported, so their helpers are missing: {reasons}"
    raise AttributeError(message)


__all__ = ["CaughtError", "CourseError", "MissingDependencyError", "expect_error", "__version__"]
