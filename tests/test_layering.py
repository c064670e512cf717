"""The layout stays true: imports point down the layers, folders form no cycle, one error root.

Every module of the library (``schemas/``, ``codegen/``, ``points_bridge/``,
``verify_api/``, ``cli.py``) is parsed with ``ast``; every import in it, at
the top or inside a function (a lazy import is still a dependency), is an
edge. ``LAYERS`` is the order, bottom first; a module belongs to the layer of
the longest prefix that names it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

from codegen.exc import ItemsealError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "codegen", "points_bridge", "verify_api")
FIRST_PARTY = {*PACKAGES, "cli"}

LAYERS: tuple[tuple[str, ...], ...] = (
    ("schemas",),
    ("codegen.store", "codegen.exc", "codegen.times"),  # Redis links, keyspace, scripts, audit;
    # the error root and the time format every layer shows
    ("codegen",),  # codes, signing, keys, tenants, products, batches, mint, config, exc
    ("codegen.commands",),
    ("points_bridge",),  # members, rules, tiers, ledger, credit, CRM
    ("points_bridge.sms",),  # outbound transport, senders, opt-out
    ("points_bridge.outreach",),  # segments, SMS campaigns, care, draws
    ("points_bridge.commands",),
    ("verify_api",),  # exc, metrics
    ("verify_api.check",),  # the hot path
    ("verify_api.channels",),
    ("verify_api.admin",),
    ("verify_api.resources",),  # the falcon HTTP edge
    ("verify_api.app", "verify_api.asgi", "verify_api.gunicorn_conf"),
    ("verify_api.commands",),
    ("cli",),
)
"""Bottom first: a module may import its own layer and the layers below it, nothing above."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def library() -> dict[str, Path]:
    """Every module of the library, by dotted name."""
    files = [ROOT / "cli.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return {module_name(f): f for f in files if "__pycache__" not in f.parts}


def folder(module: str) -> str:
    """The package a module sits in (a package's ``__init__`` sits in itself)."""
    if library()[module].name == "__init__.py":
        return module
    return module.rpartition(".")[0] or "<root>"


def layer(module: str) -> int:
    best, rank = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS"
    return rank


def _resolve(importer: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The first-party modules an import statement loads (a name imported from a package
    is its submodule when there is one, else the package itself)."""
    modules = library()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = importer if library()[importer].name == "__init__.py" else \
                importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for alias in node.names
        ]
    found = []
    for name in names:
        if name.split(".")[0] not in FIRST_PARTY:
            continue
        while name and name not in modules:  # ``import a.b.c`` of a name inside a module
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


@cache
def imports() -> dict[str, dict[str, int]]:
    """Module -> {first-party module it imports: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in library().items():
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _resolve(module, node):
                    if target != module:
                        edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def third_party_imports(module: str) -> set[str]:
    path = library()[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's components: the modules that reach one another through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_parser_sees_the_library():
    """Guard the guards: the walk finds the modules and edges we know are there."""
    graph = imports()
    assert {"cli", "codegen.store.keyspace", "verify_api.check.engine"} <= set(graph)
    assert "codegen.store.keyspace" in graph["verify_api.check.scans"]
    assert "codegen.config" in graph["cli"]
    assert "verify_api.check.engine" in graph["verify_api.channels.sms"]
    assert layer("codegen.store.keyspace") < layer("codegen.tenants") < layer("cli")
    assert layer("verify_api.app") > layer("verify_api.resources.verify")


def test_no_import_cycle_spans_two_folders():
    crossing = [
        component for component in strongly_connected(imports())
        if len({folder(m) for m in component}) > 1
    ]  # fmt: skip
    assert crossing == [], f"modules of different folders import each other: {crossing}"


def test_imports_only_point_down_the_layers():
    upward = [
        f"{library()[m].relative_to(ROOT)}:{line} imports {target}"
        f" ({LAYERS[layer(m)][0]} -> {LAYERS[layer(target)][0]})"
        for m, edges in imports().items()
        for target, line in edges.items()
        if layer(target) > layer(m)
    ]
    assert upward == [], "imports pointing up a layer:\n" + "\n".join(upward)


def test_click_only_in_commands_and_cli():
    with_click = [
        m for m in library()
        if "click" in third_party_imports(m) and m != "cli" and ".commands" not in f".{m}"
    ]  # fmt: skip
    assert with_click == [], f"the library imports click outside commands/: {with_click}"


ERROR_CLASS = re.compile(r"^class (\w*(?:Error|Exception))\b", re.M)
BUILDS_AT_IMPORT = {"verify_api.asgi": "builds the app from the environment"}


@pytest.mark.parametrize("module", sorted(library()))
def test_every_error_descends_from_the_one_root(module):
    """``grep -rn "^class .*Error\\|^class .*Exception"``, and every exception class defined."""
    named = ERROR_CLASS.findall(library()[module].read_text())
    if module in BUILDS_AT_IMPORT:  # not imported here: it defines no class at all
        tree = ast.parse(library()[module].read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        return
    loaded = importlib.import_module(module)
    for name in named:
        cls = getattr(loaded, name)
        assert issubclass(cls, ItemsealError), f"{module}.{name} is not an ItemsealError"
    for name, cls in inspect.getmembers(loaded, inspect.isclass):
        if cls.__module__ == module and issubclass(cls, BaseException):
            assert issubclass(cls, ItemsealError), f"{module}.{name} is not an ItemsealError"
