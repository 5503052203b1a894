"""The lineage graph: runs, models, datasets and artifacts joined by what consumed and
produced what, read from the run index.

Nodes are ``run:<id>``, ``model:<name>@<version>`` (``model:<name>`` when registered
without a version), ``dataset:<key>@<digest>`` and ``artifact:<run id>/<path>``. An
edge points from what was used to what used it (``model -> run -> model``). A
``LineageGraph`` is what ``traversal.traverse`` found, drawn as text, JSON, dot or
mermaid.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..nodes import graph_node
from .encoding import LINKS_SQL, node_kind, unhex

if TYPE_CHECKING:
    import sqlite3

    from .traversal import _GraphFile

__all__ = ["DIRECTIONS", "FORMATS", "LineageGraph", "load_edges"]

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
            "SELECT r.id, j.value % 2 AS direction, n.kind, n.name, n.item FROM runs r JOIN lineage l ON l.run = r.rid "
            f"JOIN {LINKS_SQL} JOIN nodes n ON n.nid = j.value >> 1 ORDER BY r.id, direction, n.kind, n.name, n.item"):
        me, direction = f"run:{key.hex()}", "in" if direction_id == 0 else "out"
        kind, name = node_kind(kind), unhex(name)
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
    """What is reachable from the start nodes, with the cycles met on the way.

    The nodes and edges are kept in a ``_GraphFile`` (a private temporary sqlite
    database, ints for node ids), not in Python objects: ``lines`` renders from it a
    line at a time, so a graph of 100,000 runs prints in bounded memory. ``nodes``,
    ``edges``, ``depths`` and ``to_json()`` build the whole graph in memory when asked."""

    def __init__(self, roots: list[str], direction: str, depth: int | None, graph: _GraphFile,
                 finish: Callable[[], list[list[str]]]) -> None:
        self.roots = roots
        self.direction = direction
        self.depth = depth
        self._file = graph
        self._finish: Callable[[], list[list[str]]] | None = finish
        self._cycles: list[list[str]] = []
        self._nodes: dict[str, dict[str, Any]] | None = None
        self._edges: list[tuple[str, str, str]] | None = None

    @property
    def _graph(self) -> _GraphFile:
        """The traversed graph (a lazy traversal is finished on first use)."""
        if self._finish is not None:
            finish, self._finish = self._finish, None
            self._cycles = finish()
        return self._file

    @property
    def cycles(self) -> list[list[str]]:
        """The strongly connected components met (sorted node ids each), sorted."""
        self._graph  # noqa: B018 - finishes a lazy traversal
        return self._cycles

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        """``{node id: its kind, label, missing, deleted}``, nearest first, then by id."""
        if self._nodes is None:
            self._nodes = {name: info for name, _, info in self._graph.nodes()}
        return self._nodes

    @property
    def edges(self) -> list[tuple[str, str, str]]:
        """``(from, to, label)`` of every edge followed, sorted."""
        if self._edges is None:
            self._edges = list(self._graph.edges())
        return self._edges

    @property
    def depths(self) -> dict[str, int]:
        """``{node id: the fewest steps from a root}``."""
        return {name: depth for name, depth, _ in self._graph.nodes()}

    def _node_items(self) -> _Sized:
        return _Sized(self._graph.count, lambda: ({"id": n, "distance": d, **info} for n, d, info in self._graph.nodes()))

    def _edge_items(self) -> _Sized:
        return _Sized(self._graph.edge_count,
                      lambda: ({"from": a, "to": b, "label": label} for a, b, label in self._graph.edges()))

    def to_json(self) -> dict[str, Any]:
        return {
            "roots": self.roots, "direction": self.direction, "depth": self.depth,
            "nodes": list(self._node_items()), "edges": list(self._edge_items()), "cycles": self.cycles,
        }

    def render(self, fmt: str = "text") -> str:
        return "\n".join(self.lines(fmt))

    def lines(self, fmt: str = "text") -> Iterator[str]:
        """The rendering line by line, made as it is consumed (a graph of 100,000 runs
        prints without its text, or its nodes as Python objects, ever being held whole)."""
        if fmt == "json":
            return _json_lines({"roots": self.roots, "direction": self.direction, "depth": self.depth,
                                "nodes": self._node_items(), "edges": self._edge_items(), "cycles": self.cycles})
        if fmt == "dot":
            return self._dot()
        if fmt == "mermaid":
            return self._mermaid()
        if fmt == "text":
            return self._text()
        raise UsageError(f"lineage format must be one of {', '.join(FORMATS)}, not {fmt!r}")

    def _label(self, node: str) -> str:
        return _label_of(self._file.info(self._file.id_of(node)))  # the roots: known before the traversal

    def _text(self) -> Iterator[str]:
        yield (f"lineage of {', '.join(self._label(r) for r in self.roots)} ({self.direction}"
               + (f", depth {self.depth})" if self.depth is not None else ")"))
        graph = self._graph
        cycle_of = {graph.id_of(node): i for i, cycle in enumerate(self.cycles) for node in cycle}
        roots = [graph.id_of(r) for r in self.roots]
        for label, forward in (("upstream", False), ("downstream", True)):
            if self.direction not in (label, "both"):
                continue
            yield f"{label}:"
            start, count, targets = graph.adjacency(forward)
            shown = bytearray(graph.size)
            arrow = "->" if forward else "<-"
            printed = False

            # depth-first with an explicit stack of ints (long chains need no recursion):
            # (what, node, indent), what = _EXPAND a node or print its line, plain or
            # marked (a node already shown; as a cycle when it shares one with its parent)
            what, nodes, indents = array("b"), array("l"), array("l")
            for r in reversed(roots):
                what.append(_EXPAND)
                nodes.append(r)
                indents.append(1)
                shown[r] = 1
            while what:
                kind, node, indent = what.pop(), nodes.pop(), indents.pop()
                if kind != _EXPAND:
                    printed = True
                    yield f"{_indent(indent)}{arrow} {_label_of(graph.info(node))}" + _MARKS[kind]
                    continue
                todo: list[tuple[int, int, int]] = []
                for j in range(start[node], start[node] + count[node]):
                    nxt = targets[j]
                    if shown[nxt]:
                        same = cycle_of.get(nxt) is not None and cycle_of.get(nxt) == cycle_of.get(node)
                        todo.append((_CYCLE if same else _SEEN, nxt, indent))
                    else:
                        shown[nxt] = 1
                        todo += [(_LINE, nxt, indent), (_EXPAND, nxt, indent + 1)]
                for kind, nxt, level in reversed(todo):
                    what.append(kind)
                    nodes.append(nxt)
                    indents.append(level)
            if not printed:
                yield "  (nothing)"
        for cycle in self.cycles:
            yield "cycle: " + " -> ".join(self._label(n) for n in (*cycle, cycle[0]))

    def _dot(self) -> Iterator[str]:
        shapes = {"run": "box", "model": "ellipse", "dataset": "cylinder", "artifact": "note"}
        roots = set(self.roots)
        yield "digraph lineage {"
        yield "  rankdir=LR;"
        for i, (node, _, info) in enumerate(self._graph.nodes()):
            style = ", style=bold" if node in roots else (", style=dashed" if info["missing"] else "")
            yield f"  n{i} [label={json.dumps(_label_of(info))}, shape={shapes[info['kind']]}{style}];"
        for a, b, label in self._graph.edges(keys=True):
            yield f"  {a} -> {b}" + (f" [label={json.dumps(label)}]" if label else "") + ";"
        yield "}"

    def _mermaid(self) -> Iterator[str]:
        yield "flowchart LR"
        for i, (_, _, info) in enumerate(self._graph.nodes()):
            text = _label_of(info).replace('"', "#quot;")
            yield f'  n{i}["{text}"]'
        for a, b, label in self._graph.edges(keys=True):
            yield f"  {a} -->" + (f"|{label}|" if label else "") + f" {b}"


#: what an entry of the text tree's stack is: a node to expand, or a line to print
_EXPAND, _LINE, _SEEN, _CYCLE = 0, 1, 2, 3
_MARKS = {_LINE: "", _SEEN: "  (see above)", _CYCLE: "  (cycle)"}


def _label_of(info: dict[str, Any]) -> str:
    extra = " (missing)" if info["missing"] and "(missing)" not in info["label"] else ""
    return info["label"] + extra + (" (deleted)" if info.get("deleted") else "")


class _Sized:
    """A list made when iterated, whose length is known before (a JSON array streamed)."""

    def __init__(self, count: Callable[[], int], make: Callable[[], Iterator[Any]]) -> None:
        self._count = count
        self._make = make

    def __len__(self) -> int:
        return self._count()

    def __iter__(self) -> Iterator[Any]:
        return self._make()


def _json_lines(doc: dict[str, Any]) -> Iterator[str]:
    """``json.dumps(doc, indent=2, sort_keys=True)`` line by line, a top-level list's
    items (a list, or a ``_Sized`` made as it is read) dumped one at a time; non-finite
    floats tagged as in every ``--json`` output."""
    from ..codec import to_output

    def dumped(value: Any, pad: str) -> str:
        return json.dumps(to_output(value), indent=2, sort_keys=True).replace("\n", "\n" + pad)

    yield "{"
    keys = sorted(doc)
    for i, key in enumerate(keys):
        end = "," if i < len(keys) - 1 else ""
        value = doc[key]
        if isinstance(value, (list, _Sized)) and len(value):
            yield f"  {json.dumps(key)}: ["
            last = len(value) - 1
            for j, item in enumerate(value):
                yield f"    {dumped(item, '    ')}" + ("," if j < last else "")
            yield f"  ]{end}"
        else:
            yield f"  {json.dumps(key)}: {dumped(list(value) if isinstance(value, _Sized) else value, '  ')}{end}"
    yield "}"


#: the text tree indents this many levels at most; deeper lines say their level instead,
#: so a chain of n runs prints O(n) characters, not O(n²)
MAX_INDENT = 24


def _indent(level: int) -> str:
    return "  " * level if level <= MAX_INDENT else f"{'  ' * MAX_INDENT}[{level}] "
