"""The lineage graph: runs, models, datasets and artifacts joined by what consumed and
produced what, read from the run index.

Nodes are ``run:<id>``, ``model:<name>@<version>`` (``model:<name>`` when registered
without a version), ``dataset:<key>@<digest>`` and ``artifact:<run id>/<path>``. An
edge points from what was used to what used it (``model -> run -> model``). Traversal
is breadth-first with a visited set, so cycles (two runs that consumed each other's
artifacts) end it; they are found with Tarjan's algorithm and reported.
"""

from __future__ import annotations

import contextlib
import json
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

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


#: frontier nodes whose edges are asked for at a time (a frontier may be every run)
_FRONTIER_CHUNK = 512


def traverse(source: EdgeSource, roots: list[str], direction: str = "both", depth: int | None = None, *,
             lazy: bool = False) -> LineageGraph:
    """Breadth-first from ``roots``, one frontier at a time: what is reachable within
    ``depth`` steps, the edges followed, and the cycles among them. Nodes and edges go
    to a ``_GraphFile`` as they are found, each node's label asked for once, when it
    is first met. ``lazy``: the roots are looked up now, the rest when the graph is
    first used (``prov lineage`` prints its title line first)."""
    if direction not in DIRECTIONS:
        raise UsageError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise UsageError(f"depth must be a non-negative integer, not {depth!r}")
    graph = _GraphFile()
    roots_ids = graph.intern(dict.fromkeys(roots), source)
    depths = array("l")

    def reach(node: int, level: int) -> None:
        if node >= len(depths):
            depths.extend([-1] * (node - len(depths) + 1024))
        if depths[node] < 0 or level < depths[node]:
            depths[node] = level

    for r in roots_ids.values():
        reach(r, 0)
    graph_of = LineageGraph(roots, direction, depth, graph,
                            lambda: _walk(source, graph, roots, roots_ids, direction, depth, depths, reach))
    if not lazy:
        graph_of.cycles  # noqa: B018 - the traversal, now
    return graph_of


def _walk(source: EdgeSource, graph: _GraphFile, roots: list[str], roots_ids: dict[str, int], direction: str,
          depth: int | None, depths: array, reach: Callable[[int, int], None]) -> list[list[str]]:
    """``traverse``'s breadth-first walks, into ``graph``; returns the cycles."""
    for name, forward in (("downstream", True), ("upstream", False)):
        if direction not in (name, "both"):
            continue
        seen = bytearray()
        frontier = list(dict.fromkeys(roots))
        for r in roots_ids.values():
            seen.extend(bytes(max(0, r + 1 - len(seen))))
            seen[r] = 1
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            following: list[str] = []
            for i in range(0, len(frontier), _FRONTIER_CHUNK):
                edges = source.edges(frontier[i:i + _FRONTIER_CHUNK], forward)
                ids = graph.intern({n for edge in edges for n in edge[:2]}, source)
                graph.add_edges((ids[a], ids[b], label) for a, b, label in edges)
                for edge in edges:
                    nxt = edge[1] if forward else edge[0]
                    node = ids[nxt]
                    if node >= len(seen):
                        seen.extend(bytes(node - len(seen) + 1024))
                    if not seen[node]:
                        seen[node] = 1
                        reach(node, level)
                        following.append(nxt)
            frontier = following
    graph.finish(depths)
    return _cycles(graph)


class _GraphFile:
    """A traversal's nodes (an int id each, in the order found) and edges, in a private
    temporary sqlite database: on disk, deleted when closed, a few MB of page cache."""

    def __init__(self) -> None:
        import sqlite3

        self.db = db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA cache_size=-4096")
        db.execute("PRAGMA temp_store=FILE")
        db.executescript(
            "CREATE TABLE node(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, info BLOB, depth INTEGER,"
            " rank INTEGER, ord INTEGER);"
            "CREATE TABLE edge(a INTEGER NOT NULL, b INTEGER NOT NULL, label TEXT NOT NULL,"
            " PRIMARY KEY (a, b, label)) WITHOUT ROWID;")
        db.execute("BEGIN")
        self.last = 0  # the largest node id given
        self._count: int | None = None
        self._edge_count: int | None = None
        self._adjacency: dict[bool, tuple[array, array, array]] = {}
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()

    @property
    def size(self) -> int:
        """A length for arrays indexed by node id."""
        return self.last + 1

    def intern(self, names: Iterable[str], source: EdgeSource) -> dict[str, int]:
        """``{name: node id}``, ids given to the names not met before, whose labels
        ``source`` is asked for now (an ``IndexEdges`` may then forget them)."""
        names = list(names)
        db = self.db
        db.executemany("INSERT OR IGNORE INTO node(name) VALUES (?)", ((n,) for n in names))
        ids: dict[str, int] = {}
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            ids.update(db.execute(f"SELECT name, id FROM node WHERE name IN ({','.join('?' * len(chunk))})", chunk))
        new = [n for n in names if ids[n] > self.last]
        if new:
            self.last = max(ids[n] for n in new)
            info = source.info(new)
            db.executemany("UPDATE node SET info = ? WHERE id = ?", ((self._encode(info[n]), ids[n]) for n in new))
        forget = getattr(source, "forget", None)
        if forget is not None:
            forget()
        return ids

    def add_edges(self, edges: Iterable[tuple[int, int, str]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO edge VALUES (?, ?, ?)", edges)

    def finish(self, depths: array) -> None:
        """Record each node's depth (nodes no traversal reached are left out), then
        their order by id (``rank``) and by depth and id (``ord``)."""
        db = self.db
        db.executemany("UPDATE node SET depth = ? WHERE id = ?",
                       ((d, i) for i, d in enumerate(depths) if d >= 0 and i <= self.last))
        db.execute("DELETE FROM node WHERE depth IS NULL")
        db.execute("CREATE TEMP TABLE orders AS SELECT id, row_number() OVER (ORDER BY name) AS rank,"
                   " row_number() OVER (ORDER BY depth, name) AS ord FROM node")
        db.execute("UPDATE node SET rank = orders.rank, ord = orders.ord FROM orders WHERE orders.id = node.id")
        db.execute("DROP TABLE orders")
        db.execute("CREATE INDEX node_ord ON node(ord)")

    def count(self) -> int:
        if self._count is None:
            self._count = self.db.execute("SELECT count(*) FROM node").fetchone()[0]
        return self._count

    def edge_count(self) -> int:
        if self._edge_count is None:
            self._edge_count = self.db.execute("SELECT count(*) FROM edge").fetchone()[0]
        return self._edge_count

    def id_of(self, name: str) -> int:
        row = self.db.execute("SELECT id FROM node WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(name)
        return row[0]

    def info(self, node: int) -> dict[str, Any]:
        return self._decode(self.db.execute("SELECT info FROM node WHERE id = ?", (node,)).fetchone()[0])

    def nodes(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """``(name, depth, info)`` of every node, nearest first, then by name."""
        decode = self._decode
        for name, depth, info in self.db.execute("SELECT name, depth, info FROM node ORDER BY ord"):
            yield name, depth, decode(info)

    def edges(self, keys: bool = False) -> Iterator[tuple[str, str, str]]:
        """``(from, to, label)`` sorted by names then label; ``keys``: the nodes as
        ``n<position in nodes()>`` (dot and mermaid ids) instead of their names."""
        cols = "'n' || (x.ord - 1), 'n' || (y.ord - 1)" if keys else "x.name, y.name"
        yield from self.db.execute(f"SELECT {cols}, e.label FROM edge e JOIN node x ON x.id = e.a "
                                   "JOIN node y ON y.id = e.b ORDER BY x.rank, y.rank, e.label")

    def adjacency(self, forward: bool) -> tuple[array, array, array]:
        """``(start, count, targets)``: the neighbours of node ``i`` (what it leads to,
        or what leads to it) are ``targets[start[i]:start[i] + count[i]]``, by name
        (made once a direction: the cycles and the text tree share the forward one)."""
        made = self._adjacency.get(forward)
        if made is None:
            made = self._adjacency[forward] = self._make_adjacency(forward)
        return made

    def _make_adjacency(self, forward: bool) -> tuple[array, array, array]:
        start, count, targets = array("l", bytes(8 * self.size)), array("l", bytes(8 * self.size)), array("l")
        src, dst = ("a", "b") if forward else ("b", "a")
        for node, other in self.db.execute(
                f"SELECT e.{src}, e.{dst} FROM edge e JOIN node x ON x.id = e.{src} JOIN node y ON y.id = e.{dst} "
                "ORDER BY x.rank, y.rank, e.label"):
            if not count[node]:
                start[node] = len(targets)
            count[node] += 1
            targets.append(other)
        return start, count, targets

    def names(self, ids: Iterable[int]) -> list[str]:
        return [self.db.execute("SELECT name FROM node WHERE id = ?", (i,)).fetchone()[0] for i in ids]


def _cycles(graph: _GraphFile) -> list[list[str]]:
    """Strongly connected components with more than one node, or with a self-loop
    (iterative Tarjan over int arrays: no recursion limit on deep graphs, no dict a node)."""
    start, count, targets = graph.adjacency(True)
    size = graph.size
    index = array("l", [-1]) * size
    low = array("l", bytes(8 * size))
    on_stack = bytearray(size)
    stack = array("l")
    found: list[list[str]] = []
    counter = 0
    for (first,) in graph.db.execute("SELECT id FROM node ORDER BY ord"):
        if index[first] >= 0:
            continue
        work_node, work_i = array("l", [first]), array("l", [0])
        while work_node:
            node, i = work_node.pop(), work_i.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = 1
            if i < count[node]:
                work_node.append(node)
                work_i.append(i + 1)
                nxt = targets[start[node] + i]
                if index[nxt] < 0:
                    work_node.append(nxt)
                    work_i.append(0)
                elif on_stack[nxt]:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = 0
                    component.append(member)
                    if member == node:
                        break
                loop = any(targets[j] == node for j in range(start[node], start[node] + count[node]))
                if len(component) > 1 or loop:
                    found.append(sorted(graph.names(component)))
            if work_node:
                parent = work_node[-1]
                low[parent] = min(low[parent], low[node])
    return sorted(found)
