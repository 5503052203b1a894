"""The lineage graph: runs, models, datasets and artifacts joined by what consumed and
produced what, read from the run index.

Nodes are ``run:<id>``, ``model:<name>@<version>`` (``model:<name>`` when registered
without a version), ``dataset:<key>@<digest>`` and ``artifact:<run id>/<path>``. An
edge points from what was used to what used it (``model -> run -> model``). Traversal
is breadth-first with a visited set, so cycles (two runs that consumed each other's
artifacts) end it; they are found with Tarjan's algorithm and reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UsageError
from ..nodes import graph_node

if TYPE_CHECKING:
    import sqlite3

__all__ = ["DIRECTIONS", "FORMATS", "LineageGraph", "MemoryEdges", "build_graph", "load_edges", "traverse"]

DIRECTIONS = ("both", "upstream", "downstream")
FORMATS = ("text", "json", "dot", "mermaid")


def load_edges(db: sqlite3.Connection) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str]]]:
    """Every node (with its kind, label, and whether it is missing) and every edge."""
    nodes: dict[str, dict[str, Any]] = {}
    for key, name, deleted in db.execute("SELECT id, name, deleted FROM runs"):
        run_id = key.hex()
        nodes[f"run:{run_id}"] = {"kind": "run", "label": f"run {run_id[:12]}" + (f" {name}" if name else ""),
                                  "missing": False, "deleted": bool(deleted)}
    edges: list[tuple[str, str, str]] = []

    def node(node_id: str, kind: str, label: str) -> str:
        if node_id not in nodes:
            nodes[node_id] = {"kind": kind, "label": label, "missing": kind == "run", "deleted": False}
        return node_id

    for key, direction_id, kind, name, item in db.execute(
            "SELECT r.id, l.direction, n.kind, n.name, n.item FROM runs r JOIN lineage l ON l.run = r.rid "
            "JOIN nodes n ON n.nid = l.node ORDER BY r.id, l.direction, n.kind, n.name, n.item"):
        me, direction = f"run:{key.hex()}", "in" if direction_id == 0 else "out"
        if kind == "model":
            other = node(graph_node(kind, name, item), "model",
                         f"model {name}@{item}" if item else f"model {name}")
        elif kind == "dataset":
            other = node(graph_node(kind, name, item), "dataset", f"dataset {name}@{item[:19]}")
        elif kind == "run":
            producer = node(graph_node(kind, name), "run", f"run {name[:12]} (missing)")
            if not item:
                if direction == "in":
                    edges.append((producer, me, ""))
                else:
                    edges.append((me, producer, ""))
                continue
            other = node(graph_node(kind, name, item), "artifact", f"artifact {name[:12]}/{item}")
            if direction == "in" and producer != me:
                edges.append((producer, other, ""))
        else:
            continue
        edges.append((other, me, "") if direction == "in" else (me, other, ""))
    return nodes, sorted(set(edges))


class LineageGraph:
    """What is reachable from the start nodes, with the cycles met on the way."""

    def __init__(self, roots: list[str], direction: str, depth: int | None,
                 nodes: dict[str, dict[str, Any]], edges: list[tuple[str, str, str]],
                 cycles: list[list[str]], depths: dict[str, int]) -> None:
        self.roots = roots
        self.direction = direction
        self.depth = depth
        self.nodes = nodes
        self.edges = edges
        self.cycles = cycles
        self.depths = depths

    def to_json(self) -> dict[str, Any]:
        return {
            "roots": self.roots, "direction": self.direction, "depth": self.depth,
            "nodes": [{"id": n, "distance": self.depths.get(n), **info} for n, info in self.nodes.items()],
            "edges": [{"from": a, "to": b, "label": label} for a, b, label in self.edges],
            "cycles": self.cycles,
        }

    def render(self, fmt: str = "text") -> str:
        return "\n".join(self.lines(fmt))

    def lines(self, fmt: str = "text") -> Iterator[str]:
        """The rendering line by line, made as it is consumed (a graph of 100,000 runs
        prints without its text ever being held whole)."""
        if fmt == "json":
            return _json_lines(self.to_json())
        if fmt == "dot":
            return self._dot()
        if fmt == "mermaid":
            return self._mermaid()
        if fmt == "text":
            return self._text()
        raise UsageError(f"lineage format must be one of {', '.join(FORMATS)}, not {fmt!r}")

    def _label(self, node: str) -> str:
        info = self.nodes[node]
        extra = " (missing)" if info["missing"] and "(missing)" not in info["label"] else ""
        return info["label"] + extra + (" (deleted)" if info.get("deleted") else "")

    def _text(self) -> Iterator[str]:
        yield (f"lineage of {', '.join(self._label(r) for r in self.roots)} ({self.direction}"
               + (f", depth {self.depth})" if self.depth is not None else ")"))
        cycle_of = {node: i for i, cycle in enumerate(self.cycles) for node in cycle}
        for label, forward in (("upstream", False), ("downstream", True)):
            if self.direction not in (label, "both"):
                continue
            yield f"{label}:"
            shown: set[str] = set()
            adjacency: dict[str, list[str]] = {}
            for a, b, _ in self.edges:
                src, dst = (a, b) if forward else (b, a)
                adjacency.setdefault(src, []).append(dst)
            arrow = "->" if forward else "<-"
            printed = False

            # depth-first with an explicit stack (long chains need no recursion); a node
            # already shown is marked, as a cycle when it shares a cycle with its parent
            stack: list[tuple[str, int]] = [(r, 1) for r in reversed(self.roots)]
            shown.update(self.roots)
            while stack:
                node, indent = stack.pop()
                if indent < 0:  # a line queued in order
                    printed = True
                    yield node
                    continue
                todo: list[tuple[str, int]] = []
                for nxt in adjacency.get(node, []):
                    prefix = f"{_indent(indent)}{arrow} {self._label(nxt)}"
                    if nxt in shown:
                        same = cycle_of.get(nxt) is not None and cycle_of.get(nxt) == cycle_of.get(node)
                        todo.append((f"{prefix}  ({'cycle' if same else 'see above'})", -1))
                    else:
                        shown.add(nxt)
                        todo += [(prefix, -1), (nxt, indent + 1)]
                stack.extend(reversed(todo))
            if not printed:
                yield "  (nothing)"
        for cycle in self.cycles:
            yield "cycle: " + " -> ".join(self._label(n) for n in (*cycle, cycle[0]))

    def _ids(self) -> dict[str, str]:
        return {node: f"n{i}" for i, node in enumerate(self.nodes)}

    def _dot(self) -> Iterator[str]:
        shapes = {"run": "box", "model": "ellipse", "dataset": "cylinder", "artifact": "note"}
        ids = self._ids()
        yield "digraph lineage {"
        yield "  rankdir=LR;"
        for node, info in self.nodes.items():
            style = ", style=bold" if node in self.roots else (", style=dashed" if info["missing"] else "")
            yield f"  {ids[node]} [label={json.dumps(self._label(node))}, shape={shapes[info['kind']]}{style}];"
        for a, b, label in self.edges:
            yield f"  {ids[a]} -> {ids[b]}" + (f" [label={json.dumps(label)}]" if label else "") + ";"
        yield "}"

    def _mermaid(self) -> Iterator[str]:
        ids = self._ids()
        yield "flowchart LR"
        for node in self.nodes:
            text = self._label(node).replace('"', "#quot;")
            yield f'  {ids[node]}["{text}"]'
        for a, b, label in self.edges:
            yield f"  {ids[a]} -->" + (f"|{label}|" if label else "") + f" {ids[b]}"


def _json_lines(doc: dict[str, Any]) -> Iterator[str]:
    """``json.dumps(doc, indent=2, sort_keys=True)`` line by line, a top-level list's
    items dumped one at a time; non-finite floats tagged as in every ``--json`` output."""
    from ..codec import to_output

    def dumped(value: Any, pad: str) -> str:
        return json.dumps(to_output(value), indent=2, sort_keys=True).replace("\n", "\n" + pad)

    yield "{"
    keys = sorted(doc)
    for i, key in enumerate(keys):
        end = "," if i < len(keys) - 1 else ""
        value = doc[key]
        if isinstance(value, list) and value:
            yield f"  {json.dumps(key)}: ["
            for j, item in enumerate(value):
                yield f"    {dumped(item, '    ')}" + ("," if j < len(value) - 1 else "")
            yield f"  ]{end}"
        else:
            yield f"  {json.dumps(key)}: {dumped(value, '  ')}{end}"
    yield "}"


#: the text tree indents this many levels at most; deeper lines say their level instead,
#: so a chain of n runs prints O(n) characters, not O(n²)
MAX_INDENT = 24


def _indent(level: int) -> str:
    return "  " * level if level <= MAX_INDENT else f"{'  ' * MAX_INDENT}[{level}] "


class EdgeSource(Protocol):
    """What a traversal asks of a graph (``MemoryEdges`` or ``edges.IndexEdges``)."""

    def edges(self, frontier: list[str], forward: bool) -> set[tuple[str, str, str]]: ...

    def info(self, nodes: Iterable[str]) -> dict[str, dict[str, Any]]: ...


class MemoryEdges:
    """A graph held in memory (what ``load_edges`` returns)."""

    def __init__(self, nodes: dict[str, dict[str, Any]], edges: list[tuple[str, str, str]]) -> None:
        self.nodes = nodes
        self.forward: dict[str, list[tuple[str, str, str]]] = {}
        self.backward: dict[str, list[tuple[str, str, str]]] = {}
        for edge in edges:
            self.forward.setdefault(edge[0], []).append(edge)
            self.backward.setdefault(edge[1], []).append(edge)

    def edges(self, frontier: list[str], forward: bool) -> set[tuple[str, str, str]]:
        adjacency = self.forward if forward else self.backward
        return {e for node in frontier for e in adjacency.get(node, ())}

    def info(self, nodes: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {n: self.nodes[n] for n in nodes}


def build_graph(nodes: dict[str, dict[str, Any]], edges: list[tuple[str, str, str]], roots: list[str],
                direction: str = "both", depth: int | None = None) -> LineageGraph:
    return traverse(MemoryEdges(nodes, edges), roots, direction, depth)


def traverse(source: EdgeSource, roots: list[str], direction: str = "both", depth: int | None = None) -> LineageGraph:
    """Breadth-first from ``roots``, one frontier at a time: what is reachable within
    ``depth`` steps, the edges followed, and the cycles among them."""
    if direction not in DIRECTIONS:
        raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise UsageError(f"depth must be a non-negative integer, not {depth!r}")
    kept: set[tuple[str, str, str]] = set()
    depths: dict[str, int] = {r: 0 for r in roots}
    for name, forward in (("downstream", True), ("upstream", False)):
        if direction not in (name, "both"):
            continue
        seen = {r: 0 for r in roots}
        frontier = list(dict.fromkeys(roots))
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            following: list[str] = []
            for edge in source.edges(frontier, forward):
                kept.add(edge)
                nxt = edge[1] if forward else edge[0]
                if nxt not in seen:
                    seen[nxt] = level
                    depths[nxt] = min(depths.get(nxt, level), level)
                    following.append(nxt)
            frontier = following
    info = source.info(depths)
    sub_nodes = {n: info[n] for n in sorted(depths, key=lambda n: (depths[n], n))}
    sub_edges = sorted(kept)
    return LineageGraph(roots, direction, depth, sub_nodes, sub_edges, _cycles(sub_nodes, sub_edges), depths)


def _cycles(nodes: dict[str, Any], edges: list[tuple[str, str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or with a self-loop
    (iterative Tarjan: no recursion limit on deep graphs)."""
    adjacency: dict[str, list[str]] = {}
    loops = set()
    for a, b, _ in edges:
        adjacency.setdefault(a, []).append(b)
        if a == b:
            loops.add(a)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = adjacency.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in loops:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(found)
