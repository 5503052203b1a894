"""Walking the lineage graph: breadth-first from the roots, one frontier at a time, into a
private temporary sqlite file (``_GraphFile``), so a graph of every run is walked in
bounded memory; cycles are found with Tarjan's algorithm. The result is a
``graph.LineageGraph``."""

from __future__ import annotations

import contextlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import msgspec

from ..errors import UsageError
from .graph import DIRECTIONS, LineageGraph

__all__ = ["EdgeSource", "MemoryEdges", "build_graph", "traverse"]


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
