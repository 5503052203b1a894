"""The layering of the package (docs/design/architecture.md), read from the source.

Every import counts: module level, inside functions, and type-only imports under
``TYPE_CHECKING``. A *unit* is a top-level module (``codec``) or package (``store``);
units must form a DAG, and each may import only the units its layer allows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gitprov

SRC = Path(gitprov.__file__).parent

#: unit -> the units it may import (its own modules are always allowed). Lower layers
#: first; keep in step with the drawing in docs/design/architecture.md.
_BASE = {"_version", "errors", "_util"}
ALLOWED: dict[str, set[str]] = {
    "_version": set(),
    "errors": set(),
    "_util": set(),
    "names": set(),
    "scrub": set(),
    "model": {"_version"},
    "nodes": {"errors", "keys"},
    "codec": {"_version", "errors", "model"},
    "keys": {"errors", "scrub"},
    "settings": {"errors", "names", "scrub"},
    "fingerprint": {"model", "scrub"},
    "schema": {"_version", "errors", "model", "names"},
    # the store works on bytes and git objects: it knows no records, codec or schema
    "store": _BASE,
    "quickcapture": _BASE | {"names", "schema", "fingerprint", "store"},
    "runs": _BASE | {"model", "codec", "keys", "nodes", "schema", "scrub", "settings", "fingerprint", "store"},
    "index": _BASE | {"model", "codec", "nodes", "store", "runs"},
    "provenance": _BASE | {"model", "codec", "store", "index"},
    "captures": _BASE | {"model", "codec", "schema", "settings", "fingerprint", "store", "runs", "provenance"},
    "exchange": _BASE | {"model", "codec", "keys", "scrub", "store", "runs"},
    "history": _BASE | {"model", "codec", "schema", "store", "index"},
    "verify": _BASE | {"model", "codec", "schema", "store", "index", "history"},
    "sync": _BASE | {"model", "codec", "scrub", "store", "runs", "index"},
    "status": _BASE | {"model", "codec", "store", "index", "history", "exchange", "sync"},
    "githooks": _BASE | {"model", "codec", "schema", "settings", "scrub", "store", "runs", "quickcapture",
                         "captures", "provenance", "history", "exchange", "sync"},
    # the standards' formats of runs and lineage (prov export)
    "exports": _BASE | {"model", "codec", "nodes", "store", "runs", "index"},
    # the facades: the verbs and the public lineage module
    "lineage": {"runs", "index"},
    "api": _BASE | {"model", "codec", "schema", "store", "runs", "index", "provenance", "captures", "exchange",
                    "history", "verify", "githooks", "status", "exports"},
    # the front ends
    "ui": _BASE | {"codec", "keys", "model", "store", "runs", "index", "provenance"},
    "integrations": _BASE | {"api", "lineage", "names", "schema", "scrub", "store", "runs", "sync"},
    "cli": _BASE | {"api", "codec", "model", "names", "schema", "scrub", "store", "runs", "index", "exchange",
                    "history", "verify", "githooks", "quickcapture", "integrations", "sync", "lineage", "__init__",
                    "status", "ui", "exports"},
    "__init__": {"_version", "errors", "api", "runs", "lineage"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str] | None = None) -> set[str]:
    """Absolute names of every module ``path`` imports, anywhere in its source
    (relative imports resolved). ``from pkg import name`` counts ``pkg.name`` when that
    is one of ``modules`` (``from . import codec`` imports ``gitprov.codec``, not the
    package), else ``pkg``; without ``modules``, both."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if modules is None:
                    found.update((target, full))
                else:
                    found.add(full if full in modules else target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the gitprov modules it imports, anywhere in its source."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(paths)
    return {name: {t for t in imports_of(path, modules) if t in modules and t != name} for name, path in paths.items()}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        mine = unit_of(module)
        units.setdefault(mine, set()).update(unit_of(t) for t in targets if unit_of(t) != mine)
    return units


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, …, a]``, or None for a DAG."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_units_form_no_import_cycle() -> None:
    cycle = find_cycle(unit_graph(import_graph()))
    assert cycle is None, "import cycle between packages/top-level modules: " + " -> ".join(cycle)


def test_each_unit_imports_only_what_its_layer_allows() -> None:
    units = unit_graph(import_graph())
    assert set(units) <= set(ALLOWED), f"new units need a layer rule in ALLOWED: {sorted(set(units) - set(ALLOWED))}"
    wrong = {u: sorted(targets - ALLOWED[u]) for u, targets in units.items() if targets - ALLOWED[u]}
    assert wrong == {}, f"imports against the layers: {wrong}"


def test_nothing_below_the_facade_imports_it() -> None:
    facades = {"api", "lineage", "__init__"}
    below = {u for u in ALLOWED if u not in facades | {"cli", "integrations"}}
    units = unit_graph(import_graph())
    assert {u: sorted(units.get(u, set()) & facades) for u in below if units.get(u, set()) & facades} == {}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = import_graph()
    graph["gitprov.store.repo"] = graph["gitprov.store.repo"] | {"gitprov.api"}  # a deliberate back-edge
    assert find_cycle(unit_graph(graph)) is not None


def test_no_module_shadows_a_public_name() -> None:
    """``import gitprov.x`` sets ``gitprov.x``: a module named like a public verb
    (``capture``) would replace the verb once anything imported the module."""
    modules = {p.stem for p in SRC.glob("*.py")} | {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert modules & set(gitprov.__all__) == set()
