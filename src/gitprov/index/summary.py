"""A run's summary read back from the index rows: what ``mlflow.search_runs`` returns of
a run (name, experiment, status, times, params, latest metric values, tags) plus its
attributes, without reading the run's stored bytes from git.

The rows hold every value of a plain run exactly: a param's text is its JSON when it
is a number or a boolean (``rows.param_row``), so SQLite writes a run's params and tags
as one JSON object each, which msgspec reads in one call; a metric's latest value is its
``REAL`` (NULL: NaN), an attribute its column. What the rows cannot give back exactly — a
param that is a list, a dict (a redacted secret), null, a non-finite float or a huge
integer; an attribute that is not a string, a number or null; a metric of ``-0.0`` —
is marked in the run's ``raw`` bits when the run is indexed, and that part of the
summary is ``None``: the caller reads the run's record instead. The summary of a run
is read only when the run's directory tree is still the one the query answered with,
all of it in one read transaction, so it is the same run ``Run.load`` gives; the keys
come in sorted order, as the record's JSON has them.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

__all__ = ["RAW_ATTRIBUTES", "RAW_METRICS", "RAW_PARAMS", "RunSummary", "moment", "parse_time", "read_summaries"]

#: ``runs.raw`` bits: this part of the run is read from its record, not from the rows
RAW_PARAMS = 1
RAW_ATTRIBUTES = 2
RAW_METRICS = 4
#: the form of every time a record holds (``utc_timestamp``)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: a kind of keys is read as one column per key (a lookup per run and key: no row per
#: value) when it has at most this many keys and a run has on average half of them or
#: more; else its rows are read
_PIVOT_KEYS = 16
#: what a key's column holds when its row's value is NULL (a NaN metric, a null
#: attribute); NULL there means the run has no such row
_NULL = b""
_WANTED = "WITH wanted(rid) AS (SELECT value FROM json_each(?))"
#: a run's row, then its params and its tags, each as its key ids and, after a space, its
#: values as a JSON array in the same order (one aggregate over the same rows: a plain
#: param's text is its JSON, ``rows.param_row``; a float's text in SQLite is not always
#: exact, so metrics and attributes come as values, never as text)
_RUN = "r.rid, r.tree, r.raw, r.name, r.experiment, r.status, r.created, r.ended, COALESCE(r.updated, r.ended), r.deleted"
_PARAMS = ("(SELECT group_concat(key) || ' [' || group_concat(CASE WHEN num IS NULL THEN json_quote(value) ELSE value "
           "END) || ']' FROM params WHERE run = r.rid)")
_TAGS = "(SELECT group_concat(key) || ' ' || json_group_array(value) FROM tags WHERE run = r.rid)"
#: keys of a kind read as rows, and their rows
_ROW_KINDS = ("metrics", "attributes")


class RunSummary:
    """What the index holds of one run; ``params``, ``metrics`` and ``attributes`` are
    ``None`` when they must be read from the record (``raw``)."""

    __slots__ = ("_created_at", "attributes", "created", "deleted", "ended", "experiment", "metrics", "name", "params",
                 "status", "tags", "updated")

    def __init__(self, row: tuple) -> None:
        """From a row of ``_RUN`` and what follows it."""
        (_, _, raw, self.name, self.experiment, self.status, self.created, self.ended, self.updated, deleted) = row[:10]
        self.deleted = bool(deleted)
        raw = raw or 0
        self.params: dict[str, Any] | None = None if raw & RAW_PARAMS else {}
        self.metrics: dict[str, float] | None = None if raw & RAW_METRICS else {}
        self.attributes: dict[str, Any] | None = None if raw & RAW_ATTRIBUTES else {}
        self.tags: dict[str, str] = {}
        self._created_at: datetime | None = None

    def created_at(self) -> datetime | None:
        """``created`` as ``Run.get_date_created`` gives it."""
        if self._created_at is None:
            self._created_at = moment(self.created)
        return self._created_at


def moment(value: int | str | None) -> datetime | None:
    """A time as the index stores it (``store.time_value``), as ``Run.get_date_created``
    gives it (``None`` for none)."""
    if value.__class__ is int:
        return _EPOCH + timedelta(0, value // 1_000_000, value % 1_000_000)  # type: ignore[operator]
    return parse_time(value)  # type: ignore[arg-type]


def parse_time(text: str | None) -> datetime | None:
    """A run's RFC 3339 UTC time as ``Run.get_date_created`` gives it (``None`` for none),
    without ``strptime``'s cost for the form every record has."""
    if not text:
        return None
    if len(text) == 27 and _TIME.fullmatch(text):
        return datetime.fromisoformat(text[:26]).replace(tzinfo=timezone.utc)
    from ..runs.run import _parse_time

    return _parse_time(text)


def _late(names: list[str]) -> set[str]:
    """Of key names in the order they were first seen, those named before one seen earlier."""
    late: set[str] = set()
    highest = ""
    for name in names:
        if name < highest:
            late.add(name)
        highest = max(highest, name)
    return late


class _Keys:
    """The ``keys`` of one connection's index, and the statements that read summaries with
    them. A key id, once given, names the same key for as long as the file lives (keys
    are only ever added: ``rows.RunRows``), so the names are read again only when a
    statement sees a key id above those known (another process, or this one, added keys)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.names: dict[int, str] = {}
        kinds: dict[str, list[tuple[int, str, int]]] = {}
        for kid, kind, name, uses in db.execute("SELECT kid, kind, name, uses FROM keys ORDER BY kid"):
            self.names[kid] = name
            kinds.setdefault(kind, []).append((kid, name, uses))
        self.top = max(self.names, default=0)
        most = max((uses for keys in kinds.values() for _, _, uses in keys), default=0)
        #: a kid list (``_PARAMS``) -> (names in that order, their positions in name order or None)
        self.plans: dict[str, tuple[tuple[str, ...], tuple[int, ...] | None]] = {}
        #: per kind read as columns, its key names in name order; per kind read as rows, the
        #: names that come before one of a lower key id (a run that has one is sorted)
        self.columns: dict[str, list[str]] = {}
        self.late: dict[str, set[str]] = {}
        parts = [_RUN, _PARAMS, _TAGS]
        rows: list[str] = []
        for part, kind in enumerate(_ROW_KINDS):
            keys = sorted(kinds.get(kind, []), key=lambda key: key[1])
            if len(keys) <= _PIVOT_KEYS and 2 * sum(uses for _, _, uses in keys) >= len(keys) * most:
                self.columns[kind] = [name for _, name, _ in keys]
                parts += [f"(SELECT coalesce(value, x'') FROM {kind} WHERE run = r.rid AND key = {kid})"
                          for kid, _, _ in keys]
            else:
                self.late[kind] = _late([name for _, name, _ in sorted(keys)])
                rows.append(f"SELECT {part}, run, key, value FROM {kind} WHERE run IN wanted")
        parts.append("(SELECT max(kid) FROM keys)")
        self.sql = f"{_WANTED} SELECT {', '.join(parts)} FROM runs r WHERE r.rid IN wanted"  # noqa: S608 (ids only)
        self.rows_sql = f"{_WANTED} {' UNION ALL '.join(rows)}" if rows else None

    def plan(self, kids: str) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
        """The names of a kid list and, when they are not in name order, the order to take them in."""
        plan = self.plans.get(kids)
        if plan is None:
            names = tuple(self.names[int(kid)] for kid in kids.split(","))
            order = tuple(sorted(range(len(names)), key=names.__getitem__))
            plan = (names, None if order == tuple(range(len(names))) else order)
            if len(self.plans) >= _PLANS:
                self.plans.clear()
            self.plans[kids] = plan
        return plan


#: kid lists whose plan a connection keeps
_PLANS = 4096
#: the keys of the connections used last (``id(connection)``: the entry holds the
#: connection, so that id is not reused while the entry lives)
_KEYS: dict[int, _Keys] = {}


def _keys(db: sqlite3.Connection, fresh: bool = False) -> _Keys:
    keys = _KEYS.get(id(db))
    if keys is None or keys.db is not db or fresh:
        keys = _Keys(db)
        if len(_KEYS) >= 8:
            _KEYS.pop(next(iter(_KEYS)))
        _KEYS[id(db)] = keys
    return keys


def read_summaries(db: sqlite3.Connection, found: list[tuple[str, str, int]]) -> dict[str, RunSummary]:
    """``{run id: RunSummary}`` of the ``(run id, directory tree id, rid)`` a query found
    whose directory is still that tree in the index; the rest are left out (read them)."""
    from .store import id_bytes

    wanted = {rid: (run_id, id_bytes(tree)) for run_id, tree, rid in found}
    array = "[" + ",".join(map(str, sorted(wanted))) + "]"
    keys = _keys(db)
    for _ in range(3):
        try:
            return _read(db, keys, wanted, array)
        except _NewKeys:
            keys = _keys(db, fresh=True)
    return {}  # keys added faster than they can be read: the runs are read from git


@functools.cache
def _list_decoder() -> Any:
    """A JSON array's items (``msgspec``: imported at the first summary, not with the module)."""
    import msgspec

    return msgspec.json.Decoder(list).decode


class _NewKeys(Exception):
    """A statement saw keys added since the names were read."""


def _read(db: sqlite3.Connection, keys: _Keys, wanted: dict[int, tuple[str, bytes]],
          array: str) -> dict[str, RunSummary]:
    decode = _list_decoder()
    nan = float("nan")
    # one statement, one snapshot; with rows, both statements in one read transaction
    if keys.rows_sql is not None:
        db.execute("BEGIN")
    try:
        found = db.execute(keys.sql, (array,)).fetchall()
        if found and (found[0][-1] or 0) > keys.top:
            raise _NewKeys
        rows = db.execute(keys.rows_sql, (array,)).fetchall() if keys.rows_sql is not None else ()
    finally:
        if keys.rows_sql is not None:
            db.execute("COMMIT")
    out: dict[str, RunSummary] = {}
    by_rid: dict[int, RunSummary] = {}
    metric_names = keys.columns.get("metrics")
    attribute_names = keys.columns.get("attributes")
    columns = 12 + len(metric_names or ())
    plans = keys.plans
    plan = keys.plan
    try:
        for row in found:
            rid = row[0]
            run_id, tree = wanted[rid]
            if row[1] != tree:
                continue
            summary = by_rid[rid] = out[run_id] = RunSummary(row)
            text = row[10]
            if text is not None and summary.params is not None:
                kids, _, values = text.partition(" ")
                names, order = plans.get(kids) or plan(kids)
                items = decode(values)
                summary.params = dict(zip(names, items, strict=True)) if order is None else {names[i]: items[i] for i in order}
            text = row[11]
            if text is not None:
                kids, _, values = text.partition(" ")
                names, order = plans.get(kids) or plan(kids)
                items = decode(values)
                summary.tags = dict(zip(names, items, strict=True)) if order is None else {names[i]: items[i] for i in order}
            if metric_names is not None and summary.metrics is not None:  # a REAL, or _NULL for NaN
                summary.metrics = {name: value if value.__class__ is float else nan
                                   for name, value in zip(metric_names, row[12:columns], strict=True) if value is not None}
            if attribute_names is not None and summary.attributes is not None:
                summary.attributes = {name: None if value.__class__ is bytes else value
                                      for name, value in zip(attribute_names, row[columns:-1], strict=True) if value is not None}
    except KeyError as exc:  # a key id not among the names (defensive: the top key was checked)
        raise _NewKeys from exc
    names_of = keys.names
    for part, rid, kid, value in rows:
        summary = by_rid.get(rid)
        if summary is None:
            continue
        if part == 0:
            if summary.metrics is not None:
                summary.metrics[names_of[kid]] = nan if value is None else value
        elif summary.attributes is not None:
            summary.attributes[names_of[kid]] = value
    # keys sorted, as the record's JSON has them: rows come in key id order, the order
    # keys were first seen, so only a run with a key named before one seen earlier is sorted
    for kind, late in keys.late.items():
        if late:
            for summary in by_rid.values():
                items = getattr(summary, kind)
                if items and not late.isdisjoint(items):
                    setattr(summary, kind, dict(sorted(items.items())))
    return out
