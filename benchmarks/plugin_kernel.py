#!/usr/bin/env python3
"""Test the plugin's Triton kernel (notebook 10) against its reference on this device, and time it.

The seed's custom operator (clamp at 0, then x / (1 + exp(-x))) as one Triton kernel, run on the
same inputs as PyTorch's eager reference (random values plus 0, +-1, tiny, large, +-inf and NaN),
in float32 and float16: the worst error of each against the float64 reference, the NaN/infinity
checks, and on a GPU the median times (warm-up, synchronised, 50 repeats), the speed-up and the
bytes moved per second. Without a GPU it falls back to Triton's interpreter on the CPU with a small
input (a check of the kernel's logic and of this script, not a speed). Writes JSON and prints a table;
notebook 10_plugins shows the recorded result.

    python3 benchmarks/plugin_kernel.py --out benchmarks/results/plugin_kernel_h200.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a bare checkout

import torch  # noqa: E402

from course_utils.plugins import format_kernel_report, kernel_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--device", default=None, choices=("cuda", "cpu"), help="default: cuda if present")
    parser.add_argument("--size", type=int, action="append", default=None,
                        help="elements per input (repeatable; default 16777216 on a GPU, 16384 on a CPU)")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    report = kernel_report(device, sizes=args.size, block_size=args.block_size, repeats=args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_kernel_report(report))
    failed = [f"{case['dtype']} n={case['n']}" for case in report["cases"] if not case["kernel_error"]["ok"]]
    print(f"written: {out}")
    if failed:
        print(f"the kernel is NOT within tolerance for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
