"""What the index keeps of a run: its record and state decoded for the fields the
tables hold, and the rows made of them, inserted a batch at a time.

Decoding is the larger part of a cold build's Python time, so record and state are
decoded straight from their bytes into structs of only the indexed fields (``_Record``,
``_State``; other fields are skipped, not validated: ``Run.load`` checks the whole run
when one is read). Anything out of the ordinary — a tagged non-finite float, a
format version this release does not write, a field of the wrong type — takes the
general path (``codec.decode`` into the full model), so its result or its error is
exactly that of reading the run.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import Counter
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .. import codec
from ..model import RunRecord, RunState
from ..model.common import FORMAT_VERSION
from ..runs.stage import STAGE_PREFIX
from .encoding import (
    DIRECTIONS,
    KEY_KINDS,
    KEYED_TABLES,
    NODE_KINDS,
    NODE_NAMES_SQL,
    RUN_TABLES,
    hexish,
    id_bytes,
    link,
    node_hash,
    node_row,
    pack_links,
    status_value,
    time_value,
)
from .summary import RAW_ATTRIBUTES, RAW_METRICS, RAW_PARAMS

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

    from .reading import RunBlobs

__all__ = ["RunRows", "decode_part", "param_row", "param_text", "sql_value"]

T = TypeVar("T")


class _Code(msgspec.Struct):
    commit: str | None


class _Record(msgspec.Struct, tag="run-record", tag_field="kind"):
    format_version: int
    created: str
    code: _Code
    params: dict[str, Any] = {}
    parent: str | None = None
    user: str = ""


class _Metric(msgspec.Struct):
    value: float


class _Dataset(msgspec.Struct):
    digest: str


class _Lineage(msgspec.Struct, frozen=True):
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}


class _State(msgspec.Struct, tag="run-state", tag_field="kind"):
    format_version: int
    name: str = ""
    experiment: str = ""
    status: str = "running"
    updated: str = ""
    ended: str | None = None
    deleted: bool = False
    tags: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    params: dict[str, Any] = {}
    metrics: dict[str, _Metric] = {}
    datasets: dict[str, _Dataset] = {}
    lineage: _Lineage = _Lineage()


_IN, _OUT, _DATASET = DIRECTIONS["in"], DIRECTIONS["out"], NODE_KINDS["dataset"]
_DECODERS: dict[type, msgspec.json.Decoder] = {}
_FLOAT_TAG = b"$float"


def decode_part(data: bytes, lean: type, full: type[T], what: str) -> Any:
    """``data`` as ``lean`` (a struct of some of ``full``'s fields, or ``full`` itself)
    decoded straight from its bytes, or, when it is anything but plain, as
    ``codec.decode`` reads it (the full model, with the same fields, or its error)."""
    if _FLOAT_TAG not in data and b'"format_version":' in data:
        decoder = _DECODERS.get(lean)
        if decoder is None:
            decoder = _DECODERS[lean] = msgspec.json.Decoder(lean)
        try:
            value = decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            if 1 <= value.format_version <= FORMAT_VERSION:
                return value
    return codec.decode(data, full, what)


def sql_value(value: Any) -> Any:
    """A JSON value as SQLite stores it: scalars natively (bools as 0/1), the rest (and
    integers beyond 64 bits) as JSON."""
    if value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int) and _INT64[0] <= value < _INT64[1]:
        return int(value)
    return codec.encode(value).decode()


def param_text(value: Any) -> str:
    """A param as text, as MLflow holds it once the run is synced: a string as it is,
    anything else as compact JSON with sorted keys (``0.01`` -> ``"0.01"``, ``True`` ->
    ``"true"``, ``[1, 2]`` -> ``"[1,2]"``)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float and value - value == 0:  # finite: JSON writes a float as repr() does
        return repr(value)
    if kind is int:
        return repr(value)
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_INT64 = (-2**63, 2**63)


def param_row(name: str, value: Any) -> tuple[str, str, int | float | None]:
    """``(name, text, number)`` of a params row: the param as text (``param_text``, what a
    string compares with), and as a number when it is one (booleans as 0 and 1).
    A plain param's text (``_plain_param``) is also its JSON (``summary``)."""
    kind = type(value)
    if kind is str:
        return name, value, None
    if kind is float:
        return name, param_text(value), value if value - value == 0 else None
    if isinstance(value, int):  # bool and int
        return name, param_text(value), int(value) if _INT64[0] <= value < _INT64[1] else None
    if isinstance(value, float):
        return name, param_text(value), float(value) if value - value == 0 else None
    return name, param_text(value), None


def _plain_param(value: Any) -> bool:
    """Whether ``value`` comes back exactly from its row's text (``summary``): a string,
    or a number or boolean whose text is its JSON."""
    kind = value.__class__
    if kind is str or kind is bool:
        return True
    if kind is int:
        return _INT64[0] <= value < _INT64[1]
    return kind is float and value - value == 0


def _plain_attribute(value: Any) -> bool:
    """Whether an attribute's column value (``sql_value``) is the attribute itself."""
    kind = value.__class__
    if value is None or kind is str:
        return True
    if kind is int:
        return _INT64[0] <= value < _INT64[1]
    return kind is float and value == value


class RunRows:
    """Rows of decoded runs, inserted a batch at a time, table by table (one
    ``executemany`` per table and batch instead of several per run).

    With ``background``, batches are inserted by a thread of their own while the next
    batch is decoded (SQLite runs without the GIL): a cold build overlaps its two halves.
    Use it as a context manager; the thread is the only user of ``db`` until the block
    ends, and it has finished (its error raised, if it had one) when the block ends.

    With ``stage`` (a cold build: the tables are empty, ``nodes_hash`` dropped), the rows of
    the ``WITHOUT ROWID`` tables (b-trees which inserts leave about 12% empty) and, without
    ``node_ids``, the lineage nodes go to temporary tables first, copied at the end of the
    block in one ``INSERT … SELECT *`` each: SQLite's transfer fills each page of the copy.
    With ``node_ids`` too, its lineage nodes get their ids as the rows are made (``nids``),
    not from a lookup in SQLite per lineage row (40% of the inserts' CPU), for ~33 MB of
    node keys held at 100,000 runs: what ``build_process``' child does (the process
    inserting holds none of it); in-process, the lookups keep the peak at ~118 MiB."""

    def __init__(self, db: sqlite3.Connection, *, batch: int = 2000, background: bool = False,
                 stage: bool = False, node_ids: bool = False) -> None:
        self.db = db
        self.staged: tuple[str, ...] = ()
        if stage:
            # with ``node_ids``, ``lineage`` and ``nodes`` (rowid tables, appended in rowid
            # order: their pages fill as the copy's would) go straight in
            self.staged = ("params", "metrics", "tags", "attributes", "lineage_node") + (
                () if node_ids else ("lineage", "nodes"))
            for table in self.staged:
                (sql,), = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
                db.execute(f"DROP TABLE IF EXISTS temp.stage_{table}")
                db.execute(sql.replace(f"CREATE TABLE {table}(", f"CREATE TEMP TABLE stage_{table}(", 1))
            if not node_ids:
                db.execute("CREATE INDEX temp.stage_nodes_hash ON stage_nodes(hash)")
        self.batch = batch
        #: with ``node_ids`` (a staged build: the tables start empty), its lineage nodes,
        #: ``kind:len(name):name item`` -> ``nid``
        self.nids: dict[str, int] | None = {} if stage and node_ids else None
        self.next_nid = (db.execute("SELECT max(nid) FROM nodes").fetchone()[0] or 0) + 1
        self.tables = self._empty()
        self.count = 0
        self.next_rid = (db.execute("SELECT max(rid) FROM runs").fetchone()[0] or 0) + 1
        self.next_kid = (db.execute("SELECT max(kid) FROM keys").fetchone()[0] or 0) + 1
        #: commit (as ``hexish`` stores it) -> ``commits.cid``
        self.cids: dict[bytes | str, int] = {oid: cid for cid, oid in db.execute("SELECT cid, oid FROM commits")}
        #: a commit as records spell it -> its ``cid`` (``hexish`` once a commit)
        self.spelled: dict[str, int] = {}
        #: per table, key name -> ``keys.kid``
        self.kids: dict[str, dict[str, int]] = {kind: {} for kind in KEY_KINDS}
        for kid, kind, name in db.execute("SELECT kid, kind, name FROM keys"):
            self.kids.setdefault(kind, {})[name] = kid
        self._batches: queue.Queue[dict[str, list[tuple]] | None] | None = None
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._sink: Callable[[dict[str, list[tuple]], int], None] | None = None
        if background:
            self._batches = queue.Queue(maxsize=1)  # one batch waiting, one going in
            self._worker = threading.Thread(target=self._insert_all, name="prov-index-insert", daemon=True)
            self._worker.start()

    def start(self) -> dict[str, Any]:
        """Where the ids of the rows to come start (``detached``), as JSON; only for an
        index without commits yet (a cold build), whose commit ids start at 1."""
        if self.cids:
            raise ValueError("rows are made apart only for an index without runs")
        return {"rid": self.next_rid, "kid": self.next_kid, "nid": self.next_nid, "kids": self.kids,
                "node_ids": self.nids is not None}

    @classmethod
    def detached(cls, start: dict[str, Any], sink: Callable[[dict[str, list[tuple]], int], None]) -> RunRows:
        """Rows made without the index (``build_process``' child): ids numbered from
        ``start`` (``RunRows.start`` of the index), each batch handed to ``sink`` with
        its count of runs, to be inserted (``insert``) by the index's own ``RunRows``."""
        rows = cls.__new__(cls)
        rows.db, rows.staged, rows.batch = None, (), start["batch"]  # type: ignore[assignment]
        rows.nids = {} if start["node_ids"] else None
        rows.next_rid, rows.next_kid, rows.next_nid = start["rid"], start["kid"], start["nid"]
        rows.kids = {**{kind: {} for kind in KEY_KINDS}, **start["kids"]}
        rows.cids, rows.spelled = {}, {}
        rows.tables, rows.count = rows._empty(), 0
        rows._batches, rows._worker, rows._error, rows._sink = None, None, None, sink
        return rows

    @staticmethod
    def _empty() -> dict[str, list[tuple]]:
        return {t: [] for t in ("commits", "runs", "keys", "nodes", *RUN_TABLES, "lineage_node")}

    def __enter__(self) -> RunRows:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.flush()
        if self._worker is not None and self._batches is not None:
            if kind is not None:  # give up what waits: the transaction rolls back
                with contextlib.suppress(queue.Empty):
                    self._batches.get_nowait()
            self._batches.put(None)
            self._worker.join()
            self._worker = None
        if self._error is not None and kind is None:
            raise self._error
        for table in self.staged:
            if kind is None:
                self.db.execute(f"INSERT INTO main.{table} SELECT * FROM temp.stage_{table}")  # noqa: S608 (fixed names)
            self.db.execute(f"DROP TABLE temp.stage_{table}")

    def keyed(self, table: str, rid: int, items: Any) -> None:
        kids = self.kids[table]
        rows = self.tables[table]
        for name, *values in items:
            rows.append((rid, kids.get(name) or self._new_key(table, name), *values))

    def _new_key(self, table: str, name: str) -> int:
        kid = self.kids[table][name] = self.next_kid
        self.next_kid += 1
        self.tables["keys"].append((kid, table, name, 0))
        return kid

    def _commit(self, commit: str | None) -> int | None:
        """The ``commits.cid`` of a run's commit (a new one for a commit not seen before)."""
        if commit is None:
            return None
        cid = self.spelled.get(commit)  # as the record spells it: seen before
        if cid is not None:
            return cid
        oid = hexish(commit)
        cid = self.cids.get(oid)  # type: ignore[arg-type]
        if cid is None:
            cid = self.cids[oid] = len(self.cids) + 1  # type: ignore[index]
            self.tables["commits"].append((cid, oid))
        self.spelled[commit] = cid
        return cid

    def add(self, blobs: RunBlobs) -> None:
        """Make the rows of one run; a full batch is handed on to be inserted.

        The common values (a string, a finite float, a 64-bit integer) take the inline
        path: this loop is most of a cold build's Python time. Anything else goes through
        ``param_row``, ``sql_value`` and their ``_plain_*`` checks (``runs.raw``)."""
        run_id = blobs.run_id
        record = decode_part(blobs.record, _Record, RunRecord, f"record of run {run_id[:12]}")
        state = decode_part(blobs.state, _State, RunState, f"state of run {run_id[:12]}")
        rid = self.next_rid
        self.next_rid += 1
        t = self.tables
        raw = 0
        low, high = _INT64
        kids, rows, new_key = self.kids["params"], t["params"], self._new_key
        for name, value in (state.params if not record.params else {**record.params, **state.params}).items():
            kind = value.__class__
            if kind is str:
                rows.append((rid, kids.get(name) or new_key("params", name), value, None))
            elif (kind is float and value - value == 0) or (kind is int and low <= value < high):
                rows.append((rid, kids.get(name) or new_key("params", name), repr(value), value))
            else:
                _, text, num = param_row(name, value)
                rows.append((rid, kids.get(name) or new_key("params", name), text, num))
                if not _plain_param(value):
                    raw |= RAW_PARAMS
        kids, rows = self.kids["metrics"], t["metrics"]
        for name, metric in state.metrics.items():
            value = metric.value
            if value == 0 and str(value)[0] == "-":  # -0.0: a REAL column keeps 0.0
                raw |= RAW_METRICS
            rows.append((rid, kids.get(name) or new_key("metrics", name), None if value != value else value))
        kids = self.kids["tags"]
        t["tags"].extend([(rid, kids.get(name) or new_key("tags", name), value) for name, value in state.tags.items()])
        kids, rows = self.kids["attributes"], t["attributes"]
        for name, value in state.attributes.items():
            kid = kids.get(name) or new_key("attributes", name)
            if value is None or value.__class__ is str:
                rows.append((rid, kid, value))
                continue
            rows.append((rid, kid, sql_value(value)))
            if not _plain_attribute(value):
                raw |= RAW_ATTRIBUTES
            if value.__class__ is dict and name.startswith(STAGE_PREFIX):
                t["stages"].append((rid, kid, str(value.get("name")), value.get("args_hash"), value.get("commit"),
                                    int(bool(value.get("dirty"))), value.get("status"), value.get("ended")))
        experiment = self.kids["experiment"].get(state.experiment) or new_key("experiment", state.experiment)
        t["runs"].append((rid, id_bytes(run_id), id_bytes(blobs.tree), state.name, experiment, status_value(state.status),
                          time_value(record.created), time_value(state.ended),
                          None if state.updated == state.ended else time_value(state.updated), self._commit(record.code.commit),
                          hexish(record.parent), int(state.deleted), record.user or None, raw or None))
        lineage = state.lineage
        if self.nids is not None:  # a staged build: each node's id known here, no lookup per row in SQLite
            if lineage.inputs or lineage.outputs or state.datasets:
                self._link(rid, lineage, state.datasets)
        elif lineage.inputs or lineage.outputs or state.datasets:
            edges = set()
            for direction, side in ((DIRECTIONS["in"], lineage.inputs), (DIRECTIONS["out"], lineage.outputs)):
                for key, items in side.items():
                    kind, _, name = key.partition(":")
                    kind, name = node_row(kind, name)
                    code = node_hash(kind, name)
                    edges.update((rid, direction, kind, name, item, code) for item in (items or [""]))
            # dataset versions (log_dataset_version, prov run --input/--output) are lineage too
            dataset = NODE_KINDS["dataset"]
            for key, version in state.datasets.items():
                edges.add((rid, DIRECTIONS["out" if key.startswith("output/") else "in"], dataset, key, version.digest,
                           node_hash(dataset, key)))
            t["lineage"].extend(edges)  # in any order: ``_insert`` orders them; the nodes table decides
        self.count += 1
        if self.count >= self.batch:
            self.flush()

    def _link(self, rid: int, lineage: _Lineage, datasets: dict[str, _Dataset]) -> None:
        """The lineage rows of run ``rid``, its nodes numbered here (``nids``): each node
        keyed by one string, ``kind:len(name):name`` and its item (~30 MB less than tuples at
        100,000 runs), made from the lineage key as stored, ``node_row`` only for a new node."""
        nids, nodes, links, next_nid = self.nids, self.tables["nodes"], set(), self.next_nid
        assert nids is not None
        for direction, side in ((_IN, lineage.inputs), (_OUT, lineage.outputs)):
            for key, items in side.items():
                kind, _, name = key.partition(":")
                head = f"{kind}:{len(name)}:{name}"
                for item in items or ("",):
                    nid = nids.get(head + item)
                    if nid is None:
                        nid = nids[head + item] = next_nid
                        next_nid += 1
                        code, stored = node_row(kind, name)
                        nodes.append((nid, code, stored, item, node_hash(code, stored)))
                    links.add(link(direction, nid))
        # dataset versions (log_dataset_version, prov run --input/--output) are lineage too
        for key, version in datasets.items():
            item = version.digest
            nid = nids.get(f"dataset:{len(key)}:{key}{item}")
            if nid is None:
                nid = nids[f"dataset:{len(key)}:{key}{item}"] = next_nid
                next_nid += 1
                nodes.append((nid, _DATASET, key, item, node_hash(_DATASET, key)))
            links.add(link(_OUT if key.startswith("output/") else _IN, nid))
        self.next_nid = next_nid
        ordered = sorted(links)
        self.tables["lineage"].append((rid, pack_links(ordered)))
        self.tables["lineage_node"].extend([(value, rid) for value in ordered])

    def flush(self) -> None:
        """Insert the rows made so far (or hand them to the inserting thread)."""
        tables, count, self.tables, self.count = self.tables, self.count, self._empty(), 0
        if self._sink is not None:
            self._sink(tables, count)
            return
        if self._batches is None:
            self._insert(tables)
            return
        if self._error is not None:
            raise self._error
        self._batches.put(tables)

    def _insert_all(self) -> None:
        assert self._batches is not None
        for tables in iter(self._batches.get, None):
            if self._error is None:
                try:
                    self._insert(tables)
                except BaseException as exc:  # raised in the building thread
                    self._error = exc

    def insert(self, tables: dict[str, list[tuple]]) -> None:
        """Insert a batch made by a ``detached`` ``RunRows`` started from this one."""
        self._insert(tables)

    def _insert(self, tables: dict[str, list[tuple]]) -> None:
        db = self.db
        lineage = tables.pop("lineage")
        if self.nids is not None:  # node ids made with the rows (``add``): inserted as they are
            tables["lineage"], lineage = lineage, []
        for table, rows in tables.items():
            if rows:
                marks = ",".join("?" * len(rows[0]))
                into = f"temp.stage_{table}" if table in self.staged else table
                db.executemany(f"INSERT INTO {into} VALUES ({marks})", rows)  # noqa: S608 (fixed names)
                if table in KEYED_TABLES:
                    uses = Counter(map(itemgetter(1), rows))
                    db.executemany("UPDATE keys SET uses = uses + ? WHERE kid = ?", [(n, k) for k, n in uses.items()])
        if lineage:  # each (kind, name, item) once in nodes; the rows refer to it by its nid
            db.execute("CREATE TEMP TABLE IF NOT EXISTS lineage_edges(run, direction, kind, name, item, hash)")
            db.executemany("INSERT INTO temp.lineage_edges VALUES (?, ?, ?, ?, ?, ?)", lineage)
            into, nodes = ("temp.stage_lineage", "temp.stage_nodes") if self.staged else ("lineage", "nodes")
            same = "n.hash = s.hash AND n.kind = s.kind AND n.name = s.name AND n.item = s.item"
            db.execute(f"INSERT INTO {nodes}(kind, name, item, hash) SELECT DISTINCT kind, name, item, hash "  # noqa: S608
                       f"FROM temp.lineage_edges s WHERE NOT EXISTS (SELECT 1 FROM {nodes} n WHERE {same}) "
                       "ORDER BY 1 DESC, 2, 3")  # datasets first: the smallest nids
            db.execute(f"INSERT OR IGNORE INTO node_names {NODE_NAMES_SQL.format(nodes='temp.lineage_edges')}")  # noqa: S608
            links: dict[int, list[int]] = {}
            for run, value in db.execute(f"SELECT DISTINCT s.run, n.nid * 2 + s.direction FROM temp.lineage_edges s "  # noqa: S608
                                         f"JOIN {nodes} n ON {same} ORDER BY 1, 2"):
                links.setdefault(run, []).append(value)
            db.executemany(f"INSERT INTO {into} VALUES (?, ?)", [(run, pack_links(v)) for run, v in links.items()])  # noqa: S608
            db.executemany(f"INSERT INTO {into}_node VALUES (?, ?)",  # noqa: S608
                           sorted((value, run) for run, v in links.items() for value in v))
            db.execute("DELETE FROM temp.lineage_edges")
