"""Arithmetic intensity and the roofline: why a 1x1 convolution runs further from peak than a 7x7.

A kernel's speed is capped by the lower of two roofs: the chip's peak compute (FLOP/s) and
its memory bandwidth (bytes/s) times the kernel's arithmetic intensity (FLOPs per byte
moved). `conv2d_cost` and `matmul_cost` count FLOPs and the minimum bytes for an operation;
`measure_peak_flops` and `measure_bandwidth` measure the two roofs on this machine's CPU or
GPU; `roofline_bound` says what speed the roofline allows at a given intensity.
Taught in: 01_tensorrt_in_context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import CourseError
from .timing import BenchmarkResult, benchmark

__all__ = [
    "OpCost", "conv2d_cost", "matmul_cost", "roofline_bound", "ridge_point",
    "Measurement", "measure_peak_flops", "measure_bandwidth", "achieved_flops",
    "SPEC_SHEETS", "spec_sheet", "conv_roofline_report", "format_roofline_report",
]

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "float64": 8}


def _positive_ints(**values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CourseError(f"{name} must be a positive integer, got {value!r}.")


def _bytes_per_element(dtype: str | int) -> int:
    if isinstance(dtype, int) and not isinstance(dtype, bool) and dtype > 0:
        return dtype
    if dtype in _BYTES:
        return _BYTES[dtype]
    raise CourseError(f"Unknown dtype {dtype!r}: use one of {sorted(_BYTES)} or bytes per element.")


@dataclass(frozen=True)
class OpCost:
    """FLOPs and minimum bytes moved (each tensor read or written once) of one operation."""

    name: str
    flops: float
    bytes: float

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: FLOPs per byte moved."""
        return self.flops / self.bytes

    def __repr__(self) -> str:
        return (f"{self.name}: {self.flops / 1e9:.3g} GFLOP, {self.bytes / 1e6:.3g} MB, "
                f"intensity {self.intensity:.3g} FLOP/byte")


def conv2d_cost(
    batch: int, in_channels: int, out_channels: int, height: int, width: int,
    kernel_size: int, *, stride: int = 1, padding: int | None = None, groups: int = 1,
    dtype: str | int = "float32",
) -> OpCost:
    """FLOPs (2 per multiply-add) and minimum bytes of a 2-D convolution on an NCHW input.

    `padding=None` means "same" padding (kernel_size // 2). Bytes = input + weights + output,
    each moved once: the best any kernel can do, which is what the roofline assumes.
    Taught in: 01_tensorrt_in_context.
    """
    _positive_ints(batch=batch, in_channels=in_channels, out_channels=out_channels,
                   height=height, width=width, kernel_size=kernel_size, stride=stride,
                   groups=groups)
    if in_channels % groups or out_channels % groups:
        raise CourseError(f"groups={groups} must divide in_channels={in_channels} and "
                          f"out_channels={out_channels}.")
    padding = kernel_size // 2 if padding is None else padding
    if not isinstance(padding, int) or padding < 0:
        raise CourseError(f"padding must be an integer >= 0 or None, got {padding!r}.")
    out_h = (height + 2 * padding - kernel_size) // stride + 1
    out_w = (width + 2 * padding - kernel_size) // stride + 1
    if out_h < 1 or out_w < 1:
        raise CourseError(f"kernel {kernel_size} does not fit a {height}x{width} input "
                          f"with padding {padding}: the output would be empty.")
    size = _bytes_per_element(dtype)
    macs = batch * out_channels * out_h * out_w * (in_channels // groups) * kernel_size**2
    moved = (batch * in_channels * height * width
             + out_channels * (in_channels // groups) * kernel_size**2
             + batch * out_channels * out_h * out_w) * size
    name = (f"conv{kernel_size}x{kernel_size} {in_channels}->{out_channels} "
            f"@{height}x{width} b{batch}")
    return OpCost(name, 2.0 * macs, float(moved))


def matmul_cost(m: int, n: int, k: int, *, dtype: str | int = "float32") -> OpCost:
    """FLOPs and minimum bytes of (m x k) @ (k x n). Taught in: 01_tensorrt_in_context."""
    _positive_ints(m=m, n=n, k=k)
    size = _bytes_per_element(dtype)
    moved = float((m * k + k * n + m * n) * size)
    return OpCost(f"matmul {m}x{k} @ {k}x{n}", 2.0 * m * n * k, moved)


def _check_roofs(peak_flops: float, bandwidth: float) -> None:
    for name, value in (("peak_flops", peak_flops), ("bandwidth", bandwidth)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise CourseError(f"{name} must be a positive number, got {value!r}.")


def roofline_bound(intensity: float, peak_flops: float, bandwidth: float) -> float:
    """The fastest FLOP/s the roofline allows: min(peak, intensity x bandwidth).

    Taught in: 01_tensorrt_in_context.
    """
    _check_roofs(peak_flops, bandwidth)
    if not (math.isfinite(intensity) and intensity > 0):
        raise CourseError(f"intensity must be a positive number of FLOP/byte, got {intensity!r}.")
    return min(peak_flops, intensity * bandwidth)


def ridge_point(peak_flops: float, bandwidth: float) -> float:
    """Intensity (FLOP/byte) where the memory roof meets the compute roof: below it a kernel
    is memory-bound. Taught in: 01_tensorrt_in_context."""
    _check_roofs(peak_flops, bandwidth)
    return peak_flops / bandwidth


def achieved_flops(cost: OpCost, result: BenchmarkResult | float) -> float:
    """FLOP/s achieved: the operation's FLOPs over its median time (or a time in seconds).

    Taught in: 01_tensorrt_in_context.
    """
    seconds = result.median_s if isinstance(result, BenchmarkResult) else result
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise CourseError(f"need a positive time in seconds or a BenchmarkResult, got {result!r}.")
    return cost.flops / seconds


@dataclass(frozen=True)
class Measurement:
    """A measured roof: value (FLOP/s or bytes/s), its unit, and the timing behind it."""

    what: str
    value: float
    unit: str
    timing: BenchmarkResult

    def __repr__(self) -> str:
        return f"{self.what}: {self.value / 1e9:.3g} G{self.unit} ({self.timing})"


def _torch_device(device: Any) -> Any:
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise CourseError(f"Unknown device {device!r} ({error}); use 'cpu' or 'cuda'.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CourseError("device='cuda' was asked for but torch sees no CUDA GPU; use 'cpu'.")
    return device


def measure_peak_flops(
    device: Any = "cpu", *, dtype: Any = None, size: int = 1024, repeats: int = 10,
    warmup: int = 2, number: int = 1,
) -> Measurement:
    """Peak compute, measured as the FLOP/s of a large square matmul (size x size) in torch.

    A big matmul is the most compute-dense kernel there is, so its speed is the practical
    compute roof of this device for `dtype` (default float32). The roof uses the fastest
    sample (a shared machine only ever slows a sample down); the timing keeps them all.
    Taught in: 01_tensorrt_in_context.
    """
    import torch

    _positive_ints(size=size)
    device = _torch_device(device)
    dtype = dtype or torch.float32
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    timing = benchmark(lambda: torch.matmul(a, b), repeats=repeats, warmup=warmup,
                       number=number, name=f"matmul {size} {str(dtype).removeprefix('torch.')}",
                       device=device)
    # A roof is the best the machine can do: use the fastest sample (others were disturbed).
    return Measurement(f"peak {str(dtype).removeprefix('torch.')} on {device.type}",
                       2.0 * size**3 / timing.min_s, "FLOP/s", timing)


def measure_bandwidth(
    device: Any = "cpu", *, megabytes: float = 64, repeats: int = 10, warmup: int = 2,
    number: int = 1,
) -> Measurement:
    """Memory bandwidth, measured as a large tensor copy (bytes read + bytes written per second).

    The buffer must be much larger than the caches or the "bandwidth" is the cache's.
    Like `measure_peak_flops`, the roof uses the fastest sample.
    Taught in: 01_tensorrt_in_context.
    """
    import torch

    if not (isinstance(megabytes, (int, float)) and megabytes > 0):
        raise CourseError(f"megabytes must be positive, got {megabytes!r}.")
    device = _torch_device(device)
    elements = max(1, int(megabytes * 1e6 / 4))
    source = torch.ones(elements, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    timing = benchmark(lambda: target.copy_(source), repeats=repeats, warmup=warmup,
                       number=number, name=f"copy {megabytes:g} MB", device=device)
    moved = 2.0 * source.numel() * source.element_size()
    return Measurement(f"copy bandwidth on {device.type}", moved / timing.min_s, "B/s", timing)


#: Dense (no sparsity) spec-sheet peaks, FLOP/s and bytes/s, matched on the device name.
SPEC_SHEETS: dict[str, dict[str, float]] = {
    "H200": {"float32": 66.9e12, "tf32": 494.7e12, "float16": 989.4e12, "bandwidth": 4.8e12},
    "H100 PCIe": {"float32": 51.2e12, "tf32": 378e12, "float16": 756e12, "bandwidth": 2.0e12},
    "H100 NVL": {"float32": 60e12, "tf32": 417.5e12, "float16": 835e12, "bandwidth": 3.9e12},
    "H100": {"float32": 66.9e12, "tf32": 494.7e12, "float16": 989.4e12, "bandwidth": 3.35e12},
    "A100": {"float32": 19.5e12, "tf32": 156e12, "float16": 312e12, "bandwidth": 2.0e12},
}


def spec_sheet(device_name: str) -> dict[str, float] | None:
    """The vendor's dense peak numbers for a GPU name (e.g. 'NVIDIA H100 80GB HBM3'), or None.

    Taught in: 01_tensorrt_in_context.
    """
    for key, values in SPEC_SHEETS.items():  # ordered: specific names before "H100"
        if key.lower() in device_name.lower():
            return {"matched": key, **values}
    return None


def _precision_settings(precision: str) -> tuple[Any, bool]:
    import torch

    table = {"float32": (torch.float32, False), "tf32": (torch.float32, True),
             "float16": (torch.float16, False), "bfloat16": (torch.bfloat16, False)}
    if precision not in table:
        raise CourseError(f"Unknown precision {precision!r}; use one of {sorted(table)}.")
    return table[precision]


def _set_tf32(enabled: bool) -> None:
    import torch

    # FP32 convolutions silently use TF32 tensor cores by default in torch: say it explicitly.
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def conv_roofline_report(
    device: Any = "cpu", *, batch: int = 1, channels: int = 64, size: int = 56,
    kernels: tuple[int, ...] = (1, 7), precisions: tuple[str, ...] = ("float32",),
    matmul_size: int = 1024, copy_megabytes: float = 64, repeats: int = 10, number: int = 1,
) -> dict[str, Any]:
    """Measure the roofs of `device` and place KxK convolutions on them; returns plain data.

    For every precision: peak matmul FLOP/s; once: copy bandwidth; for every kernel size and
    precision: a `channels -> channels` conv on a (batch, channels, size, size) input, its
    FLOPs, bytes, intensity, median time, achieved FLOP/s, and fractions of the measured
    peak, of the roofline bound and (on a known GPU) of the spec sheet.
    `precisions` may hold "float32", "tf32" (CUDA), "float16", "bfloat16".
    Taught in: 01_tensorrt_in_context (and benchmarks/conv_roofline.py on a GPU).
    """
    import datetime
    import platform

    import torch

    device = _torch_device(device)
    _positive_ints(batch=batch, channels=channels, size=size, matmul_size=matmul_size)
    if device.type != "cuda" and "tf32" in precisions:
        raise CourseError("tf32 is a CUDA tensor-core mode; on a CPU use precisions=('float32',).")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # cuDNN's own auto-tuning: time algos, keep best
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    bandwidth = measure_bandwidth(device, megabytes=copy_megabytes, repeats=repeats)
    report: dict[str, Any] = {
        "device": device.type, "device_name": name, "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "threads": torch.get_num_threads(),
        "shape": {"batch": batch, "channels": channels, "size": size},
        "bandwidth_Bps": bandwidth.value, "peaks_flops": {}, "convs": [],
        "spec_sheet": spec_sheet(name) if device.type == "cuda" else None,
    }
    generator = torch.Generator().manual_seed(0)
    for precision in precisions:
        dtype, tf32 = _precision_settings(precision)
        if device.type == "cuda":
            _set_tf32(tf32)
        peak = measure_peak_flops(device, dtype=dtype, size=matmul_size, repeats=repeats)
        report["peaks_flops"][precision] = peak.value
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        x = torch.randn(batch, channels, size, size, generator=generator).to(
            device=device, dtype=dtype, memory_format=memory_format)
        for kernel in kernels:
            conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)
            conv = conv.to(device=device, dtype=dtype, memory_format=memory_format).eval()
            with torch.inference_mode():
                timing = benchmark(lambda conv=conv, x=x: conv(x), repeats=repeats, warmup=3,
                                   number=number, name=f"conv{kernel}x{kernel} {precision}",
                                   device=device)
            cost = conv2d_cost(batch, channels, channels, size, size, kernel,
                               dtype=x.element_size())
            achieved = achieved_flops(cost, timing)
            bound = roofline_bound(cost.intensity, peak.value, bandwidth.value)
            spec = report["spec_sheet"]
            report["convs"].append({
                "kernel": kernel, "precision": precision, "flops": cost.flops,
                "bytes": cost.bytes, "intensity": cost.intensity, "timing": timing.to_dict(),
                "achieved_flops": achieved, "fraction_of_measured_peak": achieved / peak.value,
                "roofline_bound_flops": bound, "fraction_of_bound": achieved / bound,
                "fraction_of_spec_peak": (achieved / spec[precision]) if spec else None,
            })
    if device.type == "cuda":
        _set_tf32(False)
    return report


def format_roofline_report(report: dict[str, Any]) -> str:
    """A readable table of `conv_roofline_report`'s data. Taught in: 01_tensorrt_in_context."""
    try:
        lines = [
            f"{report['device_name']} ({report['device']}, torch {report['torch']}, "
            f"{report['date']})",
            f"copy bandwidth: {report['bandwidth_Bps'] / 1e9:.1f} GB/s (read + write)",
        ]
        for precision, peak in report["peaks_flops"].items():
            lines.append(f"peak matmul {precision}: {peak / 1e12:.3g} TFLOP/s")
        spec = report.get("spec_sheet")
        header = (f"{'conv':<8}{'precision':<10}{'FLOP/B':>8}{'median':>11}{'TFLOP/s':>9}"
                  f"{'% peak':>8}{'% roof':>8}" + (f"{'% spec':>8}" if spec else ""))
        lines.append(header)
        for row in report["convs"]:
            line = (f"{row['kernel']}x{row['kernel']:<6}{row['precision']:<10}"
                    f"{row['intensity']:>8.0f}{row['timing']['median_s'] * 1e3:>9.3f}ms"
                    f"{row['achieved_flops'] / 1e12:>9.3g}"
                    f"{100 * row['fraction_of_measured_peak']:>7.0f}%"
                    f"{100 * row['fraction_of_bound']:>7.0f}%")
            if spec:
                line += f"{100 * row['fraction_of_spec_peak']:>7.0f}%"
            lines.append(line)
    except (KeyError, TypeError) as error:
        raise CourseError(f"not a conv_roofline_report dictionary (missing {error}).") from None
    return "\n".join(lines)
