"""The custom operator of notebooks 05 and 07 as a TensorRT plugin: its GPU kernel, and how it is tested.

Notebook 10 writes the Triton kernel and every `tensorrt.plugin` definition in its own cells. This
module holds the same kernel for `benchmarks/plugin_kernel.py` and the tests (tests/test_plugins.py
checks that the notebook's kernel cell and `clamp_silu_kernel` here are the same source), plus the
small pieces around it:

- `launch_grid(n, block)`: the 1-D grid `(ceil(n / block),)` of programs, each computing `block`
  elements; `masked_lanes(n, block)` is how many lanes of the last program the mask switches off.
- `clamp_silu_kernel`: the Triton kernel. Its arguments are (inputs, int32 scalars, outputs), the
  order in which TensorRT's AOT plugin launcher passes them; it computes in float32 and stores in
  the output's dtype; NaN stays NaN (`propagate_nan`), as with `torch.clamp`.
- `interpreted(kernel)`: the same kernel under Triton's interpreter (`TRITON_INTERPRET=1`), which runs
  the kernel's Python body with numpy on CPU tensors: a check of its logic (offsets, mask, grid)
  on any machine, not of the GPU's arithmetic. Device functions it calls (`tl.sigmoid`, your own
  `@triton.jit` helpers) are interpreted too.
- `ptx_entry_params(ptx)`: the parameters of the `.entry` a PTX file defines (what a launcher must pass).
- `kernel_error(output, x)`: the output against the float64 reference (`cu.clamp_silu` of float64
  values): worst absolute and relative error, NaN and infinity mismatches, and a verdict against the
  output dtype's tolerance (`KERNEL_TOLERANCE`).
- `kernel_report(device)`: the benchmark: the kernel and PyTorch's eager reference on the same
  inputs (float32 and float16), their errors, median times (`cu.benchmark`), speed-up and bytes/s.
  On a CPU it falls back to the interpreter and small sizes; `format_kernel_report` prints it.
Taught in: 10_plugins.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import CourseError, MissingDependencyError

try:  # torch's Linux wheels bring Triton; elsewhere the kernel is simply not defined
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - every course machine has it
    triton = tl = None

__all__ = [
    "BLOCK_SIZES", "KERNEL_TOLERANCE", "launch_grid", "masked_lanes", "clamp_silu_kernel", "interpreted",
    "PtxParam", "ptx_entry_params", "KernelError", "kernel_error", "kernel_report", "format_kernel_report",
]

#: The block sizes the plugin offers TensorRT as tactics (`@trtp.autotune`); TensorRT times each.
BLOCK_SIZES = (256, 1024)
#: Allowed error of the kernel against the float64 reference: |out - ref| <= atol + rtol * |ref|.
#: float32: 8 units in the last place (the GPU's exp is not exactly rounded); float16: one unit in
#: the last place (2**-10), since the kernel computes in float32 and rounds once on the store.
KERNEL_TOLERANCE = {"float32": (2.0**-20, 1e-30), "float16": (2.0**-10, 2.0**-24)}


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CourseError(f"{name} must be a positive integer, got {value!r}.")
    return value


def launch_grid(n_elements: int, block_size: int) -> tuple[int]:
    """The 1-D launch grid for `n_elements` with `block_size` elements per program: `(ceil(n / block),)`.

    Triton's `tl.arange` needs a power of two, so `block_size` must be one. Example:
    `launch_grid(1000, 256) == (4,)`: four programs cover 1024 lanes, the mask switches off 24.
    Taught in: 10_plugins.
    """
    _positive_int("n_elements", n_elements)
    _positive_int("block_size", block_size)
    if block_size & (block_size - 1):
        raise CourseError(f"block_size must be a power of two (tl.arange needs one), got {block_size}.")
    return (-(-n_elements // block_size),)


def masked_lanes(n_elements: int, block_size: int) -> int:
    """Lanes of the grid that the kernel's mask switches off: `grid * block - n`. Taught in: 10_plugins."""
    (programs,) = launch_grid(n_elements, block_size)
    return programs * block_size - n_elements


if triton is not None:
    @triton.jit
    def clamp_silu_kernel(x_ptr, n_elements, y_ptr, BLOCK_SIZE: tl.constexpr):
        # Arguments: inputs, then int32 scalars, then outputs (the order TensorRT's AOT launcher uses).
        pid = tl.program_id(0)                                 # which block of BLOCK_SIZE elements
        offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = offsets < n_elements                            # the last block may stick out
        x = tl.load(x_ptr + offsets, mask=mask).to(tl.float32)  # compute in float32, also for float16
        x = tl.maximum(x, 0.0, propagate_nan=tl.PropagateNan.ALL)  # clamp(min=0); NaN stays NaN
        y = x / (1 + tl.exp(-x))                               # the seed's x / (1 + exp(-x))
        tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=mask)


def _needs_triton() -> None:
    if triton is None:
        raise MissingDependencyError("triton", "pip install triton   # Linux; torch's Linux wheels include it",
                                     needed_for="the plugin's GPU kernel")


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def _device_functions_interpreted() -> Iterator[None]:
    """While a kernel runs in the interpreter, run the `@triton.jit` functions it calls there too.

    Functions decorated while `TRITON_INTERPRET` was unset (all of `triton.language`'s own, such as
    `tl.sigmoid`, and the learner's helpers) are compiled-mode `JITFunction`s, which refuse to be
    called outside a compiled kernel; this routes such calls through Triton's interpreter.
    """
    try:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except ImportError:  # pragma: no cover - a Triton that moved them: device functions stay compiled-only
        yield
        return
    compiled_call = JITFunction.__call__
    cache: dict[Any, Any] = {}

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.fn not in cache:
            cache[self.fn] = InterpretedFunction(self.fn)
        return cache[self.fn](*args, **kwargs)

    JITFunction.__call__ = call
    try:
        yield
    finally:
        JITFunction.__call__ = compiled_call


class InterpretedKernel:
    """A `@triton.jit` kernel under Triton's interpreter; launch it as `kernel[grid](*args, **constexprs)`."""

    def __init__(self, function: Callable[..., Any]) -> None:
        with _environment("TRITON_INTERPRET", "1"):  # read by triton.jit as it decorates
            self._interpreted = triton.jit(function)
        self.fn = function
        self.arg_names = list(self._interpreted.arg_names)

    def __getitem__(self, grid: Any) -> Callable[..., Any]:
        launch = self._interpreted[grid]

        def run(*args: Any, **kwargs: Any) -> Any:
            with _device_functions_interpreted():
                return launch(*args, **kwargs)

        return run


def interpreted(kernel: Any) -> InterpretedKernel:
    """The same Triton kernel under Triton's interpreter: launch it on CPU tensors, no GPU needed.

    `triton.jit` returns an interpreted function when `TRITON_INTERPRET=1` is set as it decorates;
    this decorates the kernel's Python function (`kernel.fn`) again with it set (and restores the
    variable). While it runs, the `@triton.jit` device functions it calls (`tl.sigmoid`, your own
    helpers) run in the interpreter too. The interpreter runs the body with numpy: it checks
    offsets, masks and the grid, not the GPU's float arithmetic.
    Taught in: 10_plugins.
    """
    _needs_triton()
    function = getattr(kernel, "fn", None)
    if not callable(function):
        raise CourseError(f"interpreted() takes a @triton.jit kernel, got {type(kernel).__name__}.")
    return InterpretedKernel(function)


# --------------------------------------------------------------------------- PTX
@dataclass(frozen=True)
class PtxParam:
    """One parameter of a PTX kernel entry: its name, PTX type (.u64, .u32, .f32...) and whether it is a pointer."""

    name: str
    type: str
    pointer: bool


_ENTRY = re.compile(r"\.entry\s+([A-Za-z_$][\w$]*)\s*\((.*?)\)", re.DOTALL)
_TYPE = re.compile(r"^\.(?:b|u|s|f)\d+$")
_NAME = re.compile(r"^[A-Za-z_$%][\w$]*$")


def ptx_entry_params(ptx: str | bytes, kernel_name: str | None = None) -> list[PtxParam]:
    """The parameters of a kernel entry (`.visible .entry name(...)`) in PTX text, in order.

    A launcher (TensorRT's AOT plugin runtime, `cuLaunchKernel`) must pass exactly these. With
    `kernel_name`, that entry; otherwise the file must define exactly one.
    Taught in: 10_plugins.
    """
    if isinstance(ptx, bytes):
        ptx = ptx.decode("utf-8", errors="replace")
    if not isinstance(ptx, str):
        raise CourseError(f"ptx_entry_params takes PTX text (str or bytes), got {type(ptx).__name__}.")
    entries = {name: body for name, body in _ENTRY.findall(ptx)}
    if not entries:
        raise CourseError("No `.entry name(...)` in this text: it is not PTX, or it was cut short.")
    if kernel_name is None:
        if len(entries) != 1:
            raise CourseError(f"This PTX defines {len(entries)} entries {sorted(entries)}; name one.")
        kernel_name = next(iter(entries))
    if kernel_name not in entries:
        raise CourseError(f"No entry {kernel_name!r} in this PTX; it defines {sorted(entries)}.")
    params = []
    for piece in entries[kernel_name].split(","):
        if not piece.strip():
            continue
        tokens = piece.split()  # .param .u64 .ptr .global .align 1 name_param_0
        types = [token for token in tokens if _TYPE.match(token)]
        if tokens[0] != ".param" or len(types) != 1 or not _NAME.match(tokens[-1]):
            raise CourseError(f"Cannot read the PTX parameter {piece.strip()!r}.")
        params.append(PtxParam(tokens[-1], types[0], ".ptr" in tokens))
    return params


# --------------------------------------------------------------------------- error against the reference
@dataclass(frozen=True)
class KernelError:
    """How an output compares with the float64 reference of the same input."""

    dtype: str
    n: int
    max_abs_error: float  # over elements where both are finite
    max_rel_error: float  # |out - ref| / |ref| where |ref| is a normal number of the output's dtype
    worst_index: int  # the element with the largest error relative to the tolerance
    nan_mismatches: int  # NaN in one and not in the other
    inf_mismatches: int  # an infinity in one that the other does not have (same sign)
    rtol: float
    atol: float
    within_tolerance: bool  # |out - ref| <= atol + rtol * |ref| wherever both are finite

    @property
    def ok(self) -> bool:
        """Within the dtype's tolerance everywhere, NaN where the reference has NaN, same infinities."""
        return self.within_tolerance and self.nan_mismatches == 0 and self.inf_mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "n": self.n, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "worst_index": self.worst_index,
                "nan_mismatches": self.nan_mismatches, "inf_mismatches": self.inf_mismatches,
                "rtol": self.rtol, "atol": self.atol, "within_tolerance": self.within_tolerance, "ok": self.ok}

    def __str__(self) -> str:
        verdict = "within tolerance" if self.ok else "NOT within tolerance"
        return (f"{self.dtype} n={self.n}: max abs error {self.max_abs_error:.3g}, max rel error "
                f"{self.max_rel_error:.3g} (tolerance {self.rtol:.3g}), NaN mismatches {self.nan_mismatches}, "
                f"inf mismatches {self.inf_mismatches}: {verdict}")


def _as_numpy(value: Any, what: str) -> Any:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor (on any device)
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    if not isinstance(value, np.ndarray):
        raise CourseError(f"{what} must be a torch tensor or a numpy array, got {type(value).__name__}.")
    return value


def kernel_error(output: Any, x: Any, dtype: str | None = None,
                 reference: Callable[[Any], Any] | None = None) -> KernelError:
    """Compare `output` with the float64 reference of `x`, element by element.

    `output` and `x` are torch tensors (any device) or numpy arrays of the same shape. The reference
    is `cu.clamp_silu` of `x` as float64 (the seed's op), or `reference(x as a float64 array)`. The
    tolerance is `KERNEL_TOLERANCE[dtype]` (`dtype`: the output's, "float32" or "float16"). NaN must
    come out where the reference has NaN, and infinities must match. The relative error is taken
    where the reference is a normal number of `dtype` (subnormal results are judged by atol).
    Taught in: 10_plugins.
    """
    import numpy as np

    from .operators import clamp_silu

    got, inputs = _as_numpy(output, "output"), _as_numpy(x, "x")
    if got.shape != inputs.shape:
        raise CourseError(f"output has shape {got.shape} but x has {inputs.shape}; compare the same tensor.")
    if got.size == 0:
        raise CourseError("output is empty: there is nothing to compare.")
    dtype = dtype or str(got.dtype)
    if dtype not in KERNEL_TOLERANCE:
        raise CourseError(f"No tolerance for dtype {dtype!r}; the kernel is checked in {sorted(KERNEL_TOLERANCE)}.")
    if not np.issubdtype(inputs.dtype, np.floating) or not np.issubdtype(got.dtype, np.floating):
        raise CourseError(f"x and output must be float arrays, got {inputs.dtype} and {got.dtype}.")
    rtol, atol = KERNEL_TOLERANCE[dtype]
    with np.errstate(invalid="ignore"):  # signalling NaNs (random bytes) convert quietly
        ref = np.asarray((reference or clamp_silu)(inputs.astype(np.float64)), np.float64)
        got = got.astype(np.float64).ravel()
    if ref.shape != inputs.shape:
        raise CourseError(f"reference returned shape {ref.shape} for an input of shape {inputs.shape}.")
    ref = ref.ravel()
    nan_mismatches = int(np.count_nonzero(np.isnan(got) != np.isnan(ref)))
    inf_mismatches = int(np.count_nonzero((np.isinf(got) | np.isinf(ref)) & (got != ref)
                                          & ~np.isnan(got) & ~np.isnan(ref)))
    finite = np.isfinite(got) & np.isfinite(ref)
    with np.errstate(invalid="ignore"):  # inf - inf where the two are not both finite (masked out)
        diff = np.where(finite, np.abs(got - ref), 0.0)
    scale = np.abs(ref)
    # Relative error only where the dtype holds the reference at full precision: below its smallest
    # normal number (6.1e-5 in float16) a value flushes to 0 or loses digits, and |out - ref| / |ref|
    # reads 1.0 for an answer that is as right as the dtype allows (atol covers those).
    nonzero = finite & (scale >= float(np.finfo(np.dtype(dtype)).tiny))
    rel = np.where(nonzero, diff / np.where(nonzero, scale, 1.0), 0.0)
    over = diff / (atol + rtol * scale)  # > 1 means outside the tolerance
    worst = int(np.argmax(np.where(finite, over, -1.0)))
    return KernelError(dtype, int(got.size), float(diff.max()), float(rel.max()), worst, nan_mismatches,
                       inf_mismatches, rtol, atol, bool((over[finite] <= 1.0).all()))


# --------------------------------------------------------------------------- the benchmark
#: Inputs every check includes besides random values: the edges of the op.
SPECIAL_VALUES = (0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30, 80.0, -80.0, 1e4, -1e4,
                  float("inf"), float("-inf"), float("nan"))
GPU_SIZES = (1 << 24,)
CPU_SIZES = (1 << 14,)


def _inputs(n: int, dtype: Any, device: Any, seed: int) -> Any:
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=generator) * 4
    specials = torch.tensor(SPECIAL_VALUES)
    x[: len(specials)] = specials
    return x.to(dtype).to(device)


def kernel_report(device: str = "cpu", *, kernel: Any = None, reference: Callable[[Any], Any] | None = None,
                  sizes: Sequence[int] | None = None, dtypes: Sequence[str] = ("float32", "float16"),
                  block_size: int = 1024, repeats: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Run the Triton kernel and PyTorch's eager reference on the same inputs; errors and times.

    `kernel` is a `@triton.jit` kernel with the arguments `(x_ptr, n_elements, y_ptr, BLOCK_SIZE)`
    (default: `clamp_silu_kernel`); `reference` is the PyTorch function it is compared with (default:
    `x.clamp(min=0)`, then `x / (1 + torch.exp(-x))`, the seed's `forward`). For each size and dtype:
    random values (and `SPECIAL_VALUES`: 0, +-1, tiny, large, +-inf, NaN), the kernel's output and the
    PyTorch reference's against the float64 reference (`kernel_error`), the median times of both
    (`cu.benchmark`, which synchronizes the GPU), the speed-up and the bytes moved per second (one
    read and one write of n elements). On a CPU the kernel runs under Triton's interpreter
    (`interpreted`): its numbers check the logic and the harness, not a speed. Returns plain data for JSON.
    Taught in: 10_plugins (benchmarks/plugin_kernel.py runs it on a GPU).
    """
    import datetime
    import platform

    import torch

    from .timing import benchmark

    _needs_triton()
    if device not in ("cpu", "cuda"):
        raise CourseError(f"device must be 'cpu' or 'cuda', got {device!r}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise CourseError("device='cuda' needs an NVIDIA GPU that PyTorch sees; use device='cpu' here.")
    launch_grid(1, block_size)  # validates block_size
    gpu = device == "cuda"
    sizes = tuple(sizes or (GPU_SIZES if gpu else CPU_SIZES))
    for n in sizes:
        _positive_int("size", n)
        if n < len(SPECIAL_VALUES):
            raise CourseError(f"sizes must be at least {len(SPECIAL_VALUES)} (the special values), got {n}.")
    for name in dtypes:
        if name not in KERNEL_TOLERANCE:
            raise CourseError(f"dtypes must be among {sorted(KERNEL_TOLERANCE)}, got {name!r}.")
    repeats = repeats or (50 if gpu else 3)
    kernel = kernel if kernel is not None else clamp_silu_kernel
    if not callable(getattr(kernel, "fn", None)):
        raise CourseError(f"kernel must be a @triton.jit kernel, got {type(kernel).__name__}.")
    if not gpu:
        kernel = interpreted(kernel)

    def seed_forward(x: Any) -> Any:
        x = x.clamp(min=0)
        return x / (1 + torch.exp(-x))

    reference = reference or seed_forward

    report: dict[str, Any] = {
        "benchmark": "plugin_kernel", "script": "benchmarks/plugin_kernel.py", "device": device,
        "device_name": torch.cuda.get_device_name(0) if gpu else (platform.processor() or platform.machine()),
        "capability": list(torch.cuda.get_device_capability(0)) if gpu else None,
        "mode": "compiled" if gpu else "Triton interpreter (CPU)",
        "torch": torch.__version__, "triton": triton.__version__,
        "cuda": torch.version.cuda if gpu else None,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "block_size": block_size, "special_values": [repr(v) for v in SPECIAL_VALUES], "cases": [],
    }
    for n in sizes:
        grid = launch_grid(n, block_size)
        for name in dtypes:
            dtype = getattr(torch, name)
            x = _inputs(n, dtype, device, seed)
            y = torch.empty_like(x)

            def run_kernel(x: Any = x, y: Any = y, n: int = n, grid: tuple[int] = grid) -> Any:
                kernel[grid](x, n, y, BLOCK_SIZE=block_size)
                return y

            run_kernel()
            kernel_check = kernel_error(y, x, name)
            torch_check = kernel_error(reference(x), x, name)
            kernel_time = benchmark(run_kernel, repeats=repeats, warmup=2, name=f"triton {name}", device=device)
            torch_time = benchmark(lambda x=x: reference(x), repeats=repeats, warmup=2, name=f"torch {name}",
                                   device=device)
            moved = 2 * n * x.element_size()
            report["cases"].append({
                "dtype": name, "n": n, "grid": list(grid), "masked_lanes": masked_lanes(n, block_size),
                "bytes_moved": moved, "kernel_error": kernel_check.to_dict(), "torch_error": torch_check.to_dict(),
                "kernel_timing": kernel_time.to_dict(), "torch_timing": torch_time.to_dict(),
                "speedup": torch_time.median_s / kernel_time.median_s,
                "kernel_bytes_per_s": moved / kernel_time.median_s,
                "torch_bytes_per_s": moved / torch_time.median_s,
            })
    return report


def format_kernel_report(report: dict[str, Any]) -> str:
    """The report of `kernel_report` as a table: errors, times, speed-up, bytes/s. Taught in: 10_plugins."""
    try:
        header = (f"{report['device_name']} ({report['mode']}), torch {report['torch']}, triton {report['triton']}, "
                  f"{report['date']}, block size {report['block_size']}")
        rows = [header,
                f"{'dtype':<8} {'n':>9} {'kernel max rel err':>18} {'torch max rel err':>17} {'NaN/inf ok':>10} "
                f"{'kernel':>10} {'torch':>10} {'speed-up':>8} {'kernel GB/s':>11}"]
        for case in report["cases"]:
            k, t = case["kernel_error"], case["torch_error"]
            special_ok = k["nan_mismatches"] == 0 and k["inf_mismatches"] == 0
            rows.append(
                f"{case['dtype']:<8} {case['n']:>9} {k['max_rel_error']:>18.2e} {t['max_rel_error']:>17.2e} "
                f"{'yes' if special_ok else 'NO':>10} {case['kernel_timing']['median_s'] * 1e3:>8.3f}ms "
                f"{case['torch_timing']['median_s'] * 1e3:>8.3f}ms {case['speedup']:>7.2f}x "
                f"{case['kernel_bytes_per_s'] / 1e9:>11.1f}")
    except (KeyError, TypeError) as error:
        raise CourseError(f"Not a kernel_report result (missing {error}).") from None
    return "\n".join(rows)
