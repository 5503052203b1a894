"""Lineage edges read from the run index a few nodes at a time.

``graph.load_edges`` materialises the whole graph (every lineage row of every run: a
few seconds for 100,000 runs) before a traversal looks at a corner of it. ``IndexEdges``
answers the traversal's questions instead — the edges of this frontier, these nodes'
labels, the nodes whose id starts with this — with indexed queries on the ``lineage``,
``nodes`` and ``runs`` tables, so a lineage query costs what it reaches, not the ledger's size.
The edges and nodes are exactly those of ``load_edges`` (tested on the same graphs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..nodes import graph_node
from .encoding import DIRECTIONS, LINKS_SQL, NODE_KINDS, id_bytes, node_hash, node_row, unhex

if TYPE_CHECKING:
    import sqlite3

__all__ = ["IndexEdges"]

_CHUNK = 500  # ids per ``IN (...)``
_TOP = "\U0010ffff"  # sorts after every character: the upper bound of a prefix range

Edge = tuple[str, str, str]
#: a lineage row with its run id and its node's kind, name and item, from the run's side
#: (``j.value``: a link of the run's ``lineage.links``, the node id doubled plus the direction)
_ROWS = f"runs r JOIN lineage l ON l.run = r.rid JOIN {LINKS_SQL} JOIN nodes n ON n.nid = j.value >> 1"
#: the same from the node's side (``{d}``: the direction), the node found by ``nodes_hash``
_NODE_ROWS = "nodes n JOIN lineage_node l ON l.link = n.nid * 2 + {d} JOIN runs r ON r.rid = l.run"
_DIRECTION_NAMES = {v: k for k, v in DIRECTIONS.items()}
_RUN = NODE_KINDS["run"]
_KIND_NAMES = {code: kind for kind, code in NODE_KINDS.items()}  # ``encoding.node_kind``, inline
#: sorts after every run id's bytes: the upper bound of a range of them
_TOP_BYTES = b"\xff" * 64


def _names(run_ids: Iterable[str]) -> list[bytes | str]:
    """Run ids as a run node's ``name`` holds them (``encoding.node_row``: bytes when the id
    is lowercase hex of even length, else the text)."""
    out: list[bytes | str] = []
    for run_id in run_ids:
        try:
            key = bytes.fromhex(run_id)
        except ValueError:
            out.append(run_id)
            continue
        out.append(key if key.hex() == run_id and run_id else run_id)  # not 'AB', ' ab' nor ''
    return out


def _order(value: Any) -> tuple[str, Any]:
    return value.__class__.__name__, value


def _run_keys(run_ids: Iterable[str]) -> list[bytes]:
    """The index keys of the run ids that can be run ids at all (hex)."""
    out = []
    for run_id in run_ids:
        with contextlib.suppress(ValueError):
            out.append(id_bytes(run_id))
    return out


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class IndexEdges:
    """The lineage graph of one index connection, read on demand."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        #: node id -> the (kind, name, item) of the lineage rows it stands for
        self._parts: dict[str, set[tuple[str, str, str]]] = {}

    def forget(self) -> None:
        """Drop what ``info`` would need for the nodes met so far: a traversal asks for
        each node's label once, when it first meets it, so 100,000 nodes are not held."""
        self._parts.clear()

    # -- node ids ----------------------------------------------------------------------
    def _node(self, kind: str, name: str, item: str) -> str:
        node = graph_node(kind, name, item)
        self._parts.setdefault(node, set()).add((kind, name, item))
        return node

    def _rows(self, sql: str, ids: Iterable[Any], *args: Any) -> Iterator[tuple]:
        """Rows of ``sql`` whose first placeholder ``(?*)`` takes the ids, in chunks; a
        ``(?h)`` before it takes the ``nodes.hash`` of each id as a run node's name."""
        unique = set(ids)
        try:
            ordered = sorted(unique)
        except TypeError:  # run ids as bytes beside a name that is no id
            ordered = sorted(unique, key=_order)
        for chunk in _chunks(ordered):
            hashes = sorted({node_hash(_RUN, name) for name in chunk}) if "(?h)" in sql else []
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(sql.replace("(?h)", f"({','.join('?' * len(hashes))})")
                                       .replace("(?*)", f"({marks})"), [*hashes, *chunk, *args])

    def _parts_of(self, node: str) -> set[tuple[str, str, str]]:
        """Every ``(kind, name, item)`` whose node id is ``node``: a name may hold the
        separator (model ``a@b`` and model ``a`` version ``b`` are one node, as in
        ``load_edges``), so each split is asked for; splits no row has find nothing."""
        kind, _, rest = node.partition(":")
        cuts = [i for i, c in enumerate(rest) if c == ("/" if kind == "artifact" else "@")]
        if kind == "model":
            return {("model", rest, "")} | {("model", rest[:i], rest[i + 1 :]) for i in cuts if rest[i + 1 :]}
        if kind == "dataset":
            return {("dataset", rest[:i], rest[i + 1 :]) for i in cuts}
        if kind == "artifact":
            return {("run", rest[:i], rest[i + 1 :]) for i in cuts if rest[i + 1 :]}
        return set()

    def with_prefix(self, prefix: str) -> list[str]:
        """Sorted ids of the model, dataset and artifact nodes starting with ``prefix``:
        models and datasets by a range of ``node_names``; artifacts (a run node's items)
        by the runs whose id starts so (``runs_id``), or by the id itself when it is
        whole, each run's nodes then found by their hash (``nodes_hash``)."""
        kind, _, rest = prefix.partition(":")
        if kind not in ("model", "dataset", "artifact"):
            return []
        # the row's name starts with the part of the id before the first separator
        head = rest.split("/" if kind == "artifact" else "@", 1)[0]
        if kind == "artifact":
            rows = self._artifact_rows(head)
        else:  # the few names starting so, then each name's nodes (its versions) by their hash
            code, _ = node_row(kind, "")
            names = self.db.execute("SELECT name FROM node_names WHERE kind = ? AND name >= ? AND name <= ?",
                                    (code, head, head + _TOP)).fetchall()
            rows = [row for (name,) in names for row in self.db.execute(
                "SELECT name, item FROM nodes WHERE hash = ? AND kind = ? AND name = ?",
                (node_hash(code, name), code, name))]
        row_kind = "run" if kind == "artifact" else kind
        found = {node for name, item in rows if (kind != "artifact" or item)
                 and (node := self._node(row_kind, unhex(name), item)).startswith(prefix)}
        return sorted(found)

    def _artifact_rows(self, head: str) -> list[tuple[Any, str]]:
        """``(name, item)`` of the run nodes whose run id starts with ``head`` (hex)."""
        if not head:  # every artifact: there is no shorter way than reading them all
            return self.db.execute(f"SELECT name, item FROM nodes WHERE kind = {_RUN} AND item != ''").fetchall()  # noqa: S608
        if any(c not in "0123456789abcdef" for c in head):
            return []
        odd = len(head) % 2
        names = {run_id for (run_id,) in self.db.execute(
            "SELECT id FROM runs WHERE id >= ? AND id <= ?",
            (bytes.fromhex(head + "0" * odd), bytes.fromhex(head + "f" * odd) + _TOP_BYTES))}
        if not odd and len(head) >= 40:  # a whole id: its nodes even when the run is not here
            names.add(bytes.fromhex(head))
        return [row for name in sorted(names) for row in self.db.execute(
            f"SELECT name, item FROM nodes WHERE hash = ? AND kind = {_RUN} AND name = ?",  # noqa: S608
            (node_hash(_RUN, name), name))]

    def __contains__(self, node: str) -> bool:
        kind, _, rest = node.partition(":")
        if kind == "run":
            keys = _run_keys([rest])
            [name] = _names([rest])
            return ((bool(keys) and self.db.execute("SELECT 1 FROM runs WHERE id = ?", keys).fetchone() is not None)
                    or self.db.execute(f"SELECT 1 FROM nodes WHERE hash = ? AND kind = {_RUN} AND name = ? LIMIT 1",
                                       (node_hash(_RUN, name), name)).fetchone() is not None)
        for kind, name, item in self._parts_of(node):  # each reading of the id, looked up by its hash
            code, name = node_row(kind, name)
            if self.db.execute("SELECT 1 FROM nodes WHERE hash = ? AND kind = ? AND name = ? AND item = ? LIMIT 1",
                               (node_hash(code, name), code, name, item)).fetchone() is not None:
                self._node(kind, unhex(name), item)
                return True
        return False

    def info(self, nodes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Kind, label, missing and deleted of each node, as ``load_edges`` gives them."""
        out: dict[str, dict[str, Any]] = {}
        runs = [n[4:] for n in nodes if n.startswith("run:")]
        known = {run_id.hex(): (name, deleted) for run_id, name, deleted in
                 self._rows("SELECT id, name, deleted FROM runs WHERE id IN (?*)", _run_keys(runs))}
        for node in nodes:
            if node.startswith("run:"):
                run_id = node[4:]
                if run_id in known:
                    name, deleted = known[run_id]
                    out[node] = {"kind": "run", "label": f"run {run_id[:12]}" + (f" {name}" if name else ""),
                                 "missing": False, "deleted": bool(deleted)}
                else:
                    out[node] = {"kind": "run", "label": f"run {run_id[:12]} (missing)", "missing": True,
                                 "deleted": False}
                continue
            kind, name, item = min(self._parts.get(node) or self._parts_of(node))
            if kind == "model":
                out[node] = {"kind": "model", "label": f"model {name}@{item}" if item else f"model {name}"}
            elif kind == "dataset":
                out[node] = {"kind": "dataset", "label": f"dataset {name}@{item[:19]}"}
            else:
                out[node] = {"kind": "artifact", "label": f"artifact {name[:12]}/{item}"}
            out[node].update(missing=False, deleted=False)
        return out

    # -- edges ---------------------------------------------------------------------------
    def edges(self, frontier: list[str], forward: bool) -> set[Edge]:
        """Every edge leaving (``forward``) or entering the ``frontier`` nodes."""
        runs = [n[4:] for n in frontier if n.startswith("run:")]
        others: dict[str, list[tuple[str, str, str]]] = {}  # row kind -> (node, name, item)
        for node in frontier:
            if not node.startswith("run:"):
                for kind, name, item in self._parts_of(node):
                    others.setdefault(kind, []).append((node, name, item))
        found: set[Edge] = set()
        mine, theirs = ("out", "in") if forward else ("in", "out")
        # a run's own rows: what it produced (forward) or consumed
        for key, kind, name, item in self._rows(
                f"SELECT r.id, n.kind, n.name, n.item FROM {_ROWS} WHERE r.id IN (?*) AND j.value % 2 = ?",
                _run_keys(runs), DIRECTIONS[mine]):
            run_id, kind = key.hex(), _KIND_NAMES.get(kind, kind)
            if kind in ("model", "dataset", "run"):
                other = self._node(kind, name.hex() if name.__class__ is bytes else name, item)
                found.add((f"run:{run_id}", other, "") if forward else (other, f"run:{run_id}", ""))
        # rows of other runs that name these runs
        for key, name, item in self._rows(
                f"SELECT r.id, n.name, n.item FROM {_NODE_ROWS.format(d=DIRECTIONS[theirs])} WHERE n.hash IN (?h) "
                f"AND n.name IN (?*) AND n.kind = {_RUN}", _names(runs)):
            run_id, name = key.hex(), name.hex() if name.__class__ is bytes else name
            if forward:  # name produced what run_id consumed
                if not item:
                    found.add((f"run:{name}", f"run:{run_id}", ""))
                elif run_id != name:
                    found.add((f"run:{name}", self._node("run", name, item), ""))
            elif not item:  # run_id says it made the run ``name``
                found.add((f"run:{run_id}", f"run:{name}", ""))
        # models and datasets (few): the runs that consumed (forward) or produced them
        for kind in ("model", "dataset"):
            for node, name, item in others.get(kind, ()):
                code = node_row(kind, name)[0]
                for (key,) in self.db.execute(
                        f"SELECT r.id FROM {_NODE_ROWS.format(d=DIRECTIONS[theirs])} WHERE n.hash = ? AND n.kind = ? "
                        "AND n.name = ? AND n.item = ?", (node_hash(code, name), code, name, item)):
                    run_id = key.hex()
                    found.add((node, f"run:{run_id}", "") if forward else (f"run:{run_id}", node, ""))
        # artifacts (many): the runs that consumed (forward) or produced them, and the
        # producer a consumer names
        wanted = {(name, item): node for node, name, item in others.get("run", ())}
        for key, direction_id, name, item in self._rows(
                f"SELECT r.id, l.link % 2, n.name, n.item FROM nodes n JOIN lineage_node l ON l.link IN (n.nid * 2, "
                f"n.nid * 2 + 1) JOIN runs r ON r.rid = l.run WHERE n.hash IN (?h) AND n.name IN (?*) AND n.kind = {_RUN} "
                "AND n.item != ''", _names(name for name, _ in wanted)):
            name = unhex(name)
            node = wanted.get((name, item))
            if node is None:
                continue
            run_id, direction = key.hex(), _DIRECTION_NAMES[direction_id]
            if direction == theirs:
                found.add((node, f"run:{run_id}", "") if forward else (f"run:{run_id}", node, ""))
            elif not forward and run_id != name:
                found.add((f"run:{name}", node, ""))
        return found
