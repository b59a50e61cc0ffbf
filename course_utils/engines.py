"""TensorRT engines: parse an ONNX file, build a plan, run it on a GPU, look inside it.

Notebook 08 writes every TensorRT call out first; these helpers make the same calls once, with
the checks and clear errors a lesson needs (TensorRT 11 and TensorRT-RTX share this API):
- `parse_onnx(path)` checks the file as `cu.load_model` does (TensorRT's parser reports success,
  0 layers, for an empty file or a saved HTML page) and returns a `ParseResult`: each parser
  error with node name and op type, and the network's layers next to their ONNX nodes.
- `build_engine(source, ...)` builds a plan from a path, a `ParseResult` or a hand-built network
  (memory pool, optimisation level, profiles checked by `check_profile`, TensorRT-RTX targets, a
  timing cache on disk) and returns a `BuildResult` with the builder's layer table as data.
- `EngineRunner(plan)` (GPU) runs it with torch CUDA tensors, by tensor name; `inspect_engine`
  reads the engine inspector's JSON; `EngineRunner.profile_layers` the `IProfiler` times.
TensorRT's own messages are kept in `.log` / `.messages` (and `EngineBuildError.log`), never
printed. Plugin libraries (`.so`) load through `plugin_libraries=`; Python plugins register when
their module is imported; `build_engine(configure=fn)` hands `fn` the `IBuilderConfig`.
`RTX_ONLY_NAMES` lists the TensorRT-RTX names used only after checking the flavour
(tests/test_trt_names.py reads it).
Taught in: 08_first_engines (09_quantization and 10_plugins build on it).
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import CourseError
from .trt import flavour_of, import_tensorrt

if TYPE_CHECKING:  # annotations only: the name check reads them as TensorRT types
    import tensorrt as trt

__all__ = [
    "collecting_logger", "TensorDesc", "NetworkLayer", "network_layers", "ParserIssue", "ParseResult", "parse_onnx",
    "check_profile", "EngineLayer", "ForeignNode", "parse_layer_table", "BuildResult", "EngineBuildError",
    "build_engine", "EngineRunner", "LayerTimes", "parse_inspector_json", "inspect_engine", "RTX_ONLY_NAMES",
]

#: TensorRT-RTX names used here only once the flavour is known to be TensorRT-RTX (TensorRT 11
#: has no compute-capability targets; it builds for the GPU it runs on).
RTX_ONLY_NAMES = frozenset({"ComputeCapability", "num_compute_capabilities", "set_compute_capability"})

Shape = tuple[int, ...]
PathLike = str | os.PathLike[str]
_LOGGER_CLASSES: dict[str, type] = {}
_NO_GPU_NOISE = "cudaError 35"  # what TensorRT-RTX logs on a machine without a GPU driver


def collecting_logger(trt: ModuleType | None = None) -> Any:
    """An `ILogger` for `trt` that keeps every message in `.messages` instead of printing it.

    `.messages` is a list of (severity name, text), e.g. ("ERROR", "IBuilder::..."), so a cell shows
    TensorRT's words only where the lesson prints them. TensorRT keeps the first logger a process
    gives it and ignores later ones, so every message goes to all loggers made so far: each one
    holds what TensorRT said since it was made. Taught in: 08_first_engines.
    """
    trt = trt or import_tensorrt()
    cls = _LOGGER_CLASSES.get(trt.__name__)
    if cls is None:
        import weakref

        class CollectingLogger(trt.ILogger):  # type: ignore[name-defined,misc]
            live: weakref.WeakSet = weakref.WeakSet()
            first: list = []  # TensorRT holds a pointer to the first logger: keep it alive

            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.messages: list[tuple[str, str]] = []
                CollectingLogger.live.add(self)
                if not CollectingLogger.first:
                    CollectingLogger.first.append(self)

            def log(self, severity: Any, msg: str) -> None:
                if "logger passed into createInferBuilder differs" in msg:
                    return  # expected: every logger here receives the messages anyway (see above)
                for logger in list(CollectingLogger.live):
                    logger.messages.append((severity.name, str(msg)))

        cls = _LOGGER_CLASSES[trt.__name__] = CollectingLogger
    return cls()


def _messages(logger: Any) -> list[tuple[str, str]]:
    return list(getattr(logger, "messages", []))


def _problems(messages: Iterable[tuple[str, str]], worst: Sequence[str] = ("INTERNAL_ERROR", "ERROR")) -> list[str]:
    return [text for severity, text in messages if severity in worst]


def _log_lines(messages: Iterable[tuple[str, str]]) -> list[str]:
    """Warnings and errors as "[SEVERITY] text", the form `ParseResult.log` has always had."""
    return [f"[{severity}] {text}" for severity, text in messages
            if severity in ("INTERNAL_ERROR", "ERROR", "WARNING")]


# --------------------------------------------------------------------------- parse
@dataclass(frozen=True)
class TensorDesc:
    """A tensor as TensorRT describes it: name, shape (-1 = dynamic) and data type name."""

    name: str
    shape: Shape
    dtype: str

    def __str__(self) -> str:
        return f"{self.name} {self.dtype}{list(self.shape)}"


@dataclass(frozen=True)
class NetworkLayer:
    """One layer of a TensorRT network definition, with the ONNX node(s) it came from."""

    index: int
    name: str
    type: str  # trt.LayerType member name: CONVOLUTION, SCALE, ACTIVATION, ...
    onnx_nodes: tuple[str, ...]  # from the layer's metadata, "[ONNX Layer: name]" (empty if hand-built)
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]


@dataclass(frozen=True)
class ParserIssue:
    """One error of TensorRT's ONNX parser: where (node index, name, op type) and what."""

    node: int  # -1 when the error is about the file, not a node
    node_name: str
    op_type: str
    code: str  # trt.ErrorCode member name: INVALID_NODE, UNSUPPORTED_NODE, ...
    desc: str

    def __str__(self) -> str:
        if self.node < 0:
            return f"{self.code}: {self.desc}"
        return f"node {self.node} '{self.node_name}' (op {self.op_type}): {self.code}: {self.desc}"


_ONNX_LAYER = re.compile(r"\[ONNX Layer: (.*?)\]")


@dataclass
class ParseResult:
    """What TensorRT's ONNX parser made of a file: the network's layers, or its errors.

    `builder`, `network`, `parser` and `logger` are TensorRT's live objects (the parser holds the
    weights the network points to, so they are kept together); `build_engine(result)` uses them.
    """

    path: Path
    flavour: str
    num_layers: int
    errors: list[str]  # TensorRT's own text of each parser error
    log: list[str] = field(default_factory=list)  # warnings and errors TensorRT logged (kept, not printed)
    issues: list[ParserIssue] = field(default_factory=list)
    layers: list[NetworkLayer] = field(default_factory=list)
    inputs: list[TensorDesc] = field(default_factory=list)
    builder: trt.Builder | None = field(default=None, repr=False, compare=False)
    network: trt.INetworkDefinition | None = field(default=None, repr=False, compare=False)
    parser: trt.OnnxParser | None = field(default=None, repr=False, compare=False)
    logger: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    def table(self, limit: int | None = 40) -> str:
        """The network's layers: index, type, name, ONNX node and output shapes."""
        rows = [f"{'#':>3}  {'layer type':<16} {'TensorRT layer':<34} {'ONNX node':<34} output"]
        for layer in self.layers[:limit]:
            onnx_node = ", ".join(layer.onnx_nodes) or "-"
            outputs = ", ".join(f"{t.dtype}{list(t.shape)}" for t in layer.outputs)
            rows.append(f"{layer.index:>3}  {layer.type:<16} {_cut(layer.name, 34):<34} "
                        f"{_cut(onnx_node, 34):<34} {outputs}")
        if limit is not None and len(self.layers) > limit:
            rows.append(f"... {len(self.layers) - limit} more layer(s)")
        return "\n".join(rows)

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path.name}: parsed into {self.num_layers} TensorRT layers ({self.flavour})"
        listed = "\n  ".join(self.errors)
        return f"{self.path.name}: TensorRT's parser failed ({self.flavour}):\n  {listed}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_onnx_file(path: Path) -> None:
    """The checks `cu.load_model` makes, without loading the weights, plus "has nodes"."""
    from .onnx_io import _check_external_data, load_model

    model = load_model(path, load_external_data=False)  # CourseError for every way a file is wrong
    _check_external_data(model, path.parent, path)
    if not model.graph.node:
        raise CourseError(
            f"{path.name} is a valid ONNX file with an empty graph (no nodes): there is nothing to "
            "build. TensorRT's parser would report success with 0 layers; export the model again."
        )


def _tensor(tensor: trt.ITensor) -> TensorDesc:
    return TensorDesc(tensor.name, tuple(int(d) for d in tensor.shape), tensor.dtype.name)


def network_layers(network: trt.INetworkDefinition) -> list[NetworkLayer]:
    """The layers of a network definition, in order: type, name, ONNX node(s), input and output tensors.

    Works on a parsed or a hand-built network (hand-built layers have no ONNX metadata).
    Taught in: 08_first_engines.
    """
    found = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        ins = [layer.get_input(i) for i in range(layer.num_inputs)]
        outs = [layer.get_output(i) for i in range(layer.num_outputs)]
        found.append(NetworkLayer(
            index, layer.name, layer.type.name, tuple(_ONNX_LAYER.findall(layer.metadata or "")),
            tuple(_tensor(t) for t in ins if t is not None), tuple(_tensor(t) for t in outs if t is not None),
        ))
    return found


def _network_inputs(network: trt.INetworkDefinition) -> list[TensorDesc]:
    return [_tensor(network.get_input(i)) for i in range(network.num_inputs)]


def _load_plugin_libraries(registry: trt.IPluginRegistry, libraries: Sequence[PathLike]) -> None:
    for library in libraries:
        path = Path(library)
        if not path.is_file():
            raise CourseError(f"No plugin library at {path}. Build it first (notebook 10 shows how).")
        if registry.load_library(str(path)) is None:
            raise CourseError(f"TensorRT could not load the plugin library {path.name} (already loaded, or "
                              "built against another TensorRT version).")


def parse_onnx(path: PathLike, *, flavour: str | None = None,
               plugin_libraries: Sequence[PathLike] = ()) -> ParseResult:
    """Parse an ONNX file with TensorRT's own `OnnxParser`, checking the file first.

    The file is checked as `cu.load_model` checks it (missing, empty, truncated, not ONNX,
    missing `.data` file, no nodes): each raises a `CourseError`, because TensorRT's parser
    reports success with 0 layers for some of them. Parser errors (an operator without an
    importer or plugin) are returned, not raised: `result.issues` has node index, name, op type,
    code and description. `plugin_libraries` are loaded into the builder's plugin registry
    before parsing. Taught in: 05_unsupported_operators (an op without a plugin), 08_first_engines.
    """
    onnx_path = Path(path)
    _check_onnx_file(onnx_path)
    trt = import_tensorrt(flavour)
    logger = collecting_logger(trt)
    builder = trt.Builder(logger)
    _load_plugin_libraries(builder.get_plugin_registry(), plugin_libraries)
    network = builder.create_network(0)  # every network is strongly typed in TensorRT 11 / RTX
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    issues, errors = [], []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        issues.append(ParserIssue(int(error.node()), error.node_name(), error.node_operator(),
                                  error.code().name, error.desc()))
        errors.append(str(error))
    if not ok and not errors:
        errors = ["the parser returned False without an error message"]
    layers = network_layers(network) if ok else []
    return ParseResult(onnx_path, flavour_of(trt), len(layers), errors, _log_lines(_messages(logger)), issues,
                       layers, _network_inputs(network), builder, network, parser, logger)


# --------------------------------------------------------------------------- profiles
def _shape(value: Any, what: str) -> Shape:
    if not isinstance(value, Sequence) or isinstance(value, str) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise CourseError(f"{what} must be a tuple of ints like (1, 3, 224, 224), got {value!r}.")
    return tuple(value)


def check_profile(inputs: Sequence[TensorDesc], profile: Mapping[str, Any]) -> dict[str, tuple[Shape, Shape, Shape]]:
    """Validate one optimisation profile {input name: (min, opt, max)} against a network's inputs.

    Raises a `CourseError` saying exactly what is wrong: an unknown input name, a dynamic
    input left out, a shape of the wrong rank, a fixed dimension changed, min <= opt <= max
    broken. Returns the profile with shapes as tuples. Taught in: 08_first_engines.
    """
    if not isinstance(profile, Mapping) or not profile:
        raise CourseError(f"An optimisation profile is a dict {{input name: (min, opt, max)}}, got {profile!r}.")
    by_name = {t.name: t for t in inputs}
    unknown = sorted(set(profile) - set(by_name))
    if unknown:
        raise CourseError(f"The profile names {unknown}, which are not network inputs; the inputs are "
                          f"{sorted(by_name)}.")
    dynamic = [t.name for t in inputs if -1 in t.shape]
    missing = [name for name in dynamic if name not in profile]
    if missing:
        raise CourseError(f"Input(s) {missing} have dynamic dimensions but the profile gives them no "
                          "(min, opt, max) shapes; every dynamic input needs one in every profile.")
    checked = {}
    for name, shapes in profile.items():
        tensor = by_name[name]
        if not isinstance(shapes, Sequence) or isinstance(shapes, str) or len(shapes) != 3:
            raise CourseError(f"profile[{name!r}] must be three shapes (min, opt, max), got {shapes!r}.")
        low, opt, high = (_shape(s, f"profile[{name!r}][{i}]") for i, s in enumerate(shapes))
        for label, shape in (("min", low), ("opt", opt), ("max", high)):
            if len(shape) != len(tensor.shape):
                raise CourseError(f"{label} shape {shape} of input '{name}' has rank {len(shape)}; the input "
                                  f"{list(tensor.shape)} has rank {len(tensor.shape)}.")
            for axis, (got, declared) in enumerate(zip(shape, tensor.shape, strict=True)):
                if declared != -1 and got != declared:
                    raise CourseError(f"{label} shape {shape} of input '{name}' changes dimension {axis} to {got}, "
                                      f"but the network fixes it at {declared} ({list(tensor.shape)}).")
                if got < 1:
                    raise CourseError(f"{label} shape {shape} of input '{name}': dimension {axis} must be >= 1.")
        for axis in range(len(low)):
            if not low[axis] <= opt[axis] <= high[axis]:
                raise CourseError(f"Input '{name}', dimension {axis}: need min <= opt <= max, got "
                                  f"{low[axis]}, {opt[axis]}, {high[axis]} (min {low}, opt {opt}, max {high}).")
        checked[name] = (low, opt, high)
    return checked


# --------------------------------------------------------------------------- the build log
@dataclass(frozen=True)
class EngineLayer:
    """One layer (kernel) of a built engine, from the build log or the engine inspector."""

    name: str
    type: str  # e.g. kgen, gemm, correlation (Myelin) or CaskConvolution (TensorRT)
    onnx_layers: tuple[str, ...]  # the ONNX nodes this kernel computes (its metadata)
    tactic: str = ""
    inputs: tuple[TensorDesc, ...] = ()
    outputs: tuple[TensorDesc, ...] = ()


@dataclass(frozen=True)
class ForeignNode:
    """A region TensorRT handed to its Myelin compiler as one layer, and the ONNX nodes inside."""

    name: str
    onnx_layers: tuple[str, ...]


_LAYER_LINE = re.compile(r"^Name: (?P<name>.*?), LayerType: (?P<type>[^,]*), ")
_TACTIC = re.compile(r", TacticName: (?P<tactic>[^,]*)")
_TENSOR = re.compile(r"\{ Name: (?P<name>.*?), Dimensions: \[(?P<dims>[^\]]*)\]"
                     r"(?:[^{}]*?(?:Format/Datatype|Datatype): (?P<dtype>[^,}]*))?[^{}]*\}")
_ONELINE = re.compile(r"^Layer\((?P<type>[^)]*)\): (?P<name>.*?), Tactic: (?P<tactic>\S+?),")
_FOREIGN = re.compile(r"^ForeignNode \{(?P<name>.*?)\} metadata: ?(?P<meta>.*)$", re.DOTALL)


def _tensors(text: str) -> tuple[TensorDesc, ...]:
    found = []
    for match in _TENSOR.finditer(text):
        dims = tuple(int(d) for d in match.group("dims").split(",") if d.strip().lstrip("-").isdigit())
        found.append(TensorDesc(match.group("name"), dims, (match.group("dtype") or "").strip()))
    return tuple(found)


def _section(line: str, key: str, following: Sequence[str]) -> str:
    """The text between ", {key}: " and the first of ", {following}: " that comes after it."""
    start = line.find(f", {key}: ")
    if start < 0:
        return ""
    start += len(key) + 4
    ends = [line.find(f", {other}: ", start) for other in following]
    ends = [end for end in ends if end >= 0]
    return line[start:min(ends) if ends else len(line)]


def parse_layer_table(messages: Iterable[str | tuple[str, str]]) -> list[EngineLayer]:
    """The engine's layers from a detailed build log (VERBOSE logger, `ProfilingVerbosity.DETAILED`).

    Reads the `Layers:` table (one "Name: ..., LayerType: ..., Inputs: [...], ..., Metadata: [ONNX
    Layer: ...]" line per kernel, TensorRT-RTX and TensorRT 10+) or, failing that, the one-line
    "Engine Layer Information" form ("Layer(Type): name, Tactic: ..., in -> out"). Returns [] when the
    log has neither (a logger that was not VERBOSE). Taught in: 08_first_engines.
    """
    texts = [m[1] if isinstance(m, tuple) else str(m) for m in messages]
    layers: list[EngineLayer] = []
    for text in texts:
        lines = text.split("\n")  # not splitlines(): metadata joins layers with \x1e
        if not lines or lines[0].strip() != "Layers:":
            continue
        for line in lines[1:]:
            found = _LAYER_LINE.match(line)
            if not found:
                continue
            tactic = _TACTIC.search(line)
            metadata = line.split(", Metadata: ", 1)[1] if ", Metadata: " in line else ""
            layers.append(EngineLayer(
                found.group("name"), found.group("type"), tuple(_ONNX_LAYER.findall(metadata)),
                tactic.group("tactic") if tactic else "",
                _tensors(_section(line, "Inputs", ("Constants", "Outputs"))),
                _tensors(_section(line, "Outputs", ("TacticName", "StreamId", "Metadata"))),
            ))
    if layers:
        return layers
    for text in texts:
        lines = text.split("\n")  # not splitlines(): metadata joins layers with \x1e
        if not lines or not lines[0].strip().startswith("Engine Layer Information"):
            continue
        for line in lines[1:]:
            found = _ONELINE.match(line)
            if found:
                layers.append(EngineLayer(found.group("name"), found.group("type"), (), found.group("tactic")))
    return layers


def _foreign_nodes(texts: Iterable[str]) -> list[ForeignNode]:
    nodes = []
    for text in texts:
        found = _FOREIGN.match(text.strip())
        if found:
            nodes.append(ForeignNode(found.group("name"), tuple(_ONNX_LAYER.findall(found.group("meta")))))
    return nodes


_PASS = re.compile(r"^(?:After (?P<step>.+?)|(?P<original>Original)): (?P<count>\d+) layers$")


def _layer_counts(texts: Iterable[str]) -> list[tuple[str, int]]:
    counts = []
    for text in texts:
        found = _PASS.match(text.strip())
        if found:
            counts.append((found.group("step") or "original", int(found.group("count"))))
    return counts


# --------------------------------------------------------------------------- build
@dataclass
class BuildResult:
    """A built plan and what the builder said about it."""

    flavour: str
    plan: bytes = field(repr=False)
    plan_path: Path | None
    build_s: float
    layers: list[EngineLayer]  # the builder's layer table (kernels and the ONNX nodes each covers)
    foreign_nodes: list[ForeignNode]  # regions compiled by Myelin as one layer
    layer_counts: list[tuple[str, int]]  # network layers after each optimisation pass
    network_layers: int
    notes: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # warnings and errors
    messages: list[tuple[str, str]] = field(default_factory=list, repr=False)  # everything TensorRT logged

    @property
    def plan_bytes(self) -> int:
        return len(self.plan)

    def kernels_covering(self, onnx_node: str) -> list[EngineLayer]:
        """The engine layers whose metadata lists `onnx_node`."""
        return [layer for layer in self.layers if onnx_node in layer.onnx_layers]

    def table(self, limit: int | None = 30) -> str:
        """The layer table: kernel, type and the ONNX nodes it computes."""
        rows = [f"{'#':>3}  {'kernel (engine layer)':<44} {'type':<15} ONNX nodes it computes"]
        for index, layer in enumerate(self.layers[:limit]):
            nodes = ", ".join(layer.onnx_layers) or "-"
            rows.append(f"{index:>3}  {_cut(layer.name, 44):<44} {layer.type:<15} {_cut(nodes, 70)}")
        if limit is not None and len(self.layers) > limit:
            rows.append(f"... {len(self.layers) - limit} more")
        return "\n".join(rows)

    def __str__(self) -> str:
        where = f" -> {self.plan_path.name}" if self.plan_path else ""
        return (f"{self.flavour} plan: {self.plan_bytes / 1e6:.2f} MB in {self.build_s:.2f} s, "
                f"{self.network_layers} network layers -> {len(self.layers)} engine layers{where}")


class EngineBuildError(CourseError):
    """TensorRT could not build the plan; `.log` holds everything TensorRT said."""

    def __init__(self, message: str, log: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.log = log


def _target_name(target: Any) -> str:
    if isinstance(target, tuple) and len(target) == 2 and all(isinstance(t, int) for t in target):
        return f"SM{target[0]}{target[1]}"
    text = str(getattr(target, "name", target)).strip().upper()
    if re.fullmatch(r"\d+\.\d", text):
        major, minor = text.split(".")
        return f"SM{major}{minor}"
    return text


def _set_targets(trt: ModuleType, config: trt.IBuilderConfig, targets: Sequence[Any]) -> list[str]:
    if flavour_of(trt) != "tensorrt-rtx":
        raise CourseError(
            "TensorRT 11 has no compute-capability targets: it builds for the GPU it runs on. For one plan that "
            "runs on other GPUs, set config.hardware_compatibility_level = "
            "trt.HardwareCompatibilityLevel.AMPERE_PLUS (via build_engine(configure=...)).")
    names = [_target_name(t) for t in targets]
    known = [n for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise CourseError(f"targets={list(targets)!r}: give distinct compute capabilities among {known} "
                          "(also accepted: '8.9' or (8, 9)).")
    config.num_compute_capabilities = len(names)
    for index, name in enumerate(names):
        if not config.set_compute_capability(trt.ComputeCapability.__members__[name], index):
            raise CourseError(f"TensorRT refused compute capability {name} at index {index}.")
    return names


def _apply_timing_cache(trt: ModuleType, config: trt.IBuilderConfig, path: Path) -> tuple[trt.ITimingCache, str]:
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, False):
        raise CourseError(f"TensorRT refused the timing cache {path.name} (made by another GPU or TensorRT "
                          "version?). Delete it to start a new one.")
    return cache, (f"timing cache: read {len(data):,} bytes from {path.name}" if data
                   else f"timing cache: new, saved to {path.name} after the build")


def build_engine(
    source: ParseResult | PathLike | trt.INetworkDefinition,
    *,
    builder: trt.Builder | None = None,
    plan_path: PathLike | None = None,
    profiles: Sequence[Mapping[str, Any]] | None = None,
    workspace_bytes: int | None = None,
    optimization_level: int | None = None,
    targets: Sequence[Any] | None = None,
    timing_cache: PathLike | None = None,
    configure: Callable[[Any], None] | None = None,
    flavour: str | None = None,
) -> BuildResult:
    """Build a serialized engine (a plan) and return it with its size, build time and layer table.

    `source` is an ONNX path (parsed with `parse_onnx`), a `ParseResult`, or a hand-built
    `INetworkDefinition` together with `builder=` (give that builder a `collecting_logger` to get the
    layer table). `profiles`: one dict {input: (min, opt, max)} per optimisation profile, checked by
    `check_profile`; a network with dynamic inputs needs at least one. `workspace_bytes` limits the
    WORKSPACE memory pool; `optimization_level` is 0..5 (TensorRT's default is 3); `targets` are
    compute capabilities to build for ("SM89", "8.9" or (8, 9); TensorRT-RTX only);
    `timing_cache` is a file kept between builds (TensorRT; a no-op in TensorRT-RTX, said in
    `.notes`); `configure(config)` may set anything else. The plan is written to `plan_path` if
    given. A failed build raises `EngineBuildError` with TensorRT's own message.
    Taught in: 08_first_engines.
    """
    if isinstance(source, ParseResult):
        parsed = source
    elif isinstance(source, str | os.PathLike):
        parsed = parse_onnx(source, flavour=flavour)
    else:
        if builder is None:
            raise CourseError("build_engine(network, builder=builder): a hand-built network needs the Builder "
                              "that created it.")
        parsed = ParseResult(Path("network"), "", source.num_layers, [], builder=builder, network=source,
                             logger=builder.logger, inputs=_network_inputs(source))
    if not parsed.ok:
        raise CourseError(f"{parsed.path.name} did not parse, so there is nothing to build:\n  "
                          + "\n  ".join(parsed.errors))
    builder, network, logger = parsed.builder, parsed.network, parsed.logger
    trt = import_tensorrt(_flavour_of_object(builder))
    config = builder.create_builder_config()
    notes = []
    if workspace_bytes is not None:
        if not isinstance(workspace_bytes, int) or isinstance(workspace_bytes, bool) or workspace_bytes <= 0:
            raise CourseError(f"workspace_bytes must be a positive int (e.g. 1 << 30), got {workspace_bytes!r}.")
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if optimization_level is not None:
        if optimization_level not in range(6) or isinstance(optimization_level, bool):
            raise CourseError(f"optimization_level must be an int from 0 to 5, got {optimization_level!r}.")
        config.builder_optimization_level = optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the layer table in the log
    dynamic = [t.name for t in parsed.inputs if -1 in t.shape]
    if dynamic and not profiles:
        raise CourseError(f"Input(s) {dynamic} have dynamic dimensions: pass profiles=[{{name: (min, opt, max)}}] "
                          "with the smallest, most common and largest shapes the engine must accept.")
    for number, wanted in enumerate(profiles or ()):
        checked = check_profile(parsed.inputs, wanted)
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in checked.items():
            profile.set_shape(name, low, opt, high)
        if config.add_optimization_profile(profile) < 0:
            raise EngineBuildError(f"TensorRT refused optimisation profile {number}: "
                                   + "; ".join(_problems(_messages(logger))[-1:]), _messages(logger))
    chosen = _set_targets(trt, config, targets) if targets is not None else []
    if chosen:
        notes.append(f"targets: {', '.join(chosen)}")
    cache = None
    if timing_cache is not None:
        if flavour_of(trt) == "tensorrt-rtx":
            notes.append("timing cache: a no-op in TensorRT-RTX, which times no kernels while building "
                         "(it compiles them on the user's GPU and keeps them in a runtime cache)")
        else:
            cache, said = _apply_timing_cache(trt, config, Path(timing_cache))
            notes.append(said)
    if configure is not None:
        configure(config)
    before = len(_messages(logger))
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - start
    messages = _messages(logger)[before:]
    if plan is None:
        errors = _problems(messages)
        real = [e for e in errors if _NO_GPU_NOISE not in e] or errors or ["(no error message was logged)"]
        hidden = len(errors) - len(real) if len(real) < len(errors) else 0
        extra = f"\n  ({hidden} CUDA-driver message(s) of this GPU-less machine left out; see .log)" if hidden else ""
        raise EngineBuildError("TensorRT could not build the engine:\n  " + "\n  ".join(real) + extra, messages)
    plan_data = bytes(memoryview(plan))
    where = None
    if plan_path is not None:
        where = Path(plan_path)
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(plan_data)
    if cache is not None:  # the config's cache now holds this build's timings too (as trtexec saves it)
        Path(timing_cache).write_bytes(bytes(memoryview((config.get_timing_cache() or cache).serialize())))
    texts = [text for _, text in messages]
    return BuildResult(flavour_of(trt), plan_data, where, build_s, parse_layer_table(texts), _foreign_nodes(texts),
                       _layer_counts(texts), network.num_layers, notes, _log_lines(messages), messages)


def _flavour_of_object(obj: Any) -> str:
    """The flavour of a TensorRT object (a Builder, a network...) from its Python module."""
    module = type(obj).__module__.split(".")[0]
    return "tensorrt-rtx" if module.startswith("tensorrt_rtx") else "tensorrt"


# --------------------------------------------------------------------------- run (GPU)
_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
                 "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8_e4m3fn"}


@dataclass
class LayerTimes:
    """Per-layer times (ms) that TensorRT reported through `IProfiler`, one list per layer name."""

    times_ms: dict[str, list[float]]

    def median_ms(self, name: str) -> float:
        return statistics.median(self.times_ms[name])

    @property
    def total_ms(self) -> float:
        """The sum of the layers' median times (one inference)."""
        return sum(self.median_ms(name) for name in self.times_ms)

    def table(self, limit: int | None = 20) -> str:
        """Layers by median time, slowest first, with their share of the total."""
        if not self.times_ms:
            return "(no layer times were reported)"
        total = self.total_ms
        order = sorted(self.times_ms, key=self.median_ms, reverse=True)
        rows = [f"{'layer':<50} {'median ms':>10} {'share':>7} {'n':>4}"]
        for name in order[:limit]:
            median, count = self.median_ms(name), len(self.times_ms[name])
            share = median / total if total > 0 else math.nan
            rows.append(f"{_cut(name, 50):<50} {median:>10.4f} {share:>7.1%} {count:>4}")
        return "\n".join(rows)


def _layer_timer(trt: ModuleType) -> Any:
    class LayerTimer(trt.IProfiler):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times_ms: dict[str, list[float]] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.times_ms.setdefault(layer_name, []).append(float(ms))

    return LayerTimer()


class _HostStream:
    """Stands in for a CUDA stream when a runner is tested with a fake TensorRT on the CPU (device="cpu")."""

    cuda_stream = 0

    def synchronize(self) -> None:
        pass


class EngineRunner:
    """Run a plan on a GPU with torch CUDA tensors, inputs and outputs by name.

        with cu.EngineRunner(plan) as run:          # plan: bytes, a .plan path or a BuildResult
            outputs = run(input0=x)                  # {output name: torch.Tensor on the GPU}

    On entering, the plan is deserialized (`trt.Runtime(logger).deserialize_cuda_engine`) and an
    execution context made; `run.inputs` / `run.outputs` list the I/O tensors (from
    `engine.num_io_tensors` and `engine.get_tensor_name(i)`), `run.profile_shapes(name)` the
    (min, opt, max) of the profile. Each call checks every input against that profile, then calls
    `set_input_shape`, `set_tensor_address` and `execute_async_v3` on its own CUDA stream and waits
    for it. (`device="cpu"` exists only to test this logic with a fake TensorRT.) Taught in: 08_first_engines.
    """

    def __init__(self, plan: bytes | PathLike | BuildResult, *, flavour: str | None = None, profile: int = 0,
                 plugin_libraries: Sequence[PathLike] = (), device: str = "cuda") -> None:
        if isinstance(plan, BuildResult):
            flavour = flavour or plan.flavour
            plan = plan.plan
        elif isinstance(plan, str | os.PathLike):
            path = Path(plan)
            if not path.is_file():
                raise CourseError(f"No plan file at {path}. Build it first (cu.build_engine(..., plan_path=...)).")
            plan = path.read_bytes()
        if not isinstance(plan, bytes | bytearray | memoryview) or len(plan) == 0:
            raise CourseError("EngineRunner needs a plan: bytes from build_serialized_network, a .plan file "
                              "or a BuildResult.")
        self.plan = bytes(plan)
        self.flavour, self.profile, self.device = flavour, profile, device
        self.plugin_libraries = tuple(plugin_libraries)
        self.engine: Any = None
        self.context: Any = None

    def __enter__(self) -> EngineRunner:
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise CourseError("Running an engine needs an NVIDIA GPU that PyTorch can see (torch.cuda.is_available() "
                              "is False here). Build plans on this machine; run them on a GPU machine.")
        self.tensorrt = trt = import_tensorrt(self.flavour)
        self.logger = collecting_logger(trt)
        self.runtime = trt.Runtime(self.logger)
        _load_plugin_libraries(self.runtime.get_plugin_registry(), self.plugin_libraries)
        self.engine = self.runtime.deserialize_cuda_engine(self.plan)
        if self.engine is None:
            said = "\n  ".join(_problems(_messages(self.logger))) or "(no message)"
            raise CourseError(f"{flavour_of(trt)} could not deserialize this plan. A plan runs only with the "
                              f"TensorRT version and GPU it was built for, unless built version- or "
                              f"hardware-compatible. TensorRT said:\n  {said}")
        profiles = self.engine.num_optimization_profiles
        if not isinstance(self.profile, int) or not 0 <= self.profile < profiles:
            raise CourseError(f"profile={self.profile!r}: this engine has {profiles} optimisation profile(s), "
                              f"numbered 0 to {profiles - 1}.")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {name: self.engine.get_tensor_mode(name) for name in names}
        self.inputs = [n for n in names if modes[n] == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if modes[n] == trt.TensorIOMode.OUTPUT]
        host = [n for n in self.inputs if self.engine.is_shape_inference_io(n)]
        if host:  # their values live in host memory and decide the shapes: not what this runner feeds
            raise CourseError(f"Input(s) {host} are shape tensors (engine.is_shape_inference_io): TensorRT reads "
                              "them from host memory. This runner feeds GPU tensors only; use polygraphy's "
                              "TrtRunner for such engines.")
        self.stream = self._new_stream()
        self.context: trt.IExecutionContext = self._new_context()
        return self

    def __exit__(self, *exc: object) -> None:
        self.context = self.engine = self.runtime = None  # release in reverse order of creation

    def _new_stream(self) -> Any:
        import torch

        if not self.device.startswith("cuda"):
            return _HostStream()
        return torch.cuda.Stream(device=self.device)

    def _new_context(self) -> trt.IExecutionContext:
        context = self.engine.create_execution_context()
        if context is None:
            raise CourseError("engine.create_execution_context() returned None (out of GPU memory?). TensorRT "
                              "said: " + "; ".join(_problems(_messages(self.logger))[-1:]))
        # profile 0 is every new context's profile; another one is selected on the stream the runs use
        if self.profile != 0 and not context.set_optimization_profile_async(self.profile, self.stream.cuda_stream):
            raise CourseError(f"set_optimization_profile_async({self.profile}) failed: "
                              + "; ".join(_problems(_messages(self.logger))[-1:]))
        return context

    def profile_shapes(self, name: str) -> tuple[Shape, Shape, Shape]:
        """(min, opt, max) of input `name` in this runner's optimisation profile (a fixed input: its shape 3 times)."""
        fixed = tuple(int(d) for d in self.engine.get_tensor_shape(name))
        try:  # an invalid Dims (nbDims -1) may not even have a len(): see NVIDIA's common_runtime.py
            shapes = self.engine.get_tensor_profile_shape(name, self.profile)
            low, opt, high = (tuple(int(d) for d in shape) for shape in shapes)
            if len(low) == len(opt) == len(high) == len(fixed):
                return low, opt, high
        except (TypeError, ValueError, RuntimeError):
            pass
        if any(d < 0 for d in fixed):
            raise CourseError(f"Input '{name}' is dynamic {fixed} but the engine reports no profile shapes for it.")
        return fixed, fixed, fixed

    def _dtype(self, name: str) -> Any:
        import torch

        kind = self.engine.get_tensor_dtype(name).name
        if kind not in _TORCH_DTYPES:
            raise CourseError(f"Tensor '{name}' has TensorRT type {kind}, which this runner cannot map to torch.")
        return getattr(torch, _TORCH_DTYPES[kind])

    def _feed(self, args: tuple[Any, ...], named: dict[str, Any]) -> dict[str, Any]:
        import torch

        if self.engine is None:
            raise CourseError("Use the runner inside `with cu.EngineRunner(plan) as run:`.")
        if len(args) > len(self.inputs):
            raise CourseError(f"The engine has {len(self.inputs)} input(s) {self.inputs}; got {len(args)} positional.")
        feeds = dict(zip(self.inputs, args, strict=False)) | named
        unknown, missing = sorted(set(feeds) - set(self.inputs)), [n for n in self.inputs if n not in feeds]
        if unknown or missing:
            raise CourseError(f"The engine's inputs are {self.inputs}; unknown {unknown}, missing {missing}.")
        checked = {}
        for name in self.inputs:
            value = feeds[name]
            tensor = torch.from_numpy(value) if type(value).__module__ == "numpy" else value
            if not isinstance(tensor, torch.Tensor):
                raise CourseError(f"Input '{name}' must be a torch tensor or numpy array, got {type(value).__name__}.")
            want = self._dtype(name)
            if tensor.dtype != want:
                raise CourseError(f"Input '{name}' is {tensor.dtype}; the engine expects {want} (cast it first).")
            shape = tuple(tensor.shape)
            low, _, high = self.profile_shapes(name)
            outside = len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high,
                                                                                           strict=False))
            if outside:
                raise CourseError(f"Input '{name}' has shape {shape}, outside optimisation profile {self.profile} "
                                  f"of this engine: min {low}, max {high}. Rebuild with a profile that covers it.")
            checked[name] = tensor.to(self.device).contiguous()
        return checked

    def _execute(self, context: trt.IExecutionContext, feeds: dict[str, Any]) -> dict[str, Any]:
        import torch

        for name, tensor in feeds.items():
            if not context.set_input_shape(name, tuple(tensor.shape)):
                raise CourseError(f"set_input_shape('{name}', {tuple(tensor.shape)}) failed: "
                                  + "; ".join(_problems(_messages(self.logger))[-1:]))
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise CourseError(f"set_tensor_address('{name}') failed: "
                                  + "; ".join(_problems(_messages(self.logger))[-1:]))
        unset = context.infer_shapes()
        if unset:
            raise CourseError(f"TensorRT cannot infer the shapes yet; not specified: {list(unset)}.")
        outputs = {}
        for name in self.outputs:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise CourseError(f"Output '{name}' has a data-dependent shape {shape}; this runner needs shapes "
                                  "known before running (an IOutputAllocator handles the other case).")
            outputs[name] = torch.empty(shape, dtype=self._dtype(name), device=self.device)
            if not context.set_tensor_address(name, outputs[name].data_ptr()):
                raise CourseError(f"set_tensor_address('{name}') failed: "
                                  + "; ".join(_problems(_messages(self.logger))[-1:]))
        if self.device.startswith("cuda"):  # the inputs were written on the current stream: wait for it
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise CourseError("execute_async_v3 failed: " + "; ".join(_problems(_messages(self.logger))[-3:]))
        self.stream.synchronize()
        return outputs

    def __call__(self, *args: Any, **inputs: Any) -> dict[str, Any]:
        return self._execute(self.context, self._feed(args, inputs))

    def profile_layers(self, *args: Any, runs: int = 20, warmup: int = 3, **inputs: Any) -> LayerTimes:
        """Run `warmup` + `runs` times on a second context with an `IProfiler` attached; return per-layer times.

        The engine must have been built with `ProfilingVerbosity.DETAILED` (build_engine does) for the
        layer names to be readable; otherwise TensorRT reports layer indices.
        """
        feeds = self._feed(args, inputs)
        context: trt.IExecutionContext = self._new_context()
        timer = _layer_timer(self.tensorrt)
        context.profiler = timer
        for _ in range(warmup):
            self._execute(context, feeds)
        timer.times_ms.clear()
        for _ in range(runs):
            self._execute(context, feeds)
        return LayerTimes(dict(timer.times_ms))


def parse_inspector_json(text: str) -> list[EngineLayer]:
    """The engine inspector's JSON (`get_engine_information(LayerInformationFormat.JSON)`) as layers.

    With `ProfilingVerbosity.DETAILED` each layer is an object (Name, LayerType, Inputs, Outputs,
    TacticName, Metadata "[ONNX Layer: a]\\x1e[ONNX Layer: b]"); with LAYER_NAMES_ONLY it is a name.
    Taught in: 08_first_engines.
    """
    try:
        data = json.loads(text)
        entries = data["Layers"] if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise TypeError("'Layers' is not a list")
    except (ValueError, KeyError, TypeError) as error:
        raise CourseError(f"Not the engine inspector's JSON ({type(error).__name__}: {error}).") from None
    layers = []
    for entry in entries:
        if isinstance(entry, str):
            layers.append(EngineLayer(entry, "", ()))
            continue
        if not isinstance(entry, dict):
            raise CourseError(f"Unexpected layer entry in the inspector's JSON: {entry!r:.80}.")

        def tensors(key: str, entry: dict = entry) -> tuple[TensorDesc, ...]:
            return tuple(TensorDesc(str(t.get("Name", "")), tuple(int(d) for d in t.get("Dimensions", [])),
                                    str(t.get("Format/Datatype", t.get("Datatype", ""))))
                         for t in entry.get(key, []) if isinstance(t, dict))

        layers.append(EngineLayer(str(entry.get("Name", "")), str(entry.get("LayerType", "")),
                                  tuple(_ONNX_LAYER.findall(str(entry.get("Metadata", "")))),
                                  str(entry.get("TacticName", "")), tensors("Inputs"), tensors("Outputs")))
    return layers


def inspect_engine(runner: EngineRunner) -> list[EngineLayer]:
    """What the engine inspector says about each layer of a running engine (GPU).

    Uses `engine.create_engine_inspector()`, sets the runner's execution context (call the runner
    once first, so dynamic shapes are concrete) and reads `get_engine_information` as JSON.
    Taught in: 08_first_engines.
    """
    if runner.engine is None:
        raise CourseError("inspect_engine needs a runner inside `with cu.EngineRunner(plan) as run:`.")
    inspector = runner.engine.create_engine_inspector()
    inspector.execution_context = runner.context
    return parse_inspector_json(inspector.get_engine_information(runner.tensorrt.LayerInformationFormat.JSON))
