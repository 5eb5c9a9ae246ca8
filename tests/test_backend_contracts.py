"""Contract tests: every name the NVML and amdsmi backends use exists in the installed vendor packages.

The unit tests drive the backends through hand-written fakes, which accept whatever the backend asks
for; these tests close that gap without a GPU. They read each backend's source with `ast`, collect
every attribute taken on the vendor module (the backends always hold it as a local named `nvml` or
`smi`, or as `self._nvml` / `self._smi`) and check it against the real package: pynvml is imported
(that works without a driver) and its objects inspected; amdsmi cannot even be imported without
`libamd_smi.so`, so its `__init__.py`, `amdsmi_interface.py` and friends are parsed instead.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pynvml
import pytest

from exporter.backends import nvml as nvml_backend

BACKENDS = Path(__file__).resolve().parent.parent / "exporter" / "backends"


@dataclass(frozen=True)
class Use:
    """One attribute taken on the vendor module, and how it is used."""

    name: str
    """The attribute on the module: `nvmlDeviceGetUUID`, `AmdSmiClkType`."""
    member: str | None
    """An attribute taken on that in turn: the `GFX` of `AmdSmiClkType.GFX`."""
    positional: int | None
    """How many positional arguments a call passes; None where the attribute is not called."""
    keywords: tuple[str, ...]
    line: int


def module_uses(source: str, local: str, attribute: str) -> list[Use]:
    """Every use of the module object, held as the local `local` or as `self.<attribute>`."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def is_module(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == local
        return (
            isinstance(node, ast.Attribute)
            and node.attr == attribute
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        )

    uses = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and is_module(node.value)):
            continue
        parent = parents.get(node)
        member = parent.attr if isinstance(parent, ast.Attribute) and parent.value is node else None
        call = parent if isinstance(parent, ast.Call) and parent.func is node else None
        uses.append(
            Use(
                name=node.attr,
                member=member,
                positional=len(call.args) if call is not None else None,
                keywords=tuple(k.arg for k in call.keywords if k.arg) if call is not None else (),
                line=node.lineno,
            )
        )
    return uses


# -- pynvml ---------------------------------------------------------------------------------------------


def pynvml_problems(uses: list[Use], module: ModuleType) -> list[str]:
    """What in `uses` the real pynvml lacks: a missing name or member, or a call its signature rejects."""
    problems = []
    for use in uses:
        if not hasattr(module, use.name):
            problems.append(f"line {use.line}: pynvml has no {use.name}")
            continue
        target = getattr(module, use.name)
        if use.member is not None and not hasattr(target, use.member):
            problems.append(f"line {use.line}: pynvml.{use.name} has no {use.member}")
        if use.positional is None or not inspect.isfunction(target):
            continue
        try:
            inspect.signature(target).bind(*[None] * use.positional, **dict.fromkeys(use.keywords))
        except TypeError as e:
            problems.append(f"line {use.line}: pynvml.{use.name} called with {use}: {e}")
    return problems


def test_nvml_backend_uses_only_names_pynvml_has() -> None:
    uses = module_uses((BACKENDS / "nvml.py").read_text(), "nvml", "_nvml")
    assert pynvml_problems(uses, pynvml) == []


def test_nvml_checker_sees_the_backends_calls() -> None:
    """Guard against a vacuous pass: the checker must find the calls the backend is built on."""
    names = {u.name for u in module_uses((BACKENDS / "nvml.py").read_text(), "nvml", "_nvml")}
    assert {
        "nvmlInit",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetMemoryInfo",
        "nvmlGpmMetricsGet",
        "nvmlEventSetWait_v2",
        "NVMLError",
        "NVML_ERROR_GPU_IS_LOST",
    } <= names


def test_nvml_checker_flags_a_made_up_name_and_a_bad_call() -> None:
    source = """
def f(nvml, handle):
    nvml.nvmlDeviceGetBogus(handle)
    nvml.nvmlDeviceGetPowerUsage(handle, handle)
    nvml.nvmlDeviceGetMemoryInfo(handle, flavour=2)
    nvml.NVMLError.nope
"""
    problems = pynvml_problems(module_uses(source, "nvml", "_nvml"), pynvml)
    assert {p.split(":")[0] for p in problems} == {"line 3", "line 4", "line 5", "line 6"}, problems


def test_real_pynvml_errors_map_as_the_backend_expects() -> None:
    """The error classes pynvml builds at import carry the codes `_classify` branches on."""
    assert nvml_backend._classify(pynvml, pynvml.NVMLError_NotSupported()) == "unsupported"
    assert nvml_backend._classify(pynvml, pynvml.NVMLError_FunctionNotFound()) == "unsupported"
    assert nvml_backend._classify(pynvml, pynvml.NVMLError_GpuIsLost()) == "lost"
    assert nvml_backend._classify(pynvml, pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)) == "lost"
    assert nvml_backend._classify(pynvml, pynvml.NVMLError_Unknown()) == "failed"
    assert nvml_backend._classify(pynvml, pynvml.NVMLError_Timeout()) == "failed"


# -- amdsmi ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmdSmiPackage:
    """The installed amdsmi package, read as source: what `__init__` exports and from where."""

    directory: Path
    exports: dict[str, str]
    """Exported name -> the submodule it is imported from (`amdsmi_interface`, `amdsmi_exception`)."""

    def tree(self, submodule: str) -> ast.Module:
        return ast.parse((self.directory / f"{submodule}.py").read_text())

    def submodules(self) -> set[str]:
        return {p.stem for p in self.directory.glob("*.py") if not p.stem.startswith("_")}


@pytest.fixture(scope="module")
def amdsmi_package() -> AmdSmiPackage:
    spec = importlib.util.find_spec("amdsmi")
    assert spec is not None and spec.submodule_search_locations, "amdsmi is not installed"
    directory = Path(next(iter(spec.submodule_search_locations)))
    exports = {}
    for node in ast.walk(ast.parse((directory / "__init__.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                exports[alias.asname or alias.name] = node.module
    return AmdSmiPackage(directory=directory, exports=exports)


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    """Module-level functions, classes and assigned names."""
    found: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = node
    return found


def _class_attributes(node: ast.ClassDef) -> set[str]:
    names = set()
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            names |= {t.id for t in statement.targets if isinstance(t, ast.Name)}
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id)
        elif isinstance(statement, ast.FunctionDef):
            names.add(statement.name)
    return names


def _call_problem(use: Use, function: ast.FunctionDef) -> str | None:
    """Why the call `use` does not fit `function`'s parameters, or None if it does."""
    args = function.args
    positional = [a.arg for a in [*args.posonlyargs, *args.args]]
    required = len(positional) - len(args.defaults)
    assert use.positional is not None
    if use.positional > len(positional) and args.vararg is None:
        return f"passes {use.positional} positional arguments, {function.name} takes {len(positional)}"
    names = set(positional[len(args.posonlyargs) :]) | {a.arg for a in args.kwonlyargs}
    unknown = [k for k in use.keywords if k not in names]
    if unknown and args.kwarg is None:
        return f"passes {unknown}, not parameters of {function.name}"
    given = set(positional[: use.positional]) | set(use.keywords)
    missing = [p for p in positional[:required] if p not in given]
    missing += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None]
    missing = [m for m in missing if m not in given]
    if missing:
        return f"leaves out {missing} of {function.name}"
    return None


def amdsmi_problems(uses: list[Use], package: AmdSmiPackage) -> list[str]:
    """What in `uses` the installed amdsmi lacks, judged from its source."""
    problems = []
    trees: dict[str, dict[str, ast.stmt]] = {}

    def definitions(submodule: str) -> dict[str, ast.stmt]:
        if submodule not in trees:
            trees[submodule] = _top_level(package.tree(submodule))
        return trees[submodule]

    for use in uses:
        where = f"line {use.line}: amdsmi.{use.name}"
        if use.name in package.submodules() and use.name not in package.exports:
            if use.member is None or use.member not in definitions(use.name):
                problems.append(f"{where}.{use.member} is not assigned in {use.name}.py")
            continue
        source = package.exports.get(use.name)
        if source is None:
            problems.append(f"{where} is not exported by amdsmi/__init__.py")
            continue
        definition = definitions(source).get(use.name)
        if definition is None:
            problems.append(f"{where} is exported but not defined in {source}.py")
            continue
        if use.member is not None and (
            not isinstance(definition, ast.ClassDef) or use.member not in _class_attributes(definition)
        ):
            problems.append(f"{where}.{use.member} is not a class attribute in {source}.py")
        if use.positional is not None and isinstance(definition, ast.FunctionDef):
            problem = _call_problem(use, definition)
            if problem:
                problems.append(f"{where}: {problem}")
    return problems


def test_amdsmi_backend_uses_only_names_amdsmi_has(amdsmi_package: AmdSmiPackage) -> None:
    uses = module_uses((BACKENDS / "amdsmi.py").read_text(), "smi", "_smi")
    assert amdsmi_problems(uses, amdsmi_package) == []


def test_amdsmi_checker_sees_the_backends_calls() -> None:
    uses = module_uses((BACKENDS / "amdsmi.py").read_text(), "smi", "_smi")
    names = {u.name for u in uses}
    assert {
        "amdsmi_init",
        "amdsmi_get_power_info",
        "amdsmi_get_temp_metric",
        "AmdSmiClkType",
        "AmdSmiLibraryException",
        "amdsmi_wrapper",
    } <= names
    assert ("AmdSmiTemperatureType", "HOTSPOT") in {(u.name, u.member) for u in uses}


def test_amdsmi_checker_flags_made_up_names_and_bad_calls(amdsmi_package: AmdSmiPackage) -> None:
    source = """
def f(smi, handle):
    smi.amdsmi_get_gpu_bogus(handle)
    smi.amdsmi_get_clock_info(handle)
    smi.amdsmi_get_power_info(handle, handle)
    smi.amdsmi_get_gpu_activity(handle, flavour=1)
    smi.AmdSmiClkType.WARP
    smi.amdsmi_wrapper.AMDSMI_STATUS_MADE_UP
    smi.amdsmi_get_gpu_activity(handle)
    smi.AmdSmiClkType.GFX
"""
    problems = amdsmi_problems(module_uses(source, "smi", "_smi"), amdsmi_package)
    flagged = {p.split(":")[0] for p in problems}
    assert flagged == {"line 3", "line 4", "line 5", "line 6", "line 7", "line 8"}, problems


def test_amdsmi_library_exception_has_the_error_code_getter(amdsmi_package: AmdSmiPackage) -> None:
    """`_classify` reads the status through `get_error_code()`, a method of the real exception."""
    exception = _top_level(amdsmi_package.tree("amdsmi_exception"))["AmdSmiLibraryException"]
    assert isinstance(exception, ast.ClassDef)
    assert "get_error_code" in _class_attributes(exception)


def test_amdsmi_return_keys_the_backend_reads_are_in_the_source(amdsmi_package: AmdSmiPackage) -> None:
    """The dict keys the backend indexes appear as string literals in the function that builds them."""
    functions = _top_level(amdsmi_package.tree("amdsmi_interface"))
    expected = {
        "amdsmi_get_gpu_activity": {"gfx_activity", "umc_activity"},
        "amdsmi_get_gpu_vram_usage": {"vram_total", "vram_used"},
        "amdsmi_get_power_info": {"current_socket_power", "socket_power"},
        "amdsmi_get_energy_count": {"energy_accumulator", "counter_resolution"},
        "amdsmi_get_clock_info": {"clk"},
        "amdsmi_get_gpu_total_ecc_count": {"correctable_count", "uncorrectable_count"},
        "amdsmi_get_gpu_asic_info": {"market_name", "target_graphics_version"},
        "amdsmi_get_gpu_driver_info": {"driver_version"},
        "amdsmi_get_gpu_enumeration_info": {"drm_card"},
        "amdsmi_topo_get_link_type": {"type"},
    }
    backend_source = (BACKENDS / "amdsmi.py").read_text()
    for function, keys in expected.items():
        literals = {
            n.value for n in ast.walk(functions[function]) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
        assert keys <= literals, f"{function} builds no {keys - literals}"
        assert all(f'"{k}"' in backend_source for k in keys), f"test is stale for {function}"
