"""The course uses only TensorRT names that TensorRT 11.4 has, and on the TensorRT-RTX path only RTX names.

No machine here can import TensorRT 11 (its libraries come from NVIDIA's index), but the real
Python binding wheel `tensorrt-cu13-bindings==11.4.0.106` is a dev dependency: its
`tensorrt_bindings/tensorrt.so` holds, in the ELF `.rodata` section, every name pybind11 registers
(classes, methods, properties, enum members, keyword names) as a NUL-terminated string. The
linker merges literals by their tails (`Runtime` exists only as the end of
`IPluginV3QuickRuntime\\0`), so a name is present when `name + b"\\0"` occurs in `.rodata`.
The wheel's pure-Python `plugin/` package (`tensorrt.plugin`) is read with `ast`.

What the course uses is found by scanning the source of `course_utils` and the code cells of
every notebook (magics removed) with `ast`: the module aliases (`import tensorrt as trt`,
`trt = cu.import_tensorrt(...)`, a parameter named `trt`), and every object that comes from
them (assigned from a call or attribute of a TensorRT alias or object, a loop over one, a
`with` target, a parameter or dataclass field annotated `trt.X`, an attribute assigned a
TensorRT object). Each attribute name used on them is a TensorRT name, tagged with its flavour:
- `cu.import_tensorrt("tensorrt-rtx")` / `import tensorrt_rtx_bindings`: checked against the
  installed TensorRT-RTX bindings (module-rooted chains such as `trt.ComputeCapability.SM89`
  by getattr, others against every attribute of every class);
- `import tensorrt`: checked against TensorRT 11.4;
- `cu.import_tensorrt()` (either flavour): checked against both, except the names
  `course_utils.engines.RTX_ONLY_NAMES` (used only after checking for TensorRT-RTX).
Names removed or deprecated in TensorRT 11 whose last part survives elsewhere
(`BuilderFlag.INT8`: `DataType.INT8` exists) are caught by a qualified deny list.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import os
import re
import struct
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WHEEL, WHEEL_VERSION = "tensorrt-cu13-bindings", "11.4.0.106"

#: Removed in TensorRT 11 (or 10) although their last name part still exists on another class,
#: or deprecated in 11.0 (STRONGLY_TYPED: "always enabled"). Sources: NVIDIA's TensorRT 11.0
#: release notes (weak typing, precision flags, INT8 calibrators removed) and the 11.4 wheel.
REMOVED_QUALIFIED = {
    "BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.BF16", "BuilderFlag.FP8", "BuilderFlag.INT4",
    "BuilderFlag.FP4", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "BuilderFlag.PREFER_PRECISION_CONSTRAINTS",
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
}
#: Methods of plain Python values (a tensor name is a str, a count an int): never TensorRT names.
_PYTHON_METHODS = set().union(*(dir(t) for t in (str, bytes, int, float, list, tuple, dict, set, bool)))
_TENSORRT_MODULES = {"tensorrt": "trt", "tensorrt_bindings": "trt", "tensorrt_rtx": "rtx",
                     "tensorrt_rtx_bindings": "rtx"}
_PLUGIN_MODULES = {"tensorrt.plugin", "tensorrt_bindings.plugin"}
_FLAVOURS = {"tensorrt": "trt", "tensorrt-rtx": "rtx"}


@dataclass(frozen=True)
class Use:
    """One TensorRT name the course uses."""

    name: str
    kind: str  # "trt" (TensorRT 11 only), "rtx" (TensorRT-RTX only), "any" (both), "plugin"
    chain: tuple[str, ...]  # attribute path from a module alias (trt.X.Y), () when used on an object
    where: str

    @property
    def qualified(self) -> str:
        return ".".join(self.chain) if self.chain else self.name


# --------------------------------------------------------------------------- scanning the course
class _Scanner:
    """Walks a module's statements in order, tracking which names hold TensorRT modules/objects."""

    def __init__(self, where: str, typed_attributes: dict[str, str], returns: dict[str, str] | None = None) -> None:
        self.where = where
        self.typed_attributes = typed_attributes  # attribute name -> kind (e.g. "engine" -> "any")
        self.returns = returns or {}  # function name -> kind, from `-> trt.X` return annotations
        self.found_attributes: dict[str, str] = {}
        self.found_returns: dict[str, str] = {}
        self.uses: list[Use] = []
        self.python_modules = {"cu", "course_utils"}  # names bound to other modules by import
        self.expected_missing: list[tuple[str, list[Use]]] = []  # `with cu.expect_error(AttributeError)` blocks

    # expressions: return (kind, chain) when the value is a TensorRT module/object, else None
    def expr(self, node: ast.AST | None, env: dict[str, tuple[str, tuple[str, ...] | None]]):
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.expr(node.value, env)
            if base is not None:
                kind, chain = base
                if node.attr in ("values", "items") and chain is None:  # a dict of TensorRT objects (see bind)
                    return (kind, None)
                if node.attr.startswith("__") or (node.attr in _PYTHON_METHODS and chain is None):
                    return None
                if chain is not None and node.attr == "plugin":
                    return ("plugin", None)
                new_chain = chain + (node.attr,) if chain is not None else None
                self.uses.append(Use(node.attr, kind, new_chain or (), f"{self.where}:{node.lineno}"))
                return (kind, new_chain)
            module = isinstance(node.value, ast.Name) and node.value.id in self.python_modules
            if node.attr in self.typed_attributes and not module:  # onnx.parser is not an OnnxParser
                return _typed(self.typed_attributes[node.attr])
            return None
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                self.expr(argument, env)
            if name == "import_tensorrt":
                flavour = node.args[0] if node.args else next((k.value for k in node.keywords
                                                              if k.arg == "flavour"), None)
                wanted = flavour.value if isinstance(flavour, ast.Constant) else None
                return (_FLAVOURS.get(wanted, "any"), ())
            if name == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                base = self.expr(node.args[0], env)
                if base is not None and isinstance(node.args[1].value, str):
                    attribute = ast.Attribute(value=node.args[0], attr=node.args[1].value, lineno=node.lineno)
                    return self.expr(attribute, env)
                return None
            base = self.expr(func, env)
            if base is None and name in self.returns and (isinstance(func, ast.Name) or (
                    isinstance(func.value, ast.Name) and func.value.id == "self")):
                return (self.returns[name], None)  # a helper annotated `-> trt.IExecutionContext`
            return (base[0], None) if base is not None else None
        if isinstance(node, ast.Subscript):
            self.expr(node.slice, env)
            base = self.expr(node.value, env)
            return (base[0], None) if base is not None else None
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = dict(env)
            for generator in node.generators:
                self.bind(generator.target, self.expr(generator.iter, inner), inner)
                for condition in generator.ifs:
                    self.expr(condition, inner)
            for part in ("elt", "key", "value"):
                self.expr(getattr(node, part, None), inner)
            return None
        if isinstance(node, ast.BoolOp | ast.IfExp):
            parts = node.values if isinstance(node, ast.BoolOp) else [node.body, node.orelse]
            if isinstance(node, ast.IfExp):
                self.expr(node.test, env)
            kinds = [self.expr(part, env) for part in parts]
            return next((k for k in kinds if k is not None), None)
        if isinstance(node, ast.NamedExpr):
            value = self.expr(node.value, env)
            self.bind(node.target, value, env)
            return value
        if isinstance(node, ast.Lambda):
            self.expr(node.body, {k: v for k, v in env.items()})
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, env)
            elif isinstance(child, ast.AST):
                for grandchild in ast.iter_child_nodes(child):
                    if isinstance(grandchild, ast.expr):
                        self.expr(grandchild, env)
        return None

    def bind(self, target: ast.AST, value, env) -> None:
        if isinstance(target, ast.Name):
            if value is None:
                env.pop(target.id, None)
            else:
                env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self.bind(element, (value[0], None) if value is not None else None, env)
        elif isinstance(target, ast.Attribute):
            self.expr(target, env)  # config.profiling_verbosity = ...: a TensorRT name too
            if value is not None:
                self.found_attributes[target.attr] = "module:" + value[0] if value[1] == () else value[0]
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and value is not None:
            self.expr(target.slice, env)  # networks["cbr"] = builder.create_network(0): networks[...] is one
            env.setdefault(target.value.id, (value[0], None))
        elif isinstance(target, ast.Subscript | ast.Starred):
            self.expr(target, env)

    def annotation_kind(self, annotation: ast.AST | None, env) -> str | None:
        if annotation is None:
            return None
        quiet = _Scanner(self.where, {})
        for node in ast.walk(annotation):
            base = quiet.expr(node.value, env) if isinstance(node, ast.Attribute) else None
            if base is not None:
                self.expr(node, env)  # the annotated class itself must exist
                # `x: trtp.TensorDesc` is a tensorrt.plugin object: its names live in the plugin package
                return "plugin" if base[0] == "plugin" else "any"
        return None

    def statements(self, body: list[ast.stmt], env) -> None:
        for statement in body:
            self.statement(statement, env)

    def statement(self, node: ast.stmt, env) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                if alias.name in _PLUGIN_MODULES and alias.asname:
                    env[local] = ("plugin", None)
                elif alias.name.split(".")[0] in _TENSORRT_MODULES and (alias.asname or "." not in alias.name):
                    env[local] = (_TENSORRT_MODULES[alias.name.split(".")[0]], ())
                else:
                    self.python_modules.add(local)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                local = alias.asname or alias.name
                if f"{module}.{alias.name}" in _PLUGIN_MODULES or module in _PLUGIN_MODULES:
                    env[local] = ("plugin", None)
                    if module in _PLUGIN_MODULES:
                        self.uses.append(Use(alias.name, "plugin", (), f"{self.where}:{node.lineno}"))
                elif module in _TENSORRT_MODULES:
                    kind = _TENSORRT_MODULES[module]
                    self.uses.append(Use(alias.name, kind, (alias.name,), f"{self.where}:{node.lineno}"))
                    env[local] = (kind, (alias.name,))
                else:
                    self.python_modules.add(local)
        elif isinstance(node, ast.Assign):
            pairs = isinstance(node.value, ast.Tuple) and all(
                isinstance(t, ast.Tuple) and len(t.elts) == len(node.value.elts) for t in node.targets)
            if pairs:  # a, b = x.a, x.b
                values = [self.expr(element, env) for element in node.value.elts]
                for target in node.targets:
                    for element, value in zip(target.elts, values, strict=True):
                        self.bind(element, value, env)
            else:
                value = self.expr(node.value, env)
                for target in node.targets:
                    self.bind(target, value, env)
        elif isinstance(node, ast.AnnAssign):
            value = self.expr(node.value, env)
            annotated = self.annotation_kind(node.annotation, env)
            if annotated and isinstance(node.target, ast.Name) and self.in_class:
                self.found_attributes[node.target.id] = annotated
            self.bind(node.target, value or ((annotated, None) if annotated else None), env)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value, env)
            self.expr(node.target, env)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.bind(node.target, self.expr(node.iter, env), env)
            self.statements(node.body + node.orelse, env)
        elif isinstance(node, ast.With | ast.AsyncWith) and _expects_attribute_error(node):
            # A lesson showing that an old name is gone: those names must NOT exist (see expected_missing).
            scanner = _Scanner(self.where, self.typed_attributes, self.returns)
            scanner.python_modules = self.python_modules
            scanner.statements(node.body, dict(env))
            self.expected_missing.append((f"{self.where}:{node.lineno}", scanner.uses))
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                value = self.expr(item.context_expr, env)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, value, env)
            self.statements(node.body, env)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node, env)
        elif isinstance(node, ast.ClassDef):
            self.klass(node, env)
        elif isinstance(node, ast.If | ast.While):
            self.expr(node.test, env)
            self.statements(node.body + node.orelse, env)
        elif isinstance(node, ast.Try):
            self.statements(node.body, env)
            for handler in node.handlers:
                self.statements(handler.body, env)
            self.statements(node.orelse + node.finalbody, env)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                self.bind(target, None, env)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, env)

    in_class = False

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, env, skip_self: bool = False) -> None:
        for decorator in node.decorator_list:  # @trtp.register("ns::name"), @trtp.impl(...): TensorRT names too
            self.expr(decorator, env)
        returned = self.annotation_kind(node.returns, env)
        if returned:
            self.found_returns[node.name] = returned
        inner = dict(env)
        arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            self.expr(default, env)
        was, self.in_class = self.in_class, False
        for argument in arguments:
            inner.pop(argument.arg, None)
            annotated = self.annotation_kind(argument.annotation, env)
            if argument.arg == "trt":
                inner["trt"] = ("any", ())
            elif annotated:
                inner[argument.arg] = (annotated, None)
        self.statements(node.body, inner)
        self.in_class = was

    def klass(self, node: ast.ClassDef, env) -> None:
        bases = [self.expr(base, env) for base in node.bases]
        tensorrt_base = next((b for b in bases if b is not None), None)
        was, self.in_class = self.in_class, True
        for statement in node.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                if tensorrt_base is not None and not statement.name.startswith("__"):
                    # an override of a TensorRT callback (ILogger.log, IProfiler.report_layer_time)
                    self.uses.append(Use(statement.name, tensorrt_base[0], (), f"{self.where}:{statement.lineno}"))
                self.function(statement, env)
            else:
                self.statement(statement, env)
        self.in_class = was


def _expects_attribute_error(node: ast.With | ast.AsyncWith) -> bool:
    for item in node.items:
        call = item.context_expr
        if isinstance(call, ast.Call) and getattr(call.func, "attr", getattr(call.func, "id", "")) == "expect_error":
            return any(isinstance(arg, ast.Name) and arg.id == "AttributeError" for arg in call.args)
    return False


def _typed(kind: str):
    if kind.startswith("module:"):
        return (kind.split(":", 1)[1], ())
    return (kind, None)


_MAGIC = re.compile(r"^\s*[%!]")


def notebook_source(path: Path) -> str:
    """The code cells of a notebook as one Python module (each magic line replaced by `pass`)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    parts = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = [line[:len(line) - len(line.lstrip())] + "pass" if _MAGIC.match(line) else line
                 for line in source.split("\n")]
        parts.append(f"# cell {index}\n" + "\n".join(lines))
    return "\n".join(parts) + "\n"


def scan(sources: dict[str, str], rounds: int = 3) -> list[Use]:
    """Every TensorRT name used in `sources` ({where: python source})."""
    return _scan(sources, rounds)[0]


def scan_expected_missing(sources: dict[str, str]) -> list[tuple[str, list[Use]]]:
    """The `with cu.expect_error(AttributeError, ...)` blocks and the TensorRT names used in each."""
    return _scan(sources, 3)[1]


def _scan(sources: dict[str, str], rounds: int) -> tuple[list[Use], list[tuple[str, list[Use]]]]:
    typed: dict[str, str] = {}
    with warnings.catch_warnings():  # a notebook's "\d" in a plain string is not our business here
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        trees = {where: ast.parse(text, filename=where) for where, text in sources.items()}
    uses: list[Use] = []
    missing: list[tuple[str, list[Use]]] = []
    returns: dict[str, str] = {}
    for _ in range(rounds):  # what one round learns (self.engine = ..., -> trt.X) types the next
        found: dict[str, str] = {}
        found_returns: dict[str, str] = {}
        uses, missing = [], []
        for where, tree in trees.items():
            scanner = _Scanner(where, typed, returns)
            scanner.statements(tree.body, {})
            uses += scanner.uses
            missing += scanner.expected_missing
            found |= scanner.found_attributes
            found_returns |= scanner.found_returns
        if (found, found_returns) == (typed, returns):
            break
        typed, returns = found, found_returns
    return uses, missing


def course_sources() -> dict[str, str]:
    sources = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
               for p in sorted((ROOT / "course_utils").rglob("*.py"))}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        sources[str(path.relative_to(ROOT))] = notebook_source(path)
    return sources


# --------------------------------------------------------------------------- the names that exist
def _elf_section(data: bytes, wanted: str) -> bytes:
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not an ELF64 file")
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, ...]:
        return struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size)

    names = header(names_index)
    table = data[names[4]:names[4] + names[5]]
    for i in range(count):
        h = header(i)
        if table[h[0]:table.index(b"\0", h[0])].decode() == wanted:
            return data[h[4]:h[4] + h[5]]
    raise KeyError(wanted)


@dataclass(frozen=True)
class TensorRT11Names:
    """What the installed tensorrt-cu13-bindings wheel defines."""

    rodata: bytes
    plugin_names: frozenset[str]

    def has(self, use: Use) -> bool:
        if use.qualified in REMOVED_QUALIFIED or any(q in REMOVED_QUALIFIED for q in _suffixes(use.chain)):
            return False
        if use.kind == "plugin":
            return use.name in self.plugin_names or (use.name.encode() + b"\0") in self.rodata
        return (use.name.encode() + b"\0") in self.rodata


def _suffixes(chain: tuple[str, ...]) -> list[str]:
    return [".".join(chain[i:]) for i in range(len(chain))]


def _plugin_names(folder: Path) -> frozenset[str]:
    names: set[str] = set()
    for path in folder.glob("*.py"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
            elif isinstance(node, ast.keyword) and node.arg == "symbol" and isinstance(node.value, ast.Constant):
                names.add(str(node.value.value))
    return frozenset(n for n in names if not n.startswith("_"))


@lru_cache(maxsize=1)
def tensorrt11_names() -> TensorRT11Names:
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{WHEEL}=={WHEEL_VERSION} is a dev dependency of the course (it is what this test reads): "
                    "pip install -e '.[dev]'")
    assert dist.version == WHEEL_VERSION, f"the name check reads {WHEEL}=={WHEEL_VERSION}, found {dist.version}"
    files = [f for f in dist.files or () if str(f).endswith(".so") and str(f).startswith("tensorrt_bindings/")]
    assert len(files) == 1, f"expected one compiled module in {WHEEL}, found {files}"
    library = Path(dist.locate_file(files[0]))
    return TensorRT11Names(_elf_section(library.read_bytes(), ".rodata"), _plugin_names(library.parent / "plugin"))


def rtx_module():
    """The installed TensorRT-RTX bindings; a skip only where nothing requires them (not CI)."""
    try:
        return importlib.import_module("tensorrt_rtx_bindings")
    except Exception as error:
        if os.environ.get("CI") or os.environ.get("COURSE_REQUIRE_TENSORRT_RTX"):
            pytest.fail(f"TensorRT-RTX must be importable here (CI installs it): {error}")
        pytest.skip(f"TensorRT-RTX is not importable: {error}")


@lru_cache(maxsize=1)
def rtx_flat_names() -> frozenset[str]:
    module = rtx_module()
    names: set[str] = set()
    todo = [module]
    seen: set[int] = set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        names |= set(dir(obj))
        names |= set(getattr(obj, "__members__", {}) or {})
        for name in dir(obj):
            value = getattr(obj, name, None)
            if isinstance(value, type) and value.__module__.startswith("tensorrt_rtx"):
                todo.append(value)
    return frozenset(names)


def rtx_has(use: Use) -> bool:
    if use.qualified in REMOVED_QUALIFIED or any(q in REMOVED_QUALIFIED for q in _suffixes(use.chain)):
        return False
    if use.chain:
        value = rtx_module()
        for part in use.chain:
            if not hasattr(value, part):
                return False
            value = getattr(value, part)
        return True
    return use.name in rtx_flat_names()


def violations(uses: list[Use], rtx_only: frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with `uses`: each name TensorRT 11.4 or TensorRT-RTX lacks, with where it is used."""
    trt11 = tensorrt11_names()
    problems = []
    for use in uses:
        if use.kind in ("trt", "any", "plugin") and use.name not in rtx_only and not trt11.has(use):
            problems.append(f"{use.where}: {use.qualified} is not in TensorRT {WHEEL_VERSION}")
        if use.kind in ("rtx", "any") and not rtx_has(use):
            problems.append(f"{use.where}: {use.qualified} is not in TensorRT-RTX {rtx_module().__version__}")
    return sorted(set(problems))


# --------------------------------------------------------------------------- the tests
def test_the_course_uses_only_tensorrt_11_4_and_rtx_names() -> None:
    from course_utils.engines import RTX_ONLY_NAMES

    uses = scan(course_sources())
    problems = violations(uses, RTX_ONLY_NAMES)
    assert not problems, "TensorRT names that do not exist:\n" + "\n".join(problems)


def test_names_a_lesson_shows_as_removed_are_really_missing() -> None:
    """`with cu.expect_error(AttributeError, ...)` around old TensorRT code: at least one name in it must be gone."""
    from course_utils.engines import RTX_ONLY_NAMES

    blocks = scan_expected_missing(course_sources())
    assert blocks, "no notebook shows a removed TensorRT name any more; drop this test or the lesson moved"
    for where, uses in blocks:
        if uses:
            assert violations(uses, RTX_ONLY_NAMES), f"{where}: every TensorRT name in this block exists"


def test_the_scan_finds_the_engine_api() -> None:
    """Guards the scanner itself: the calls course_utils.engines makes must all be found."""
    found = {u.name for u in scan(course_sources()) if u.where.startswith("course_utils/engines.py")}
    expected = {"Builder", "create_network", "OnnxParser", "parse_from_file", "num_errors", "get_error",
                "node_name", "node_operator", "create_builder_config", "set_memory_pool_limit", "MemoryPoolType",
                "WORKSPACE", "builder_optimization_level", "profiling_verbosity", "DETAILED",
                "create_optimization_profile", "set_shape", "add_optimization_profile", "build_serialized_network",
                "create_timing_cache", "set_timing_cache", "serialize", "Runtime", "deserialize_cuda_engine",
                "create_execution_context", "num_io_tensors", "get_tensor_name", "get_tensor_mode", "TensorIOMode",
                "get_tensor_profile_shape", "set_input_shape", "set_tensor_address", "infer_shapes",
                "get_tensor_shape", "execute_async_v3", "profiler", "report_layer_time", "IProfiler", "ILogger",
                "log", "create_engine_inspector", "execution_context", "get_engine_information",
                "LayerInformationFormat", "set_compute_capability", "num_compute_capabilities", "get_layer",
                "metadata", "get_plugin_registry", "load_library"}
    assert expected <= found, f"the scan missed {sorted(expected - found)}"


def test_the_check_fails_on_removed_names() -> None:
    planted = '''
import course_utils as cu
trt = cu.import_tensorrt()
builder = trt.Builder(trt.Logger())
network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
config = builder.create_builder_config()
config.set_flag(trt.BuilderFlag.FP16)
config.set_flag(trt.BuilderFlag.INT8)
config.int8_calibrator = None
engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(b"")
for i in range(engine.num_bindings):
    print(engine.get_binding_index("x"))
context = engine.create_execution_context()
context.execute_async_v2([0, 0], 0)
print(builder.get_plugin_registry().plugin_creator_list)  # gone; only a stale docstring still mentions it
rtx = cu.import_tensorrt("tensorrt-rtx")
rtx.ComputeCapability.SM90
'''
    problems = "\n".join(violations(scan({"planted.py": planted})))
    for name in ("EXPLICIT_BATCH", "BuilderFlag.FP16", "BuilderFlag.INT8", "int8_calibrator", "num_bindings",
                 "get_binding_index", "execute_async_v2", "plugin_creator_list"):
        assert f"{name} is not in TensorRT {WHEEL_VERSION}" in problems, (name, problems)
    assert "ComputeCapability.SM90 is not in TensorRT-RTX" in problems
    for fine in ("create_network", "create_builder_config", "deserialize_cuda_engine", "set_flag"):
        assert f": {fine} is not" not in problems


def test_the_current_api_passes_the_check() -> None:
    good = '''
import tensorrt as trt
logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
network = builder.create_network(0)
config = builder.create_builder_config()
config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
config.set_flag(trt.BuilderFlag.TF32)
config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
plan = builder.build_serialized_network(network, config)
engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
context = engine.create_execution_context()
name = engine.get_tensor_name(0)
context.set_input_shape(name, (1, 3))
context.execute_async_v3(0)
import tensorrt.plugin as trtp
trtp.register
'''
    uses = scan({"good.py": good})
    assert {"execute_async_v3", "hardware_compatibility_level", "AMPERE_PLUS", "register"} <= {u.name for u in uses}
    assert not [u for u in uses if u.name in ("startswith", "join")]  # str methods are not TensorRT names
    assert violations(uses) == []


def test_a_name_only_tensorrt_rtx_has_fails_on_the_tensorrt_11_path() -> None:
    shared = 'import course_utils as cu\ntrt = cu.import_tensorrt()\ntrt.ComputeCapability.SM89\n'
    problems = violations(scan({"shared.py": shared}))
    assert problems == [f"shared.py:3: ComputeCapability is not in TensorRT {WHEEL_VERSION}",
                        f"shared.py:3: ComputeCapability.SM89 is not in TensorRT {WHEEL_VERSION}"]
    rtx_only = 'import course_utils as cu\ntrt = cu.import_tensorrt("tensorrt-rtx")\ntrt.ComputeCapability.SM89\n'
    assert violations(scan({"rtx.py": rtx_only})) == []


def test_objects_are_tracked_through_calls_loops_and_attributes() -> None:
    source = '''
from __future__ import annotations
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import tensorrt as trt

class Holder:
    network: trt.INetworkDefinition

def layers(network: trt.INetworkDefinition, holder):
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        yield layer.type.name
    holder.network.num_inputs

class Timer(trt.IProfiler):
    def report_layer_time(self, layer_name, ms):
        self.total = ms

def make_context(engine) -> trt.IExecutionContext:
    return engine.create_execution_context()

make_context(None).execute_async_v3(0)
'''
    uses = scan({"s.py": source})
    names = sorted({u.name for u in uses})
    assert names == ["IExecutionContext", "INetworkDefinition", "IProfiler", "execute_async_v3", "get_layer", "name",
                     "num_inputs", "num_layers", "report_layer_time", "type"]
    assert "total" not in names  # our own attribute on a subclass is not a TensorRT name


def test_objects_kept_in_a_dict_are_tracked() -> None:
    source = (
        "import tensorrt as trt\n"
        "networks = {}\n"
        "networks['a'] = trt.Builder(None).create_network(0)\n"
        "layer = networks['a'].get_layer(0)\n"
        "layer.kernel_size_nd\n"
        "for name, network in networks.items():\n"
        "    network.num_layers\n"
    )
    names = sorted({u.name for u in scan({"d.py": source})})
    assert names == ["Builder", "create_network", "get_layer", "kernel_size_nd", "num_layers"]


def test_rtx_only_names_are_rtx_names_absent_from_tensorrt_11() -> None:
    from course_utils.engines import RTX_ONLY_NAMES

    trt11 = tensorrt11_names()
    for name in RTX_ONLY_NAMES:
        assert name in rtx_flat_names(), name
        assert not trt11.has(Use(name, "trt", (), "list")), f"{name} is in TensorRT 11.4: drop it from RTX_ONLY_NAMES"


def test_the_bindings_wheel_does_not_make_tensorrt_runnable() -> None:
    """tensorrt-cu13-bindings is installed (for this test) but cannot import without NVIDIA's libraries."""
    import course_utils as cu

    tensorrt11_names()  # the wheel is installed
    with pytest.raises(ImportError):
        importlib.import_module("tensorrt_bindings")
    gpu = cu.GpuInfo(True, "NVIDIA H200", (9, 0))
    info = cu.find_tensorrt((9, 0))
    assert info.flavour != "tensorrt" and not info.can_run
    assert any("tensorrt_bindings" in problem for problem in info.problems)
    found = cu.capabilities(gpu, info)
    assert "tensorrt-runtime" not in found and "tensorrt-plugins" not in found
    assert cu.current_lane(gpu, info).name != "TensorRT GPU machine"
    report = cu.doctor()  # this machine: the bindings wheel is installed, NVIDIA's libraries are not
    assert report.tensorrt.flavour != "tensorrt" and "tensorrt-runtime" not in report.capabilities
