"""Check what `torch.onnx.export` produced: verify it against PyTorch, compare two exports.

The export call itself stays in the notebooks (the learner must see `torch.onnx.export`);
this module does the repeated plumbing around it:

- `capture_export_messages()` records what an exporter said (warnings, progress lines,
  log records) and how long it took, so two exporters can be compared side by side.
- `verify_onnx_export(path, module)` makes inputs from the ONNX model's declared inputs
  (symbolic dimensions such as `batch` filled from `batch_sizes`), runs onnxruntime on CPU
  and the PyTorch module, and reports the max abs / rel error of every output; a mismatch
  raises a `CourseError` that names the output that differs.
- `compare_exports({...})` puts opset, nodes, dynamic dimension names, where the weights
  are stored and the exporter's warnings of several exports in one table.
Taught in: 02_pytorch_to_onnx (and 03_what_export_does).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CourseError

__all__ = [
    "ExportMessages",
    "capture_export_messages",
    "OutputCheck",
    "VerificationResult",
    "verify_onnx_export",
    "ExportComparison",
    "compare_exports",
]

# onnxruntime's type strings -> numpy dtypes for the inputs we generate.
_ORT_TYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}

# verify_onnx_export's absolute tolerance when none is given; it is capped per output at
# rtol * max|reference| so that outputs of tiny size are compared to their own size.
DEFAULT_ATOL = 1e-4


# --------------------------------------------------------------------------- messages
@dataclass
class ExportMessages:
    """What an exporter said while it ran: warnings, printed lines, log records, time.

    Taught in: 02_pytorch_to_onnx.
    """

    warnings: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def all_lines(self) -> list[str]:
        """Every message, warnings first, as one list of short lines."""
        return (
            [f"warning: {w}" for w in self.warnings]
            + [f"printed: {p}" for p in self.printed]
            + [f"log: {entry}" for entry in self.logged]
        )

    def __str__(self) -> str:
        lines = [f"export took {_seconds(self.seconds)}; {len(self.warnings)} warning(s), "
                 f"{len(self.printed)} printed line(s), {len(self.logged)} log record(s)"]
        lines += [f"  {_shorten(line, 160)}" for line in self.all_lines()]
        return "\n".join(lines)

    __repr__ = __str__


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextlib.contextmanager
def capture_export_messages() -> Iterator[ExportMessages]:
    """Record an exporter's warnings, printed progress and WARNING+ log records, and its time.

    Use it around the real call so the notebook still shows `torch.onnx.export`:

        with cu.capture_export_messages() as said:
            torch.onnx.export(model, (x,), path, dynamo=True)
        print(said)

    Taught in: 02_pytorch_to_onnx.
    """
    said = ExportMessages()
    out, err = io.StringIO(), io.StringIO()
    handler = _ListHandler(said.logged)
    # torch's loggers ("torch", "torch.onnx") do not propagate to the root logger: listen
    # to the root and to every logger that stops propagation.
    listened = [logging.getLogger()] + [
        logger for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger) and not logger.propagate]
    for logger in listened:
        logger.addHandler(handler)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            yield said
    finally:
        said.seconds = time.perf_counter() - start
        for logger in listened:
            logger.removeHandler(handler)
        said.warnings = _unique(f"{w.category.__name__}: {_first_line(w.message)}"
                                for w in caught)
        # torch's loggers also print their records to stderr: keep each message once.
        logged = tuple(entry.split(": ", 1)[-1] for entry in said.logged)
        said.printed = [line.rstrip() for line in (out.getvalue() + err.getvalue()).splitlines()
                        if line.strip() and not (logged and line.rstrip().endswith(logged))]


# --------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class OutputCheck:
    """One output at one input shape: how far onnxruntime is from PyTorch.

    Taught in: 02_pytorch_to_onnx.
    """

    output: str
    batch: int | None
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    ok: bool
    atol: float | None = None  # the absolute tolerance applied to this output


@dataclass
class VerificationResult:
    """Every output checked at every batch size; `ok` when all are within tolerance.

    Taught in: 02_pytorch_to_onnx.
    """

    model: str
    checks: list[OutputCheck]
    input_shapes: dict[int | None, dict[str, tuple[int, ...]]]
    atol: float
    rtol: float

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def __bool__(self) -> bool:
        # `assert cu.verify_onnx_export(...)` on a dataclass would always pass: refuse it.
        raise CourseError("A VerificationResult has no truth value: test result.ok (and its "
                          "numbers, result.max_abs_error / max_rel_error) instead.")

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    @property
    def batch_sizes(self) -> list[int | None]:
        return list(self.input_shapes)

    def table(self) -> str:
        """The checks as a fixed-width text table."""
        header = f"{'batch':>5}  {'output':<16} {'shape':<18} {'max abs err':>11}  " \
                 f"{'max rel err':>11}  ok"
        rows = [header, "-" * len(header)]
        for c in self.checks:
            batch = "-" if c.batch is None else str(c.batch)
            rows.append(f"{batch:>5}  {c.output:<16} {str(c.shape):<18} "
                        f"{c.max_abs_error:>11.2e}  {c.max_rel_error:>11.2e}  "
                        f"{'yes' if c.ok else 'NO'}")
        return "\n".join(rows)

    def __str__(self) -> str:
        verdict = "matches PyTorch" if self.ok else "DIFFERS from PyTorch"
        capped = [c for c in self.checks if c.atol is not None and c.atol < self.atol]
        note = (f", capped at rtol*max|ref| = {min(c.atol for c in capped):.2g} for tiny outputs"
                if capped else "")
        return (f"{self.model}: {verdict} (atol={self.atol:g}{note}, rtol={self.rtol:g}; "
                f"{len(self.checks)} output check(s))\n{self.table()}")

    __repr__ = __str__


def verify_onnx_export(
    onnx_model: str | os.PathLike[str],
    module: Any,
    batch_sizes: Sequence[int] = (1,),
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    dims: Mapping[str, int] | None = None,
    atol: float | None = None,
    rtol: float = 1e-3,
    seed: int = 0,
    raise_on_mismatch: bool = True,
) -> VerificationResult:
    """Run an exported ONNX file in onnxruntime (CPU) and its PyTorch module; compare outputs.

    Inputs are generated from the ONNX model's declared inputs (names, shapes, dtypes):
    every symbolic dimension (`batch`, `s0`, ...) is filled with each value of
    `batch_sizes` in turn, unless `dims` names its value. Pass `inputs` to use your own
    arrays instead (one run). The module gets the inputs positionally, in the ONNX order.

    Tolerance, element by element (as `numpy.allclose`): an output passes when
    |onnx - torch| <= atol + rtol * |torch| everywhere and no value is NaN or inf. The
    default (`atol=None`) is scale-aware: atol = min(1e-4, rtol * max|torch|) per output
    (1e-4 when the reference is exactly zero). Without that cap, an output whose values are
    all tiny (a random-weight network can output 1e-14) would "match" an ONNX file that
    outputs zeros, because every difference would be below 1e-4. An explicit `atol=` is used
    as given. `max_rel_error` is max|onnx - torch| / max|torch|. A mismatch raises
    `CourseError` naming the output (pass `raise_on_mismatch=False` to get the result; then
    read `result.ok`: the result itself has no truth value).

    Why this helper exists beside the field's tools (notebook 02 shows
    `torch.onnx.verification`, notebook 03 `polygraphy run --onnxrt`, each checked against
    it): `torch.onnx.verification.verify_onnx_program` needs the `ONNXProgram` that
    `torch.onnx.export(..., dynamo=True)` returns (the legacy exporter returns None, and a
    file on disk has none), runs one input (the example) and reports differences without a
    verdict; polygraphy compares a file with reference outputs you saved but knows nothing
    of the PyTorch module. This helper takes any exported file and the module, makes inputs
    for every declared input at several batch sizes, gives a verdict with a scale-aware
    tolerance, and names the output that differs.
    Taught in: 02_pytorch_to_onnx (and 03_what_export_does).
    """
    import onnxruntime as ort
    import torch

    _check_tolerances(atol, rtol)
    path = _existing_onnx_file(onnx_model)
    session = _ort_session(path, ort)
    declared = session.get_inputs()
    output_names = [o.name for o in session.get_outputs()]
    if inputs is not None:
        runs = {None: _check_given_inputs(inputs, declared, path)}
    else:
        runs = _generated_inputs(declared, batch_sizes, dims or {}, seed, path)

    checks: list[OutputCheck] = []
    for batch, feed in runs.items():
        onnx_outputs = _run_onnxruntime(session, feed, path)
        torch_outputs = _run_module(module, feed, torch)
        if len(torch_outputs) != len(onnx_outputs):
            raise CourseError(
                f"{path.name} has {len(onnx_outputs)} output(s) {output_names} but the module "
                f"returned {len(torch_outputs)}. Export the same module you verify (and name "
                "every output with output_names=[...])."
            )
        for name, got, want in zip(output_names, onnx_outputs, torch_outputs, strict=True):
            checks.append(_compare(name, batch, np.asarray(got), want, atol, rtol, path))

    result = VerificationResult(
        model=path.name, checks=checks,
        input_shapes={b: {k: tuple(v.shape) for k, v in feed.items()} for b, feed in runs.items()},
        atol=DEFAULT_ATOL if atol is None else atol, rtol=rtol,
    )
    if raise_on_mismatch and not result.ok:
        raise CourseError(_mismatch_message(result, module))
    return result


def _check_tolerances(atol: float | None, rtol: float) -> None:
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is None and name == "atol":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) \
                or value < 0:
            raise CourseError(f"{name} must be a finite number >= 0 (such as 1e-3), got {value!r}.")


def _existing_onnx_file(onnx_model: str | os.PathLike[str]) -> Path:
    if not isinstance(onnx_model, str | os.PathLike):
        raise CourseError(
            f"Pass the path of the exported .onnx file, got {type(onnx_model).__name__}. "
            "(Save a ModelProto first with onnx.save(model, cu.model_path('name.onnx')).)"
        )
    path = Path(onnx_model)
    if not path.is_file():
        raise CourseError(f"No ONNX file at {path}. Run the export cell first "
                          "(torch.onnx.export(..., f=cu.model_path('name.onnx'))).")
    return path


def _ort_session(path: Path, ort: Any) -> Any:
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise CourseError(
            f"onnxruntime cannot load {path.name}: {_first_line(error)}. Is it an ONNX file "
            "from a finished export? Check it with onnx.checker.check_model(path)."
        ) from None


def _numpy_dtype(ort_type: str, name: str) -> np.dtype:
    if ort_type not in _ORT_TYPES:
        raise CourseError(f"Input {name!r} has type {ort_type}, which this helper cannot "
                          f"generate; pass inputs={{{name!r}: array}} yourself.")
    return _ORT_TYPES[ort_type]


def _random_array(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    return rng.integers(0, 10, shape).astype(dtype)  # small ints: valid for most index inputs


def _generated_inputs(
    declared: Sequence[Any], batch_sizes: Sequence[int], dims: Mapping[str, int],
    seed: int, path: Path,
) -> dict[int | None, dict[str, np.ndarray]]:
    bad_dims = {k: v for k, v in dims.items()
                if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0}
    if bad_dims:
        raise CourseError(f"dims must map dimension names to positive integers such as "
                          f"{{'batch': 4}}, got {bad_dims!r}.")
    sizes = list(batch_sizes) if isinstance(batch_sizes, Iterable) else [batch_sizes]
    if not sizes or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0
                            for b in sizes):
        raise CourseError(f"batch_sizes must be positive integers such as (1, 3, 8), "
                          f"got {batch_sizes!r}.")
    symbolic = [d for i in declared for d in i.shape if not isinstance(d, int)]
    if not symbolic:
        sizes = [sizes[0]]  # a static model has one shape: run it once
    runs: dict[int | None, dict[str, np.ndarray]] = {}
    for batch in dict.fromkeys(sizes):
        rng = np.random.default_rng(seed)
        feed = {}
        for item in declared:
            shape = tuple(
                d if isinstance(d, int) else int(dims.get(str(d), batch)) for d in item.shape
            )
            feed[item.name] = _random_array(shape, _numpy_dtype(item.type, item.name), rng)
        runs[batch if symbolic else None] = feed
    return runs


def _check_given_inputs(
    inputs: Mapping[str, np.ndarray], declared: Sequence[Any], path: Path
) -> dict[str, np.ndarray]:
    wanted = [i.name for i in declared]
    if set(inputs) != set(wanted):
        raise CourseError(f"{path.name} takes inputs {wanted}, but inputs= gave "
                          f"{sorted(inputs)}. Use the input_names you exported with.")
    feed = {}
    for item in declared:
        array = np.asarray(inputs[item.name])
        expected = ["?" if not isinstance(d, int) else d for d in item.shape]
        if array.ndim != len(item.shape) or any(
            isinstance(d, int) and d != s for d, s in zip(item.shape, array.shape, strict=True)
        ):
            raise CourseError(
                f"Input {item.name!r} of {path.name} must have shape {expected} "
                f"('?' = any size), got {list(array.shape)}. Reshape it (e.g. "
                f"x.reshape({', '.join(str(d if d != '?' else 1) for d in expected)}))."
            )
        if array.dtype.kind not in "biuf":
            raise CourseError(f"Input {item.name!r} of {path.name} must be a numeric array, got "
                              f"dtype {array.dtype}.")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise CourseError(f"Input {item.name!r} contains NaN or inf: a comparison on such "
                              "inputs proves nothing. Pass finite values.")
        feed[item.name] = array.astype(_numpy_dtype(item.type, item.name), copy=False)
    return feed


def _run_onnxruntime(session: Any, feed: dict[str, np.ndarray], path: Path) -> list[Any]:
    try:
        return session.run(None, feed)
    except Exception as error:
        shapes = {k: list(v.shape) for k, v in feed.items()}
        raise CourseError(f"onnxruntime failed to run {path.name} on inputs {shapes}: "
                          f"{_first_line(error)}") from None


def _run_module(module: Any, feed: dict[str, np.ndarray], torch: Any) -> list[np.ndarray]:
    if not callable(module):
        raise CourseError(f"module must be the torch.nn.Module you exported, got "
                          f"{type(module).__name__}.")
    # Inputs go where the module's weights are (CPU here; the GPU lane may pass a CUDA model).
    parameters = getattr(module, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    device = first.device if first is not None else torch.device("cpu")
    tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in feed.values()]
    try:
        with torch.no_grad():
            result = module(*tensors)
    except Exception as error:
        shapes = {k: list(v.shape) for k, v in feed.items()}
        raise CourseError(
            f"The PyTorch module failed on the ONNX model's inputs {shapes}: "
            f"{type(error).__name__}: {_first_line(error)}. Does its forward() take these "
            "inputs in this order and shape?"
        ) from None
    return [t.detach().cpu().numpy() for t in _flatten_outputs(result, torch)]


def _flatten_outputs(result: Any, torch: Any) -> list[Any]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, Mapping):
        result = list(result.values())
    if isinstance(result, list | tuple):
        return [t for item in result for t in _flatten_outputs(item, torch)]
    raise CourseError(f"The module returned a {type(result).__name__}; only tensors, "
                      "tuples, lists and dicts of tensors can be compared with ONNX outputs.")


def _compare(
    name: str, batch: int | None, got: np.ndarray, want: np.ndarray,
    atol: float | None, rtol: float, path: Path,
) -> OutputCheck:
    if got.shape != want.shape:
        raise CourseError(
            f"Output {name!r} of {path.name} has shape {list(got.shape)} in onnxruntime but "
            f"{list(want.shape)} in PyTorch (batch {batch}). A dimension that should follow "
            "the input was probably exported as a constant: mark it dynamic."
        )
    if got.dtype.kind in "fc" or want.dtype.kind in "fc":
        got64, want64 = got.astype(np.float64), want.astype(np.float64)
        with np.errstate(invalid="ignore"):  # inf - inf is NaN: a failure, reported below
            diff = np.abs(got64 - want64)
        max_abs = float(diff.max(initial=0.0))
        scale = float(np.abs(want64).max(initial=0.0))
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        tolerance = _absolute_tolerance(rtol, scale) if atol is None else atol
        ok = bool(np.all(diff <= tolerance + rtol * np.abs(want64)) and np.isfinite(max_abs))
    else:
        mismatched = got != want
        max_abs = float(np.abs(got.astype(np.int64) - want.astype(np.int64)).max(initial=0))
        max_rel = float(mismatched.mean()) if mismatched.size else 0.0
        ok = not bool(mismatched.any())
        tolerance = 0.0
    return OutputCheck(name, batch, tuple(got.shape), max_abs, max_rel, ok, tolerance)


def _absolute_tolerance(rtol: float, scale: float) -> float:
    """DEFAULT_ATOL, capped at rtol * max|ref| so that tiny outputs are compared to their own
    size. An exactly-zero reference keeps DEFAULT_ATOL: the ONNX output must be near zero too.
    """
    return min(DEFAULT_ATOL, rtol * scale) if scale > 0 else DEFAULT_ATOL


def _mismatch_message(result: VerificationResult, module: Any) -> str:
    bad = [c for c in result.checks if not c.ok]
    worst = max(bad, key=lambda c: c.max_abs_error)
    names = sorted({c.output for c in bad})
    at = "" if worst.batch is None else f" at batch {worst.batch}"
    hint = ("The module is in training mode: call model.eval() before exporting and "
            "verifying (BatchNorm/Dropout behave differently in training)."
            if getattr(module, "training", False) else
            "Was the file exported from this module, with these weights, in eval mode?")
    used = result.atol if worst.atol is None else worst.atol
    scale = worst.max_abs_error / worst.max_rel_error if worst.max_rel_error > 0 else 0.0
    tolerance = f"atol={result.atol:g}" if used >= result.atol else (
        f"atol={used:.3g}, i.e. atol={result.atol:g} capped at rtol*max|ref| because the "
        f"reference output is tiny (max |ref| = {scale:.3g})")
    return (f"Output {worst.output!r} of {result.model} differs from PyTorch{at}: max abs "
            f"error {worst.max_abs_error:.3g} (tolerance {tolerance} + "
            f"rtol={result.rtol:g}*|ref|). Outputs that differ: {names}. {hint}")


# --------------------------------------------------------------------------- comparison
@dataclass
class ExportComparison:
    """Several exports described side by side: one column per export, one row per fact.

    Taught in: 02_pytorch_to_onnx.
    """

    labels: list[str]
    rows: dict[str, list[str]]

    def table(self, width: int = 38) -> str:
        """Fixed-width text table; long cells wrap inside their column (words never split,
        so a column widens to its longest word, e.g. a long file name)."""
        key_width = max(len(k) for k in self.rows) if self.rows else 8
        widths = [max([width, len(label)] + [len(word) for cells in self.rows.values()
                                             for word in cells[i].split()])
                  for i, label in enumerate(self.labels)]
        header = " | ".join(f"{lab:<{w}}" for lab, w in zip(self.labels, widths, strict=True))
        lines = [" " * key_width + " | " + header, "-" * (key_width + 3 + len(header))]
        for key, cells in self.rows.items():
            wrapped = [textwrap.wrap(c, w, break_long_words=False) or [""]
                       for c, w in zip(cells, widths, strict=True)]
            for i in range(max(len(w) for w in wrapped)):
                parts = [f"{(lines_[i] if i < len(lines_) else ''):<{w}}"
                         for lines_, w in zip(wrapped, widths, strict=True)]
                lines.append(f"{key if i == 0 else '':<{key_width}} | " + " | ".join(parts))
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return self.table()

    __repr__ = __str__


def compare_exports(
    exports: Mapping[str, str | os.PathLike[str]],
    messages: Mapping[str, ExportMessages] | None = None,
) -> ExportComparison:
    """Describe exported ONNX files side by side: opset, nodes, input/output shapes with the
    names of dynamic dimensions, where the weights are stored, file sizes, and (given the
    `capture_export_messages` records) the exporters' time and warnings.

    Taught in: 02_pytorch_to_onnx.
    """
    from .onnx_io import load_model

    if not exports:
        raise CourseError("compare_exports() needs at least one {label: path} entry.")
    messages = messages or {}
    unknown = sorted(set(messages) - set(exports))
    if unknown:
        raise CourseError(f"messages has labels {unknown} that are not in exports "
                          f"{list(exports)}; use the same labels for both.")
    columns = []
    for label, raw in exports.items():
        path = _existing_onnx_file(raw)
        model = load_model(path, load_external_data=False)  # clear errors for bad files
        columns.append(_describe(model, path, messages.get(label)))
    rows = {key: [col[key] for col in columns] for key in columns[0]}
    return ExportComparison(labels=list(exports), rows=rows)


def _describe(model: Any, path: Path, said: ExportMessages | None) -> dict[str, str]:
    from onnx.external_data_helper import uses_external_data

    ops = [n.op_type for n in model.graph.node]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    external = sorted({
        entry.value for init in model.graph.initializer if uses_external_data(init)
        for entry in init.external_data if entry.key == "location"
    })
    n_external = sum(1 for init in model.graph.initializer if uses_external_data(init))
    n_inside = len(model.graph.initializer) - n_external
    if external:
        files = ", ".join(f"{name} ({_size(path.parent / name)})" for name in external)
        stored = (f"all in {files}" if n_inside == 0 else
                  f"{n_external} in {files}, {n_inside} inside {path.name}")
    else:
        stored = f"all inside {path.name}"
        sidecar = path.with_name(path.name + ".data")
        if sidecar.is_file():
            stored += f" ({sidecar.name} also written: {_size(sidecar)})"
    # Node order, not a chain: two parallel heads are two nodes, not one after the other.
    op_text = ", ".join(ops) if len(ops) <= 12 else ", ".join(
        f"{op} x{n}" for op, n in Counter(ops).most_common())
    row = {
        "file": f"{path.name} ({_size(path)})",
        "opset": str(opset),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "nodes": f"{len(ops)}: {op_text}",
        "inputs": "; ".join(_value_text(v) for v in model.graph.input),
        "outputs": "; ".join(_value_text(v) for v in model.graph.output),
        "weights": f"{len(model.graph.initializer)} initializer(s): {stored}",
    }
    if said is not None:
        row["export time"] = _seconds(said.seconds)
        row["warnings"] = " / ".join(_shorten(w, 110) for w in said.warnings) or "none"
        row["printed"] = f"{len(said.printed)} line(s)" + (
            f", e.g. {_shorten(said.printed[0], 80)}" if said.printed else "")
    return row


def _value_text(value: Any) -> str:
    import onnx

    tensor = value.type.tensor_type
    dims = [d.dim_param if d.HasField("dim_param") else
            (str(d.dim_value) if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
    dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
    return f"{value.name} {dtype}[{', '.join(dims)}]"


def _size(path: Path) -> str:
    if not path.is_file():
        return "missing!"
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB" \
        if size >= 1e3 else f"{size} B"


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def _first_line(message: Any) -> str:
    lines = [ln.strip() for ln in str(message).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(message).__name__


def _shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, ending in '...'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    if " " in cut and not text[limit - 3].isspace():
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "..."


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
