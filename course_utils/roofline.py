"""Arithmetic intensity and the roofline: why a 1x1 convolution runs further from peak than a 7x7.

A kernel's speed is capped by the lower of two roofs: the chip's peak compute (FLOP/s) and
its memory bandwidth (bytes/s) times the kernel's arithmetic intensity (FLOPs per byte
moved). `conv2d_cost` and `matmul_cost` count FLOPs and the minimum bytes for an operation;
`measure_peak_flops` and `measure_bandwidth` measure the two roofs on this machine's CPU or
GPU; `roofline_bound` says what speed the roofline allows at a given intensity and
`bound_by` which roof that is. `model_cost` adds up FLOPs (counted by PyTorch's own
`FlopCounterMode`), parameters and bytes moved for a whole network, and
`matmul_alignment_report` measures what a GEMM's dimensions do to the kernel the GPU picks
(Tensor Cores or not). `benchmarks/conv_roofline.py` and `benchmarks/tensor_cores.py` run the
two reports on a GPU.
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
    "measure_conv_peak_flops", "bound_by", "ModelCost", "model_cost", "matmul_alignment_report",
    "format_matmul_alignment_report", "kernels_run", "BOOKKEEPING_OPS", "kernel_label",
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


def bound_by(intensity: float, peak_flops: float, bandwidth: float) -> str:
    """Which roof caps a kernel of this intensity: "memory" left of the ridge point, else "compute".

    Taught in: 01_tensorrt_in_context.
    """
    _check_roofs(peak_flops, bandwidth)
    if not (isinstance(intensity, (int, float)) and math.isfinite(intensity) and intensity > 0):
        raise CourseError(f"intensity must be a positive number of FLOP/byte, got {intensity!r}.")
    return "memory" if intensity < peak_flops / bandwidth else "compute"


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


def _torch_device(device: Any) -> Any:  # pragma: no mutate block
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
    warmup: int = 2, number: int = 1, clock: str = "wall",
) -> Measurement:  # pragma: no mutate block
    """Peak compute, measured as the FLOP/s of a large square matmul (size x size) in torch.

    A big matmul is the most compute-dense kernel there is, so its speed is the practical
    compute roof of this device for `dtype` (default float32). The roof uses the fastest
    sample (a shared machine only ever slows a sample down); the timing keeps them all.
    `clock` goes to `benchmark` ("thread" on a shared CPU). Taught in: 01_tensorrt_in_context.
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
                       device=device, clock=clock)
    # A roof is the best the machine can do: use the fastest sample (others were disturbed).
    return Measurement(f"peak {str(dtype).removeprefix('torch.')} on {device.type}",
                       2.0 * size**3 / timing.min_s, "FLOP/s", timing)


def measure_conv_peak_flops(
    device: Any = "cpu", *, dtype: Any = None, channels: int = 256, size: int = 28, kernel: int = 5,
    repeats: int = 5, warmup: int = 2, clock: str = "wall",
) -> Measurement:  # pragma: no mutate block
    """Compute roof measured with a large convolution (channels -> channels, kernel x kernel on a
    size x size map): on CPUs where the convolution library (oneDNN) is faster than the BLAS
    library behind torch.matmul (MKL on AMD processors), this is the higher of the two roofs.
    Uses the fastest sample and takes `clock`, like `measure_peak_flops`. Taught in: 01_tensorrt_in_context.
    """
    import torch

    _positive_ints(channels=channels, size=size, kernel=kernel)
    device = _torch_device(device)
    dtype = dtype or torch.float32
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, channels, size, size, generator=generator).to(device=device, dtype=dtype)
    w = torch.randn(channels, channels, kernel, kernel, generator=generator).to(device=device, dtype=dtype)
    import torch.nn.functional as F

    with torch.inference_mode():
        timing = benchmark(lambda: F.conv2d(x, w, padding=kernel // 2), repeats=repeats, warmup=warmup,
                           name=f"conv{kernel}x{kernel} {channels}ch", device=device, clock=clock)
    cost = conv2d_cost(1, channels, channels, size, size, kernel, dtype=x.element_size())
    label = f"peak {str(dtype).removeprefix('torch.')} on {device.type} (conv{kernel}x{kernel} {channels}ch)"
    return Measurement(label, cost.flops / timing.min_s, "FLOP/s", timing)


def measure_bandwidth(
    device: Any = "cpu", *, megabytes: float = 64, repeats: int = 10, warmup: int = 2,
    number: int = 1, clock: str = "wall",
) -> Measurement:  # pragma: no mutate block
    """Memory bandwidth, measured as a large tensor copy (bytes read + bytes written per second).

    The buffer must be much larger than the caches or the "bandwidth" is the cache's.
    Like `measure_peak_flops`, the roof uses the fastest sample and takes `clock`.
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
                       number=number, name=f"copy {megabytes:g} MB", device=device, clock=clock)
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


def _precision_settings(precision: str) -> tuple[Any, bool]:  # pragma: no mutate block
    import torch

    table = {"float32": (torch.float32, False), "tf32": (torch.float32, True),
             "float16": (torch.float16, False), "bfloat16": (torch.bfloat16, False)}
    if precision not in table:
        raise CourseError(f"Unknown precision {precision!r}; use one of {sorted(table)}.")
    return table[precision]


def _set_tf32(enabled: bool) -> None:  # pragma: no mutate block
    import torch

    # FP32 convolutions silently use TF32 tensor cores by default in torch: say it explicitly.
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def conv_roofline_report(
    device: Any = "cpu", *, batch: int = 1, channels: int = 64, size: int = 56,
    kernels: tuple[int, ...] = (1, 7), precisions: tuple[str, ...] = ("float32",),
    matmul_size: int = 1024, copy_megabytes: float = 64, repeats: int = 10, number: int = 1,
    conv_probe: bool | None = None, clock: str = "wall",
) -> dict[str, Any]:  # pragma: no mutate block
    """Measure the roofs of `device` and place KxK convolutions on them; returns plain data.

    For every precision: peak FLOP/s (a large matmul; with `conv_probe`, the default on a CPU,
    also a large convolution, and the faster of the two is the roof: `peak_sources` says which);
    once: copy bandwidth; for every kernel size and precision: a `channels -> channels` conv on a
    (batch, channels, size, size) input, its FLOPs, bytes, intensity, median time, achieved FLOP/s,
    the kernels that ran (`kernels_run`), and fractions of the measured peak, of the roofline
    bound and (on a known GPU) of the spec sheet.
    `precisions` may hold "float32", "tf32" (CUDA), "float16", "bfloat16". `clock="thread"` times
    a CPU's roofs and convolutions in this thread's CPU time, so that other programs on a shared
    machine cannot push one measurement and not the next (a GPU is always timed by the wall clock).
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
    if clock != "wall" and device.type == "cuda":
        raise CourseError(f"clock={clock!r} cannot time GPU work; use clock='wall' on CUDA.")
    bandwidth = measure_bandwidth(device, megabytes=copy_megabytes, repeats=repeats, clock=clock)
    report: dict[str, Any] = {
        "device": device.type, "device_name": name, "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "threads": torch.get_num_threads(), "clock": bandwidth.timing.clock,
        "shape": {"batch": batch, "channels": channels, "size": size},
        "bandwidth_Bps": bandwidth.value, "peaks_flops": {}, "peak_sources": {}, "convs": [],
        "spec_sheet": spec_sheet(name) if device.type == "cuda" else None,
    }
    if conv_probe is None:
        conv_probe = device.type == "cpu"
    generator = torch.Generator().manual_seed(0)
    for precision in precisions:
        dtype, tf32 = _precision_settings(precision)
        if device.type == "cuda":
            _set_tf32(tf32)
        peak = measure_peak_flops(device, dtype=dtype, size=matmul_size, repeats=repeats, clock=clock)
        source = f"matmul {matmul_size}x{matmul_size}"
        if conv_probe:
            probe = measure_conv_peak_flops(device, dtype=dtype, repeats=max(3, min(repeats, 8)), clock=clock)
            if probe.value > peak.value:
                peak, source = probe, probe.what.split("(")[-1].rstrip(")")
        report["peaks_flops"][precision] = peak.value
        report["peak_sources"][precision] = source
        memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        x = torch.randn(batch, channels, size, size, generator=generator).to(
            device=device, dtype=dtype, memory_format=memory_format)
        for kernel in kernels:
            conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)
            conv = conv.to(device=device, dtype=dtype, memory_format=memory_format).eval()
            with torch.inference_mode():
                timing = benchmark(lambda conv=conv, x=x: conv(x), repeats=repeats, warmup=3,
                                   number=number, name=f"conv{kernel}x{kernel} {precision}",
                                   device=device, clock=clock)
            with torch.inference_mode():
                ran = kernels_run(lambda conv=conv, x=x: conv(x), device)
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
                "kernels": ran,
            })
    if device.type == "cuda":
        _set_tf32(False)
    return report


def format_roofline_report(report: dict[str, Any]) -> str:
    """A readable table of `conv_roofline_report`'s data. Taught in: 01_tensorrt_in_context."""
    try:
        cpu_time = ", thread CPU time" if report.get("clock") == "thread" else ""
        lines = [
            f"{report['device_name']} ({report['device']}, torch {report['torch']}, "
            f"{report['date']}{cpu_time})",
            f"copy bandwidth: {report['bandwidth_Bps'] / 1e9:.1f} GB/s (read + write)",
        ]
        sources = report.get("peak_sources") or {}
        for precision, peak in report["peaks_flops"].items():
            lines.append(f"peak {precision}: {peak / 1e12:.3g} TFLOP/s "
                         f"({sources.get(precision, 'matmul')})")
        spec = report.get("spec_sheet")
        header = (f"{'conv':<8}{'precision':<10}{'FLOP/B':>8}{'ridge':>7}{'bound by':>10}"
                  f"{'median':>11}{'TFLOP/s':>9}{'% peak':>8}{'% roof':>8}"
                  + (f"{'% spec':>8}" if spec else ""))
        lines.append(header)
        for row in report["convs"]:
            peak = report["peaks_flops"][row["precision"]]
            ridge = ridge_point(peak, report["bandwidth_Bps"])
            roof = bound_by(row["intensity"], peak, report["bandwidth_Bps"])
            line = (f"{row['kernel']}x{row['kernel']:<6}{row['precision']:<10}"
                    f"{row['intensity']:>8.0f}{ridge:>7.0f}{roof:>10}"
                    f"{row['timing']['median_s'] * 1e3:>9.3f}ms"
                    f"{row['achieved_flops'] / 1e12:>9.3g}"
                    f"{100 * row['fraction_of_measured_peak']:>7.0f}%"
                    f"{100 * row['fraction_of_bound']:>7.0f}%")
            if spec:
                line += f"{100 * row['fraction_of_spec_peak']:>7.0f}%"
            lines.append(line)
    except (KeyError, TypeError) as error:
        raise CourseError(f"not a conv_roofline_report dictionary (missing {error}).") from None
    return "\n".join(lines)


@dataclass(frozen=True)
class ModelCost:
    """A network's size and work for one input: parameters, FLOPs, bytes moved, intensity."""

    name: str
    parameters: int  # number of trainable values
    flops: float  # 2 per multiply-add of its convolutions and matrix products
    bytes: float  # what its layers read and write, each layer on its own (no fusion)

    @property
    def intensity(self) -> float:
        """Arithmetic intensity of the whole network: FLOPs per byte moved."""
        return self.flops / self.bytes

    def __repr__(self) -> str:
        return (f"{self.name}: {self.parameters / 1e6:.3g} M parameters, {self.flops / 1e9:.3g} GFLOP, "
                f"{self.bytes / 1e6:.3g} MB moved, intensity {self.intensity:.3g} FLOP/byte")


def _tensor_bytes(value: Any) -> int:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    return 0


def model_cost(model: Any, example_input: Any, *, name: str | None = None) -> ModelCost:
    """Count a network's parameters, FLOPs and bytes moved for one forward pass on `example_input`.

    FLOPs come from PyTorch's own `torch.utils.flop_counter.FlopCounterMode` (convolutions and
    matrix products, 2 per multiply-add, as `conv2d_cost` counts them). Bytes: every leaf module
    (a layer without sub-modules: Conv2d, BatchNorm2d, ReLU, Linear, pooling ...) is charged
    its inputs, its outputs and its own parameters and buffers, once each: what an engine that
    fuses nothing would move. Work done between modules (ResNet's residual add) is not charged.
    Taught in: 01_tensorrt_in_context.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if not isinstance(model, torch.nn.Module):
        raise CourseError(f"model_cost needs a torch.nn.Module, got {type(model).__name__}.")
    if _tensor_bytes(example_input) == 0:
        raise CourseError("model_cost needs an example input tensor (e.g. torch.randn(1, 3, 224, 224)).")
    moved = [0]

    def charge(module: Any, inputs: Any, output: Any) -> None:
        own = sum(_tensor_bytes(t) for t in (*module.parameters(recurse=False),
                                              *module.buffers(recurse=False)))
        moved[0] += _tensor_bytes(inputs) + _tensor_bytes(output) + own

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(charge) for m in leaves]
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(*example_input) if isinstance(example_input, tuple) else model(example_input)
    except (RuntimeError, TypeError, ValueError) as error:
        raise CourseError(f"the model could not run on the example input: {error}") from None
    finally:
        for handle in handles:
            handle.remove()
    flops = float(counter.get_total_flops())
    if flops <= 0 or moved[0] <= 0:
        raise CourseError("no convolution or matrix product ran: model_cost counts those FLOPs.")
    parameters = sum(p.numel() for p in model.parameters())
    return ModelCost(name or type(model).__name__, parameters, flops, float(moved[0]))


#: ATen ops that only allocate or relabel memory: left out when listing what a CPU op ran.
BOOKKEEPING_OPS = frozenset({
    "aten::empty", "aten::empty_strided", "aten::view", "aten::reshape", "aten::_unsafe_view",
    "aten::resize_", "aten::as_strided", "aten::as_strided_", "aten::detach", "detach",
    "aten::resolve_conj", "aten::resolve_neg", "aten::expand", "aten::contiguous", "aten::t",
    "aten::transpose", "aten::_nnpack_available", "aten::lift_fresh", "aten::alias",
})


def kernel_label(name: str, width: int = 60) -> str:
    """A readable label for a kernel name that `torch.profiler` recorded, cut to `width` characters.

    A CUDA kernel's C++ signature ("void cudnn::engines_precompiled::nhwcToNchwKernel<float, ...>(...)")
    becomes its function name ("nhwcToNchwKernel"); a CUTLASS kernel ("void cutlass::Kernel2<
    cutlass_80_tensorop_f16_s16816gemm_f16_128x256_64x3_nn_align2>(...)") its template argument,
    which names the architecture, "tensorop" (Tensor Cores), the tile and the alignment. Names
    without a signature ("aten::mm", cuBLAS's "sm80_xmma_gemm_..._ffma_...") stay as they are.
    Taught in: 01_tensorrt_in_context.
    """
    if not isinstance(name, str) or not name.strip():
        raise CourseError(f"kernel_label needs a kernel name (a non-empty string), got {name!r}.")
    if not isinstance(width, int) or isinstance(width, bool) or width < 8:
        raise CourseError(f"width must be an integer >= 8, got {width!r}.")
    label = name.strip()
    if "<" in label or "(" in label:  # a C++ signature
        label = label.removeprefix("void ")
        head, _, rest = label.partition("<")
        head = head.split("(")[0].strip().split("::")[-1]
        if head.startswith("Kernel") and rest:  # CUTLASS: the kernel is the template argument
            head = rest.split(">")[0].split("(")[0].split(",")[0].strip()
        label = head or label
    return label if len(label) <= width else label[:width - 3] + "..."


def _alignment(n: int) -> int:
    """Largest of 16, 8, 4, 2, 1 that divides n: how a GEMM dimension lines up with 16-element tiles."""
    return next(a for a in (16, 8, 4, 2, 1) if n % a == 0)


def kernels_run(fn: Any, device: Any = "cpu") -> list[str]:  # pragma: no mutate block
    """What `fn()` really ran, recorded by `torch.profiler`: CUDA kernel names on a GPU, the
    ATen ops on a CPU (outermost first, `BOOKKEEPING_OPS` left out), each name once.

    Taught in: 01_tensorrt_in_context.
    """
    import torch

    device = _torch_device(device)
    if not callable(fn):
        raise CourseError(f"kernels_run needs a function to call, got {type(fn).__name__}.")
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    if device.type == "cuda":
        names = [e.name for e in prof.events() if e.device_type == DeviceType.CUDA]
    else:
        names = [e.name for e in prof.events() if e.name not in BOOKKEEPING_OPS]
    return list(dict.fromkeys(names))  # first-seen order, no repeats


def _matmul_case(
    n: int, dtype: Any, device: Any, repeats: int, number: int,
) -> dict[str, Any]:  # pragma: no mutate block
    import torch

    generator = torch.Generator().manual_seed(n)
    a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    timing = benchmark(lambda: torch.matmul(a, b), repeats=repeats, warmup=3, number=number,
                       name=f"matmul {n} {str(dtype).removeprefix('torch.')}", device=device)
    cost = matmul_cost(n, n, n, dtype=a.element_size())
    return {
        "m": n, "n": n, "k": n, "dtype": str(dtype).removeprefix("torch."), "alignment": _alignment(n),
        "flops": cost.flops, "bytes": cost.bytes, "timing": timing.to_dict(),
        "achieved_flops": achieved_flops(cost, timing),
        "kernels": kernels_run(lambda: torch.matmul(a, b), device),
    }


def matmul_alignment_report(
    device: Any = "cuda", *, sizes: tuple[int, ...] = (4096, 4104, 4100, 4097),
    dtype: str = "float16", reference_dtype: str = "float32", repeats: int = 20, number: int = 5,
) -> dict[str, Any]:  # pragma: no mutate block
    """Time n x n x n matrix products whose n is a multiple of 16, 8, 4 or of nothing, and record
    which kernels ran (`torch.profiler`); returns plain data.

    Tensor Cores work on small tiles (16 x 16 ... for FP16), and cuBLAS's fastest Tensor-Core
    kernels want dimensions that line up with them; with other dimensions a slower kernel runs.
    `reference` is one `reference_dtype` product of the first size with TF32 switched off: on a
    GPU it runs on CUDA cores only and shows what a GEMM without Tensor Cores reaches.
    Taught in: 01_tensorrt_in_context (and benchmarks/tensor_cores.py on a GPU).
    """
    import datetime
    import platform

    import torch

    device = _torch_device(device)
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
              "float64": torch.float64}
    for label, value in (("dtype", dtype), ("reference_dtype", reference_dtype)):
        if value not in dtypes:
            raise CourseError(f"{label}={value!r}: use one of {sorted(dtypes)}.")
    sizes = tuple(sizes)
    if not sizes:
        raise CourseError("sizes must hold at least one matrix size.")
    _positive_ints(**{f"sizes[{i}]": n for i, n in enumerate(sizes)}, repeats=repeats, number=number)
    cuda = device.type == "cuda"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    try:
        if cuda:
            _set_tf32(False)  # the FP32 reference must not quietly use TF32 Tensor Cores
        cases = [_matmul_case(n, dtypes[dtype], device, repeats, number) for n in sizes]
        reference = _matmul_case(sizes[0], dtypes[reference_dtype], device, repeats, number)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    return {
        "benchmark": "matmul_alignment", "device": device.type, "device_name": name,
        "capability": list(torch.cuda.get_device_capability(device)) if cuda else None,
        "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "dtype": dtype, "cases": cases, "reference": {**reference, "tf32": False},
        "spec_sheet": spec_sheet(name) if cuda else None,
    }


def format_matmul_alignment_report(report: dict[str, Any], *, kernel_width: int = 60) -> str:
    """A readable table of `matmul_alignment_report`'s data: one row per size, with the kernels that
    ran (`kernel_label`, memsets left out), cut to `kernel_width` characters. Taught in: 01_tensorrt_in_context."""
    try:
        first = report["cases"][0]["achieved_flops"]
        lines = [f"{report['device_name']} ({report['device']}, torch {report['torch']}, {report['date']})",
                 f"{'n = m = k':>10}{'multiple of':>13}{'TFLOP/s':>9}{'vs first':>10}   kernel(s) that ran"]
        for case in [*report["cases"], report["reference"]]:
            label = f"{case['n']} {case['dtype']}" if case is report["reference"] else str(case["n"])
            kernels = ", ".join(kernel_label(k, kernel_width) for k in case["kernels"]
                                if not k.startswith("Memset")) or "(none recorded)"
            if len(kernels) > kernel_width:
                kernels = kernels[:kernel_width - 3] + "..."
            lines.append(f"{label:>10}{case['alignment']:>13}{case['achieved_flops'] / 1e12:>9.3g}"
                         f"{case['achieved_flops'] / first:>9.2f}x   {kernels}")
    except (KeyError, TypeError, IndexError, ZeroDivisionError) as error:
        raise CourseError(f"not a matmul_alignment_report dictionary ({type(error).__name__}: "
                          f"{error}).") from None
    return "\n".join(lines)
