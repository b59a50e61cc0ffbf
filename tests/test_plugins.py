"""Tests for course_utils.plugins and for the plugin code of notebook 10 that no machine here can run.

- Known answers: launch grids, masked lanes, PTX parameters, errors against the reference.
- The Triton kernel itself, run in Triton's interpreter on the CPU (float32, float16, a tail that is
  not a multiple of the block, NaN and infinities, nothing written past the end), and on a GPU
  where there is one; the notebook's kernel cell is the same source as the module's.
- `kernel_report` and `benchmarks/plugin_kernel.py` on the CPU, and every recorded result file.
- The notebook's `tensorrt.plugin` definitions (a `%%requires tensorrt-plugins` cell): the TensorRT 11.4
  wheel's pure-Python `plugin/` package imported on top of TensorRT-RTX (which has no `tensorrt.plugin`),
  in a subprocess, so that its decorators really validate the cell's signatures and register its creator.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import course_utils as cu
from course_utils import plugins
from course_utils.plugins import (
    BLOCK_SIZES,
    KERNEL_TOLERANCE,
    SPECIAL_VALUES,
    clamp_silu_kernel,
    format_kernel_report,
    interpreted,
    kernel_error,
    kernel_report,
    launch_grid,
    masked_lanes,
    ptx_entry_params,
)

ROOT = cu.repo_root()
NOTEBOOK = ROOT / "notebooks" / "10_plugins.ipynb"
RESULTS = ROOT / "benchmarks" / "results"
RECORDED = sorted(RESULTS.glob("plugin_kernel_*.json"))


# --------------------------------------------------------------------------- the reference
def test_reference_known_values() -> None:
    """f(x) = 0 for x <= 0, f(1) = 1/(1 + e^-1), f(x) -> x for large x, f(inf) = inf, NaN stays NaN."""
    x = np.array([-1e30, -3.0, -0.0, 0.0, 1.0, 2.0, 50.0, 1e30, np.inf, -np.inf, np.nan])
    got = cu.clamp_silu(x)
    want = [0, 0, 0, 0, 1 / (1 + math.exp(-1)), 2 / (1 + math.exp(-2)), 50.0, 1e30, np.inf, 0, np.nan]
    np.testing.assert_allclose(got, want, rtol=1e-15)  # NaN == NaN here
    assert np.isnan(got[-1]) and got[-3] == np.inf
    t = cu.clamp_silu(torch.tensor([float("nan"), -2.0, 1.0]))
    assert torch.isnan(t[0]) and t[1] == 0 and abs(float(t[2]) - 1 / (1 + math.exp(-1))) < 1e-7


def test_reference_keeps_the_dtype_and_float16_rounds() -> None:
    x = np.linspace(-4, 4, 101)
    half = cu.clamp_silu(x.astype(np.float16))
    assert half.dtype == np.float16 and cu.clamp_silu(x.astype(np.float32)).dtype == np.float32
    error = np.abs(half.astype(np.float64) - cu.clamp_silu(x.astype(np.float16).astype(np.float64)))
    assert 0 < error.max() < 1e-2  # float16 rounding, far below the values (up to ~4)


# --------------------------------------------------------------------------- launch grid
@pytest.mark.parametrize(("n", "block", "grid", "masked"), [
    (1000, 256, 4, 24), (1024, 256, 4, 0), (1025, 256, 5, 255), (1, 1024, 1, 1023),
    (8 * 3 * 227 * 227, 256, 4831, 40), (8 * 3 * 227 * 227, 1024, 1208, 296), (1 << 24, 1024, 1 << 14, 0),
])
def test_launch_grid_known_answers(n: int, block: int, grid: int, masked: int) -> None:
    assert launch_grid(n, block) == (grid,)
    assert masked_lanes(n, block) == masked
    assert grid * block - n == masked and 0 <= masked < block


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8", None])
def test_launch_grid_rejects_bad_sizes(bad: object) -> None:
    with pytest.raises(cu.CourseError, match="positive integer"):
        launch_grid(bad, 256)
    with pytest.raises(cu.CourseError, match="positive integer"):
        launch_grid(100, bad)


def test_launch_grid_needs_a_power_of_two() -> None:
    with pytest.raises(cu.CourseError, match="power of two"):
        launch_grid(100, 100)
    assert all(launch_grid(1, block) == (1,) for block in BLOCK_SIZES)


# --------------------------------------------------------------------------- PTX
PTX = """
.version 8.8
.target sm_90a
.address_size 64
.visible .entry add_kernel(
\t.param .u64 .ptr .global .align 1 add_kernel_param_0,
\t.param .u32 add_kernel_param_1,
\t.param .f32 add_kernel_param_2,
\t.param .u64 .ptr .global .align 1 add_kernel_param_3
)
.reqntid 128
{
\tld.param.b64 \t%rd1, [add_kernel_param_0];
}
.visible .entry other(
\t.param .u64 other_param_0
)
{
}
"""


def test_ptx_entry_params_known_answer() -> None:
    params = ptx_entry_params(PTX, "add_kernel")
    assert [(p.name, p.type, p.pointer) for p in params] == [
        ("add_kernel_param_0", ".u64", True), ("add_kernel_param_1", ".u32", False),
        ("add_kernel_param_2", ".f32", False), ("add_kernel_param_3", ".u64", True)]
    assert ptx_entry_params(PTX.encode(), "other") == [plugins.PtxParam("other_param_0", ".u64", False)]


def test_ptx_entry_params_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="defines 2 entries"):
        ptx_entry_params(PTX)
    with pytest.raises(cu.CourseError, match="No entry 'missing'"):
        ptx_entry_params(PTX, "missing")
    with pytest.raises(cu.CourseError, match="not PTX, or it was cut short"):
        ptx_entry_params(PTX[: PTX.index("add_kernel_param_1")])  # truncated: no closing parenthesis
    with pytest.raises(cu.CourseError, match="not PTX"):
        ptx_entry_params(os.urandom(256))
    with pytest.raises(cu.CourseError, match="Cannot read the PTX parameter"):
        ptx_entry_params(".entry k(\n.param .u64 .ptr\n)")
    with pytest.raises(cu.CourseError, match="str or bytes"):
        ptx_entry_params(None)


def test_the_kernel_compiles_to_ptx_without_a_gpu() -> None:
    """What notebook 10 step 3 shows: Triton compiles for a named GPU on this CPU."""
    import triton
    from triton.backends.compiler import GPUTarget

    source = triton.compiler.ASTSource(fn=clamp_silu_kernel, constexprs={"BLOCK_SIZE": 256},
                                       signature={"x_ptr": "*fp16", "n_elements": "i32", "y_ptr": "*fp16"})
    compiled = triton.compile(source, target=GPUTarget("cuda", 89, 32))
    ptx = compiled.asm["ptx"]
    params = ptx_entry_params(ptx, compiled.metadata.name)
    assert [(p.type, p.pointer) for p in params[:3]] == [(".u64", True), (".u32", False), (".u64", True)]
    assert all(p.pointer for p in params[3:])  # Triton's own scratch pointers, if any
    assert ".target sm_89" in ptx and "max.NaN" in ptx  # the NaN-keeping clamp


# --------------------------------------------------------------------------- kernel_error
def test_kernel_error_of_the_exact_answer_is_zero() -> None:
    x = np.array([-2.0, 0.0, 1.0, 3.0, np.inf, np.nan], np.float32)
    check = kernel_error(cu.clamp_silu(x.astype(np.float64)).astype(np.float32), x)
    assert check.ok and check.nan_mismatches == 0 and check.inf_mismatches == 0
    assert check.max_abs_error < 1e-7 and check.dtype == "float32" and check.n == 6


def test_kernel_error_known_offsets() -> None:
    x = np.array([1.0, 2.0, 4.0], np.float32)
    ref = cu.clamp_silu(x.astype(np.float64))
    off = ref * np.array([1.0, 1.0 + 1e-3, 1.0]) + np.array([0.0, 0.0, 0.25])
    check = kernel_error(off.astype(np.float32), x)
    assert not check.ok and not check.within_tolerance
    assert math.isclose(check.max_abs_error, 0.25, rel_tol=1e-6)  # element 2 is off by 0.25
    assert math.isclose(check.max_rel_error, 0.25 / ref[2], rel_tol=1e-5)
    assert check.worst_index == 2


def test_kernel_error_tolerance_is_the_dtypes() -> None:
    x = np.full(4, 3.0, np.float16)
    ref = cu.clamp_silu(np.array([3.0]))[0]
    ok_rtol, _ = KERNEL_TOLERANCE["float16"]
    inside = np.full(4, ref * (1 + 0.5 * ok_rtol))
    outside = np.full(4, ref * (1 + 4 * ok_rtol))
    assert kernel_error(inside, x, "float16").ok
    assert not kernel_error(outside, x, "float16").ok
    assert not kernel_error(inside, x, "float32").ok  # the same error is far too big for float32


def test_kernel_error_counts_nan_and_inf_mismatches() -> None:
    x = np.array([np.nan, np.inf, 1.0, 2.0], np.float32)
    y = cu.clamp_silu(x.astype(np.float64)).astype(np.float32)
    dropped = y.copy()
    dropped[0] = 0.0  # tl.maximum without propagate_nan
    assert kernel_error(dropped, x).nan_mismatches == 1 and not kernel_error(dropped, x).ok
    finite = y.copy()
    finite[1] = 3.4e38
    assert kernel_error(finite, x).inf_mismatches == 1 and not kernel_error(finite, x).ok
    extra_nan = y.copy()
    extra_nan[2] = np.nan
    assert kernel_error(extra_nan, x).nan_mismatches == 1


def test_kernel_error_with_another_reference() -> None:
    x = np.array([-1.0, 0.5, 2.0])
    double = kernel_error(2 * x, x.astype(np.float32), "float32", reference=lambda v: 2 * v)
    assert double.ok and double.max_abs_error == 0
    with pytest.raises(cu.CourseError, match="reference returned shape"):
        kernel_error(x, x, "float32", reference=lambda v: v[:1])


def test_kernel_error_bad_input() -> None:
    x = np.ones(4, np.float32)
    with pytest.raises(cu.CourseError, match="shape"):
        kernel_error(np.ones(3, np.float32), x)
    with pytest.raises(cu.CourseError, match="empty"):
        kernel_error(np.ones(0, np.float32), np.ones(0, np.float32))
    with pytest.raises(cu.CourseError, match="No tolerance for dtype 'float64'"):
        kernel_error(np.ones(4), np.ones(4))
    with pytest.raises(cu.CourseError, match="float arrays"):
        kernel_error(np.ones(4, np.int32), np.ones(4, np.int32), "float32")
    with pytest.raises(cu.CourseError, match="torch tensor or a numpy array, got list"):
        kernel_error([1.0], x[:1])
    noise = np.frombuffer(os.urandom(4096), np.float32)  # random bytes: NaNs, infinities, huge values
    check = kernel_error(noise, noise)
    assert isinstance(check.ok, bool) and check.n == 1024


# --------------------------------------------------------------------------- the kernel
def _run_interpreted(x: torch.Tensor, block: int, extra: int) -> tuple[torch.Tensor, int]:
    n = x.numel()
    y = torch.full((n + extra,), 7.0, dtype=x.dtype)
    interpreted(clamp_silu_kernel)[launch_grid(n, block)](x, n, y, BLOCK_SIZE=block)
    return y, n


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_the_kernel_in_the_interpreter_matches_the_reference(dtype: str, block: int) -> None:
    n = 3 * block + 17  # a tail: the last program has lanes switched off
    x = torch.cat([torch.tensor(SPECIAL_VALUES), torch.randn(n - len(SPECIAL_VALUES)) * 5]).to(getattr(torch, dtype))
    y, n = _run_interpreted(x, block, masked_lanes(n, block))
    check = kernel_error(y[:n], x)
    assert check.ok, check
    assert bool((y[n:] == 7.0).all()), "the kernel wrote past n_elements"
    assert torch.isnan(y[[i for i, v in enumerate(SPECIAL_VALUES) if math.isnan(v)][0]])


def test_interpreted_restores_the_environment_and_rejects_non_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    interpreted(clamp_silu_kernel)
    assert "TRITON_INTERPRET" not in os.environ  # later @triton.jit kernels still compile for the GPU
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    interpreted(clamp_silu_kernel)
    assert os.environ["TRITON_INTERPRET"] == "0"
    with pytest.raises(cu.CourseError, match="takes a @triton.jit kernel"):
        interpreted(lambda x: x)


@triton.jit
def _double(v):  # a device function of our own (module level: the interpreter reads the kernel's globals)
    return v * 2.0


@triton.jit
def _calls_device_functions(x_ptr, n, y_ptr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(y_ptr + offsets, _double(tl.sigmoid(tl.load(x_ptr + offsets, mask=mask))), mask=mask)


def test_interpreted_runs_the_device_functions_a_kernel_calls() -> None:
    """A kernel may call `tl.sigmoid` or its own `@triton.jit` helper; both run in the interpreter too."""
    x = torch.linspace(-4, 4, 100)
    y = torch.full((100,), 7.0)
    interpreted(_calls_device_functions)[launch_grid(100, 64)](x, 100, y, BLOCK=64)
    torch.testing.assert_close(y, 2 * torch.sigmoid(x))
    with pytest.raises(RuntimeError, match="outside of the scope of a kernel"):
        _double(1.0)  # after the launch, a compiled-mode device function refuses to run outside a kernel again


def _cell_sources(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "code"]


def test_the_notebook_teaches_the_modules_kernel() -> None:
    """benchmarks/plugin_kernel.py measures the module's kernel; the notebook shows its own copy: the same."""
    module_source = textwrap.dedent(inspect.getsource(clamp_silu_kernel.fn)).strip()
    (cell,) = [s for s in _cell_sources(NOTEBOOK) if "def clamp_silu_kernel(" in s]
    start = cell.index("@triton.jit")
    notebook_source = cell[start:cell.index("\n\n", start)].strip()
    assert notebook_source == module_source


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA) to run the compiled kernel")
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_compiled_kernel_on_the_gpu(dtype: str) -> None:
    n = (1 << 20) + 3
    x = torch.cat([torch.tensor(SPECIAL_VALUES), torch.randn(n - len(SPECIAL_VALUES)) * 5]).to(getattr(torch, dtype))
    x = x.cuda()
    y = torch.full((n + 1021,), 7.0, dtype=x.dtype, device="cuda")
    clamp_silu_kernel[launch_grid(n, 1024)](x, n, y, BLOCK_SIZE=1024)
    torch.cuda.synchronize()
    assert kernel_error(y[:n], x).ok and bool((y[n:] == 7.0).all())


# --------------------------------------------------------------------------- the report and the script
def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def check_kernel_report(report: dict) -> None:
    """Every number of a kernel_report follows from the others; the kernel passed; physics holds."""
    assert report["benchmark"] == "plugin_kernel" and report["script"] == "benchmarks/plugin_kernel.py"
    assert report["device"] in ("cpu", "cuda") and report["device_name"] and report["triton"]
    assert report["mode"] == ("compiled" if report["device"] == "cuda" else "Triton interpreter (CPU)")
    block = report["block_size"]
    assert report["cases"]
    spec = cu.spec_sheet(report["device_name"]) if report["device"] == "cuda" else None
    for case in report["cases"]:
        n, size = case["n"], {"float32": 4, "float16": 2}[case["dtype"]]
        assert case["grid"] == [launch_grid(n, block)[0]] and case["masked_lanes"] == masked_lanes(n, block)
        assert case["bytes_moved"] == 2 * n * size
        for key in ("kernel_error", "torch_error"):
            error = case[key]
            assert error["n"] == n and error["dtype"] == case["dtype"]
            assert (error["rtol"], error["atol"]) == KERNEL_TOLERANCE[case["dtype"]]
            assert 0 <= error["max_abs_error"] and 0 <= error["max_rel_error"]
        assert case["kernel_error"]["ok"] and case["kernel_error"]["nan_mismatches"] == 0
        kernel_s, torch_s = case["kernel_timing"]["median_s"], case["torch_timing"]["median_s"]
        for timing in (case["kernel_timing"], case["torch_timing"]):
            assert timing["n"] >= 2 and 0 < timing["min_s"] <= timing["median_s"] <= timing["max_s"]
        assert _close(case["speedup"], torch_s / kernel_s)
        assert _close(case["kernel_bytes_per_s"], case["bytes_moved"] / kernel_s)
        assert _close(case["torch_bytes_per_s"], case["bytes_moved"] / torch_s)
        if spec:  # nothing streams faster than the memory (x1.25 for what the 50 MB L2 may still hold)
            assert case["kernel_bytes_per_s"] <= 1.25 * spec["bandwidth"], case


def test_kernel_report_on_the_cpu() -> None:
    report = kernel_report("cpu", sizes=(300,), dtypes=("float32", "float16"), block_size=256, repeats=2)
    check_kernel_report(report)
    assert [c["dtype"] for c in report["cases"]] == ["float32", "float16"] and report["cases"][0]["grid"] == [2]
    text = format_kernel_report(report)
    assert "float16" in text and "Triton interpreter" in text


def test_kernel_report_takes_another_kernel_and_reference() -> None:
    report = kernel_report("cpu", kernel=clamp_silu_kernel, reference=lambda x: cu.clamp_silu(x), sizes=(64,),
                           dtypes=("float32",), block_size=64, repeats=2)
    check_kernel_report(report)


def test_kernel_report_bad_arguments() -> None:
    with pytest.raises(cu.CourseError, match="device must be"):
        kernel_report("tpu")
    with pytest.raises(cu.CourseError, match="at least 13"):
        kernel_report("cpu", sizes=(8,))
    with pytest.raises(cu.CourseError, match="dtypes must be among"):
        kernel_report("cpu", sizes=(64,), dtypes=("int8",))
    with pytest.raises(cu.CourseError, match="power of two"):
        kernel_report("cpu", block_size=1000)
    with pytest.raises(cu.CourseError, match="must be a @triton.jit kernel"):
        kernel_report("cpu", kernel=print, sizes=(64,))
    if not torch.cuda.is_available():
        with pytest.raises(cu.CourseError, match="needs an NVIDIA GPU"):
            kernel_report("cuda")
    with pytest.raises(cu.CourseError, match="Not a kernel_report result"):
        format_kernel_report({"cases": []})


def test_the_benchmark_script_runs_here(tmp_path: Path) -> None:
    out = tmp_path / "plugin_kernel_cpu.json"
    done = subprocess.run([sys.executable, "benchmarks/plugin_kernel.py", "--out", str(out), "--size", "2048",
                           "--repeats", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    check_kernel_report(report)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert report["device"] == expected and [c["n"] for c in report["cases"]] == [2048, 2048]
    assert "written:" in done.stdout and "speed-up" in done.stdout


def test_recorded_kernel_results_are_consistent() -> None:
    """Every benchmarks/results/plugin_kernel_*.json (none until a GPU run is recorded) passes the check."""
    for path in RECORDED:
        report = json.loads(path.read_text())
        check_kernel_report(report)
        assert report["device"] == "cuda", f"{path.name}: a recorded result comes from a GPU"


def test_a_broken_report_fails_the_check() -> None:
    report = kernel_report("cpu", sizes=(64,), dtypes=("float32",), block_size=64, repeats=2)
    report["cases"][0]["speedup"] *= 2
    with pytest.raises(AssertionError):
        check_kernel_report(report)


# --------------------------------------------------------------------------- the tensorrt.plugin cell
_SHIM = '''
from tensorrt_rtx_bindings import *  # noqa: F401,F403  (TensorRT-RTX: builds on a CPU, no tensorrt.plugin)
from tensorrt_rtx_bindings import __version__  # noqa: F401
import enum as _enum


class ISymExpr:  # the AOT symbolic-expression interface of TensorRT 11 (absent in TensorRT-RTX)
    def __init__(self, *args, **kwargs):
        pass


class QuickPluginCreationRequest(_enum.Enum):  # its members, as the 11.4 binding names them
    UNKNOWN = 0
    PREFER_JIT = 1
    PREFER_AOT = 2
    STRICT_JIT = 3
    STRICT_AOT = 4


class IPluginV3QuickAOTBuild:
    def __init__(self, *args, **kwargs):
        pass
'''

_DRIVER = r'''
import json, sys
import tensorrt as trt
import tensorrt.plugin as trtp
import torch, triton
import triton.language as tl
import course_utils as cu
from course_utils.plugins import clamp_silu_kernel
from tensorrt.plugin._lib import QDP_REGISTRY

cell = open(sys.argv[1], encoding="utf-8").read()
exec(compile(cell, "the notebook's tensorrt.plugin cell", "exec"), {
    "torch": torch, "triton": triton, "tl": tl, "cu": cu, "clamp_silu_kernel": clamp_silu_kernel,
    "__name__": "notebook"})
definition = QDP_REGISTRY["custom_domain::customOp2"]
combination = definition.autotune_func(None, ())[0]
combinations = [[[str(t) for t in c.types], [str(f) for f in c.layouts], list(c.tactics)]
                for c in combination._get_combinations()]

# The AOT implementation itself: no GPU here, so Triton compiles for a named one (sm_90).
from functools import partial
from triton.backends.compiler import GPUTarget
from tensorrt.plugin._tensor import SymExprs, SymInt32
from course_utils.plugins import ptx_entry_params
triton.compile = partial(triton.compile, target=GPUTarget("cuda", 90, 32))
aot = []
for dtype in (trt.float32, trt.float16):
    for tactic in combination._tactics:
        x = trtp.from_shape_expr((4, 3, 32, 32), dtype=dtype)
        name, ptx, launch, extra = definition.aot_impl_func(x, (x.like(),), tactic)
        # the checks tensorrt.plugin's _TemplateAOTPlugin.get_launch_params makes on what aot_impl returns
        assert isinstance(name, (str, bytes)) and isinstance(ptx, (str, bytes))
        assert isinstance(launch, trtp.KernelLaunchParams) and isinstance(extra, SymExprs)
        assert all(isinstance(arg, SymInt32) for arg in extra)
        params = ptx_entry_params(ptx, name)
        aot.append({"dtype": str(dtype), "tactic": tactic, "extra_args": len(extra),
                    "params": [[p.type, p.pointer] for p in params], "sm_90": ".target sm_90" in ptx})
# A kernel that needs Triton's global scratch memory must be refused (TensorRT cannot pass that pointer).
_compile = triton.compile


def _needs_scratch(*args, **kwargs):
    compiled = _compile(*args, **kwargs)
    compiled.metadata = compiled.metadata._replace(global_scratch_size=64)
    return compiled


triton.compile = _needs_scratch
try:
    definition.aot_impl_func(x, (x.like(),), 256)
    refuses_scratch = False
except AssertionError:
    refuses_scratch = True
triton.compile = _compile
print(json.dumps({
    "refuses_scratch": refuses_scratch,
    "creators": [[c.name, c.plugin_version, c.plugin_namespace] for c in trt.get_plugin_registry().all_creators],
    "inputs": definition.input_tensor_names, "attributes": list(definition.input_attrs),
    "outputs": definition.num_outputs, "impl": definition.impl_func.__name__,
    "aot_impl": definition.aot_impl_func.__name__, "autotune": definition.autotune_func.__name__,
    "expects_tactic": definition.expects_tactic, "tactics": list(combination._tactics),
    "combinations": combinations, "aot": aot,
}))
'''


def _tensorrt_11_plugin_package() -> Path:
    try:
        dist = importlib.metadata.distribution("tensorrt-cu13-bindings")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("tensorrt-cu13-bindings (a dev dependency) holds the tensorrt.plugin package: "
                    "pip install -e '.[dev]'")
    so = next(Path(dist.locate_file(f)) for f in dist.files or () if str(f).endswith("tensorrt_bindings/tensorrt.so"))
    return so.parent / "plugin"


def test_the_notebooks_tensorrt_plugin_definitions_validate(tmp_path: Path) -> None:
    """The decorators of TensorRT 11.4's tensorrt.plugin check the cell's signatures and register its creator."""
    try:
        import tensorrt_rtx_bindings  # noqa: F401
    except Exception as error:  # CI installs it
        if os.environ.get("CI"):
            pytest.fail(f"TensorRT-RTX must be importable here: {error}")
        pytest.skip(f"TensorRT-RTX is not importable: {error}")
    package = tmp_path / "tensorrt"
    shutil.copytree(_tensorrt_11_plugin_package(), package / "plugin",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__init__.py").write_text(_SHIM)
    (cell,) = [s for s in _cell_sources(NOTEBOOK) if "@trtp.register(" in s]
    assert cell.startswith("%%requires tensorrt-plugins")
    cell_file = tmp_path / "cell.py"
    cell_file.write_text(cell.split("\n", 1)[1])
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, str(driver), str(cell_file)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert ["customOp2", "1", "custom_domain"] in found["creators"]
    assert found["inputs"] == ["x"] and found["attributes"] == [] and found["outputs"] == 1
    assert (found["impl"], found["aot_impl"], found["autotune"]) == ("clamp_silu_jit", "clamp_silu_aot",
                                                                      "clamp_silu_autotune")
    assert found["expects_tactic"] is True and found["tactics"] == list(BLOCK_SIZES)
    assert found["combinations"] == [[["DataType.FLOAT", "DataType.FLOAT"], ["TensorFormat.LINEAR"] * 2, [256, 1024]],
                                     [["DataType.HALF", "DataType.HALF"], ["TensorFormat.LINEAR"] * 2, [256, 1024]]]
    assert len(found["aot"]) == 4  # float32 / float16 x the two tactics
    assert found["refuses_scratch"], "aot_impl accepted a kernel that needs Triton's global scratch memory"
    for case in found["aot"]:
        assert case["sm_90"] and case["extra_args"] == 1  # one int32 scalar: n_elements
        # ours: input pointer, int32 count, output pointer; then only Triton's scratch pointers
        assert case["params"][:3] == [[".u64", True], [".u32", False], [".u64", True]]
        assert all(pointer for _, pointer in case["params"][3:])


def _probe_source() -> str:
    """The program step 6 runs in a fresh process to load and run each plan (a string in its cell)."""
    (cell,) = [s for s in _cell_sources(NOTEBOOK) if "probe = " in s and "deserialize_cuda_engine" in s]
    tree = ast.parse(cell.split("\n", 1)[1])  # without the %%requires line
    (value,) = [node.value.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == ["probe"]]
    return value


def test_the_fresh_process_probe_uses_only_tensorrt_11_4_names() -> None:
    """The probe is a string (the name check of test_trt_names reads cells, not strings): check it here."""
    import test_trt_names

    probe = _probe_source()
    uses = test_trt_names.scan({"notebook 10, the probe of step 6": probe})
    names = {use.name for use in uses}
    assert {"deserialize_cuda_engine", "create_execution_context", "set_input_shape", "get_tensor_shape",
            "set_tensor_address", "execute_async_v3"} <= names, names
    assert not test_trt_names.violations(uses)
    planted = probe.replace("execute_async_v3", "execute_async_v2")  # removed in TensorRT 10
    assert test_trt_names.violations(test_trt_names.scan({"planted": planted}))


def test_the_plugin_id_matches_the_notebooks_onnx_nodes() -> None:
    """The plugin is registered as custom_domain::customOp2; both ONNX nodes of step 5 must ask for exactly that."""
    sources = "\n".join(_cell_sources(NOTEBOOK))
    namespace, name = cu.CUSTOM_OP_NAME.split("::")
    assert f'@trtp.register("{cu.CUSTOM_OP_NAME}")' in sources
    assert f'plugin_namespace_s="{namespace}"' in sources  # 5a: the seed's symbolic
    assert f'"{name}",\n    {{"plugin_namespace": "{namespace}"' in sources  # 5b: cu.replace_with_node


def test_relative_error_ignores_references_the_dtype_cannot_hold() -> None:
    import numpy as np

    # f(4e-8) = 4e-8 * sigmoid(4e-8) = 2e-8: below half of float16's smallest subnormal (6e-8), so
    # float16 rounds it to 0. That is as right as float16 allows (atol covers it); the relative
    # error, taken only where float16 holds the value at full precision, must not read 1.0.
    x = np.array([4e-8, 1.0, 2.0], dtype=np.float64)
    out = cu.clamp_silu(x).astype(np.float16)
    assert out[0] == 0.0
    error = cu.kernel_error(out, x, dtype="float16")
    assert error.ok and error.max_rel_error < 1e-3, error
    wrong = out.copy()
    wrong[1] *= 1.01  # a 1 % error on a normal value is still reported
    assert cu.kernel_error(wrong, x, dtype="float16").max_rel_error > 5e-3


# --------------------------------------------------------------------------- exercises, as a learner
@triton.jit
def _learners_sharp_kernel(x_ptr, n_elements, y_ptr, BETA: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    i = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = i < n_elements
    v = tl.load(x_ptr + i, mask=inside, other=0.0).to(tl.float32)
    m = tl.where(v < 0, 0.0, v)  # NaN < 0 is False: NaN stays
    tl.store(y_ptr + i, (m * tl.sigmoid(BETA * m)).to(y_ptr.dtype.element_ty), mask=inside)


def test_exercise_answers_written_differently_from_the_solutions_are_accepted() -> None:
    from onnx import helper

    from course_utils.exercises import judge_exercise

    n = 8 * 3 * 227 * 227  # numpy ints (np.ceil, np.prod) count as ints
    grid = {b: np.int64(np.ceil(n / b)) for b in BLOCK_SIZES}
    assert judge_exercise("10.1", ex1_grid_x=grid, ex1_masked={b: int(grid[b]) * b - n for b in BLOCK_SIZES},
                          ex1_per_thread={b: b // 128 for b in BLOCK_SIZES}, num_warps=4).right
    node = helper.make_node("fast_gelu", inputs=["features"], outputs=["activated"], aot=True,
                            approximate="tanh", plugin_namespace="vision")  # bool aot, no version, no name
    assert judge_exercise("10.2", ex2_node=node).right

    result = judge_exercise("10.3", ex3_kernel=_learners_sharp_kernel)
    assert result.right, result.message
