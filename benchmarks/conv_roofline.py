#!/usr/bin/env python3
"""Measure this device's roofline and where 1x1 and 7x7 convolutions land on it.

Peak matmul FLOP/s (FP32, and on a GPU TF32 and FP16), copy bandwidth, and the achieved
FLOP/s of a 1x1 and a 7x7 convolution (FP32 vs FP16 on a GPU), written to a JSON file and
printed as a table. Uses CUDA when torch sees a GPU, else the CPU (with smaller shapes).
Needs only torch, numpy and matplotlib (the course's `course_utils` tolerates the rest
missing). Notebook 01_tensorrt_in_context shows the recorded result.

    python3 benchmarks/conv_roofline.py --out benchmarks/results/h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a bare checkout

import torch  # noqa: E402

from course_utils.roofline import conv_roofline_report, format_roofline_report  # noqa: E402

GPU_DEFAULTS = {"batch": 32, "channels": 256, "size": 56, "matmul_size": 8192,
                "copy_megabytes": 1024, "repeats": 20, "number": 5,
                "precisions": ("float32", "tf32", "float16")}
CPU_DEFAULTS = {"batch": 1, "channels": 64, "size": 56, "matmul_size": 1024,
                "copy_megabytes": 64, "repeats": 5, "number": 1, "precisions": ("float32",)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present)")
    for name in ("batch", "channels", "size", "matmul-size", "repeats", "number"):
        parser.add_argument(f"--{name}", type=int, default=None)
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings = dict(GPU_DEFAULTS if device.startswith("cuda") else CPU_DEFAULTS)
    for key in ("batch", "channels", "size", "matmul_size", "repeats", "number"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    report = conv_roofline_report(device, **settings)
    report["script"] = "benchmarks/conv_roofline.py"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_roofline_report(report))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
