"""The package's layers (docs/architecture.md), checked from the source: every import of a project module, at
module level or inside a function, runs in an allowed direction; no import cycle; no private name crosses a
module; the records side imports no torch.

Cheap: it parses the files with ``ast`` and imports nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("tssl", "tssl_baselines")

# Subpackage -> the subpackages it may import (besides itself). The engine and the records stand on nothing of
# the project; the harness may use everything below it; the command line sits on top.
BELOW_HARNESS = {"tssl.engine", "tssl.records", "tssl.data", "tssl.compat", "tssl.methods", "tssl.measure"}
ALLOWED: dict[str, set[str]] = {
    "tssl.engine": set(),
    "tssl.records": set(),
    "tssl.data": {"tssl.engine"},
    "tssl.compat": {"tssl.engine", "tssl.methods"},  # NIR export rebuilds a finished run's network by its method
    "tssl.methods": {"tssl.engine"},
    "tssl.measure": {"tssl.engine", "tssl.records"},
    "tssl.harness": {*BELOW_HARNESS, "tssl_baselines"},  # tssl bench probes SpikingJelly's LIF implementations
    "tssl.cli": {"tssl", *BELOW_HARNESS, "tssl.harness"},
    "tssl.__main__": {"tssl.cli"},
    "tssl": set(),  # tssl/__init__.py: the engine is loaded lazily, by name
    "tssl_baselines": {"tssl.engine", "tssl.methods"},
}
TORCH_FREE = ("tssl.records",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "baselines":
        parts[0] = "tssl_baselines"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> dict[str, Path]:
    files = [*sorted((ROOT / "tssl").rglob("*.py")), *sorted((ROOT / "baselines").rglob("*.py"))]
    return {module_name(path): path for path in files}


MODULES = project_files()


def layer(module: str) -> str:
    """The subpackage (or top-level module) ``module`` belongs to."""
    if module.startswith("tssl_baselines"):
        return "tssl_baselines"
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def imported_modules(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names) for every import of a project module in ``path``, however deeply nested. A name
    that is itself a module (``from tssl.records import check``) is yielded as that module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in PROJECT:
                continue
            plain = []
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    yield node.lineno, submodule, []
                else:
                    plain.append(alias.name)
            if plain:
                yield node.lineno, node.module, plain


def import_graph() -> dict[str, set[str]]:
    return {module: {target for _, target, _ in imported_modules(path)} - {module}
            for module, path in MODULES.items()}


def test_every_project_module_is_known():
    unknown = sorted({(module, target) for module, path in MODULES.items()
                      for _, target, _ in imported_modules(path) if target not in MODULES})
    assert not unknown, unknown


def test_layers_import_in_the_allowed_directions():
    assert set(map(layer, MODULES)) <= set(ALLOWED), sorted(set(map(layer, MODULES)) - set(ALLOWED))
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module} imports {target}"
        for module, path in MODULES.items()
        for line, target, _ in imported_modules(path)
        if layer(target) != layer(module) and layer(target) not in ALLOWED[layer(module)]
    ]
    assert not wrong, "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycles_including_function_level_imports():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def private_uses(path: Path, reads: bool = True) -> Iterator[str]:
    """Private names of other project modules that ``path`` imports, or (``reads``) reads as ``module._name``."""
    tree = ast.parse(path.read_text(), str(path))
    bound: set[str] = set()  # local names bound to project modules
    for line, target, names in imported_modules(path):
        for name in names:
            if name.startswith("_") and not name.startswith("__"):
                yield f"{path.relative_to(ROOT)}:{line}: imports {target}.{name}"
    if not reads:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update(a.asname or a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in PROJECT)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT:
            bound.update(a.asname or a.name for a in node.names if f"{node.module}.{a.name}" in MODULES)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in bound):
            yield f"{path.relative_to(ROOT)}:{node.lineno}: reads {node.value.id}.{node.attr}"


def test_no_private_name_crosses_a_module():
    """Project code neither imports nor reads another module's private names. A test may read one of the module
    it tests (a white-box test reaching a cache or a kernel: ``compiled._failed``), never import one by name."""
    code = [*MODULES.values(), *sorted((ROOT / "benchmarks").glob("*.py"))]
    found = [use for path in code for use in private_uses(path)]
    found += [use for path in sorted((ROOT / "tests").glob("*.py")) for use in private_uses(path, reads=False)]
    assert not found, "\n".join(found)


def test_the_records_side_imports_no_torch():
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for module, path in MODULES.items() if layer(module) in TORCH_FREE
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names))
        or (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch")
    ]
    assert not found, found
