#!/usr/bin/env python3
"""Do Tensor Cores run when you expect them? FP16 matrix products whose size is a multiple of
16, of 8, of 4, or of nothing, timed, and the kernels that ran, recorded by torch.profiler.

The seed's limit (3): "you expect Tensor Cores, but after kernel auto-tuning a CUDA-core kernel
(or a slower one) is picked". Each case is an n x n x n product; the reference is one FP32
product with TF32 switched off (CUDA cores only), so the table shows what Tensor Cores buy and
what an awkward dimension costs. Uses CUDA when torch sees a GPU, else the CPU (small FP32
products, so that the script is tested everywhere). Needs only torch (and course_utils from
this checkout). Notebook 01_tensorrt_in_context shows the recorded result.

    python3 benchmarks/tensor_cores.py --out benchmarks/results/tensor_cores_h200.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a bare checkout
os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # keep the profiler's C++ log lines quiet

import torch  # noqa: E402

from course_utils.roofline import (  # noqa: E402
    format_matmul_alignment_report,
    matmul_alignment_report,
)

GPU_DEFAULTS = {"sizes": (4096, 4104, 4100, 4097), "dtype": "float16", "reference_dtype": "float32",
                "repeats": 20, "number": 5}
CPU_DEFAULTS = {"sizes": (256, 264, 260, 257), "dtype": "float32", "reference_dtype": "float32",
                "repeats": 5, "number": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="matrix sizes n")
    parser.add_argument("--dtype", default=None, help="float16 (GPU default), bfloat16 or float32")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--number", type=int, default=None)
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings = dict(GPU_DEFAULTS if device.startswith("cuda") else CPU_DEFAULTS)
    if not device.startswith("cuda"):
        torch.set_num_threads(1)  # one core: steadier numbers on a shared machine
    for key in ("sizes", "dtype", "repeats", "number"):
        if getattr(args, key) is not None:
            settings[key] = tuple(args.sizes) if key == "sizes" else getattr(args, key)
    report = matmul_alignment_report(device, **settings)
    report["script"] = "benchmarks/tensor_cores.py"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_matmul_alignment_report(report, kernel_width=90))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
