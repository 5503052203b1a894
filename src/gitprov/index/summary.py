"""A run's summary read back from the index rows: what ``mlflow.search_runs`` returns of
a run (name, experiment, status, times, params, latest metric values, tags) plus its
attributes, without reading the run's stored bytes from git.

The rows hold every value of a plain run exactly: a param's text is its JSON when it
is a number or a boolean (``rows.param_row``), a metric's latest value is its ``REAL``
(NULL: NaN), an attribute its column. What the rows cannot give back exactly — a param
that is a list, a dict (a redacted secret), null, a non-finite float or a huge integer;
an attribute that is not a string, a number or null; a metric of ``-0.0`` — is marked in
the run's ``raw`` bits when the run is indexed, and that part of the summary is
``None``: the caller reads the run's record instead.

One statement reads the summaries of a whole answer, one row per run (``_Keys``): its
``runs`` row; its params and its tags, each as its key ids and a JSON array of its values
that SQLite writes and msgspec reads in one call; its metrics and attributes as a column
per key when a kind has few keys that most runs have (SQLite's text of a float is not
always exact, so they come as values, never as text), else as rows in a second statement
of the same read transaction. The key names are kept per connection and read again only
when a statement sees a key added since. A part is decoded at its first use. The summary
of a run is read only when the run's directory tree is still the one the query answered
with, so it is the same run ``Run.load`` gives; the keys come in sorted order, as the
record's JSON has them.
"""

from __future__ import annotations

import functools
import keyword
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .encoding import STATUS_NAMES, TIME_BASE

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

__all__ = ["RAW_ATTRIBUTES", "RAW_METRICS", "RAW_PARAMS", "RunSummary", "moment", "parse_time", "read_summaries"]

#: ``runs.raw`` bits: this part of the run is read from its record, not from the rows
RAW_PARAMS = 1
RAW_ATTRIBUTES = 2
RAW_METRICS = 4
#: the form of every time a record holds (``utc_timestamp``)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
#: what the index's integer times count from (``encoding.time_value``)
_EPOCH = TIME_BASE.replace(tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
#: a kind of keys is read as one column per key (a lookup per run and key, no row per
#: value) when it has at most this many keys and a run has on average half of them or
#: more; else its rows are read
_PIVOT_KEYS = 16
#: what a key's column holds when its row's value is NULL (a NaN metric, a null
#: attribute); NULL there means the run has no such row
_NULL = b""
_NAN = float("nan")
_WANTED = "WITH wanted(rid) AS (SELECT value FROM json_each(?))"
#: a run's ``runs`` columns (``RunSummary``), then its params and its tags, each as its key
#: ids, a space and its values as a JSON array in the same order (two aggregates over the
#: same rows; a plain param's text is its JSON, ``rows.param_row``)
_RUN = ("r.rid, r.tree, r.raw, r.name, r.experiment, r.status, r.created, r.ended, COALESCE(r.updated, r.ended), "
        "r.deleted")
_PARAMS = ("(SELECT group_concat(key) || ' [' || group_concat(CASE WHEN num IS NULL THEN json_quote(value) "
           "ELSE value END) || ']' FROM params WHERE run = r.rid)")
_TAGS = "(SELECT group_concat(key) || ' ' || json_group_array(value) FROM tags WHERE run = r.rid)"
#: the kinds whose values come as values: a column per key, or rows
_VALUE_KINDS = ("metrics", "attributes")
#: a part not decoded yet
_UNREAD: Any = object()


class RunSummary:
    """What the index holds of one run: ``name``, ``experiment``, ``status``, ``created``,
    ``ended``, ``updated`` (times as the index stores them), ``deleted``, and its parts
    ``params``, ``tags``, ``metrics`` and ``attributes``, each decoded at its first use
    (``None``: read it from the record). ``own_params()`` and the like give a part as a new
    dict (what ``Run.get_hyperparameters`` and the like return)."""

    __slots__ = ("_attributes", "_created_at", "_experiment", "_keys", "_metrics", "_params", "_raw", "_row", "_tags",
                 "created", "deleted", "ended", "name", "status", "updated")

    def __init__(self, row: tuple, keys: _Keys) -> None:
        """From a row of ``_Keys.sql``."""
        (_, _, raw, self.name, self._experiment, status, self.created, self.ended, self.updated, deleted) = row[:10]
        self.status = STATUS_NAMES[status] if status.__class__ is int else status  # ``encoding.status_value``
        self.deleted = bool(deleted)
        self._raw = raw = raw or 0
        self._row = row
        self._keys = keys
        self._params: dict[str, Any] | None = None if raw & RAW_PARAMS else _UNREAD
        self._tags: dict[str, str] = _UNREAD
        self._metrics: dict[str, float] | None = None if raw & RAW_METRICS else _UNREAD
        self._attributes: dict[str, Any] | None = None if raw & RAW_ATTRIBUTES else _UNREAD
        self._created_at: datetime | None = None

    @property
    def experiment(self) -> str:
        """The experiment's name (the index keeps its key id)."""
        experiment = self._experiment
        return self._keys.names.get(experiment, "") if experiment.__class__ is int else experiment

    # each part: the dict kept for lookups, and a new dict for the caller (decoded anew
    # while none is kept: no dearer than a copy)
    @property
    def params(self) -> dict[str, Any] | None:
        if self._params is _UNREAD:
            self._params = self._text(10)
        return self._params

    def own_params(self) -> dict[str, Any] | None:
        params = self._params
        if params is _UNREAD:
            return self._text(10)
        return None if params is None else params.copy()

    @property
    def tags(self) -> dict[str, str]:
        if self._tags is _UNREAD:
            self._tags = self._text(11)  # type: ignore[assignment]
        return self._tags

    def own_tags(self) -> dict[str, str]:
        tags = self._tags
        return self._text(11) if tags is _UNREAD else tags.copy()  # type: ignore[return-value]

    @property
    def metrics(self) -> dict[str, float] | None:
        if self._metrics is _UNREAD:
            self._metrics = self._values("metrics")
        return self._metrics

    def own_metrics(self) -> dict[str, float] | None:
        metrics = self._metrics
        if metrics is _UNREAD:
            return self._values("metrics")
        return None if metrics is None else metrics.copy()

    @property
    def attributes(self) -> dict[str, Any] | None:
        if self._attributes is _UNREAD:
            self._attributes = self._values("attributes")
        return self._attributes

    def own_attributes(self) -> dict[str, Any] | None:
        attributes = self._attributes
        if attributes is _UNREAD:
            return self._values("attributes")
        return None if attributes is None else attributes.copy()

    def _text(self, column: int) -> dict[str, Any]:
        """Params (``column`` 10) or tags (11): key ids, a space, a JSON array of the values."""
        text = self._row[column]
        if text is None:
            return {}
        kids, _, values = text.partition(" ")
        keys = self._keys
        decode, slow = keys.plans.get(kids) or keys.plan(kids)
        return keys.as_dict(decode(values)) if slow is None else slow(values)

    def _values(self, kind: str) -> dict[str, Any]:
        """Metrics or attributes read as a column per key (a kind read as rows is filled by
        ``read_summaries``): a value, NULL for none, ``_NULL`` for NaN or null."""
        start, names = self._keys.columns[kind]
        cells = self._row[start:start + len(names)]
        try:  # every key, each a number: the usual run (``sum`` fails on a None or an ``_NULL``)
            sum(cells)
        except TypeError:
            pass
        else:
            return dict(zip(names, cells, strict=False))
        null = _NAN if kind == "metrics" else None
        return {name: null if value.__class__ is bytes else value
                for name, value in zip(names, cells, strict=False) if value is not None}

    def created_at(self) -> datetime | None:
        """``created`` as ``Run.get_date_created`` gives it."""
        created = self._created_at
        if created is None:
            value = self.created
            created = self._created_at = _EPOCH + _MICROSECOND * value if value.__class__ is int else \
                parse_time(value)
        return created


def moment(value: int | str | None) -> datetime | None:
    """A time as the index stores it (``encoding.time_value``), as ``Run.get_date_created``
    gives it (``None`` for none)."""
    if value.__class__ is int:
        return _EPOCH + _MICROSECOND * value  # type: ignore[operator]  # exact: integer microseconds
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
    are only ever added, each with an id above all before it: ``rows.RunRows``), so the
    names are read again only when a statement sees a key id above those known."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.names: dict[int, str] = {}
        kinds: dict[str, list[tuple[int, str, int]]] = {}
        for kid, kind, name, uses in db.execute("SELECT kid, kind, name, uses FROM keys ORDER BY kid"):
            self.names[kid] = name
            kinds.setdefault(kind, []).append((kid, name, uses))
        self.top = max(self.names, default=0)
        most = max((uses for keys in kinds.values() for _, _, uses in keys), default=0)
        #: a key id list (``_PARAMS``) -> what decodes the JSON array of its values: a
        #: decoder whose result ``structs.asdict`` makes the dict, or (``None``, a function
        #: that makes it)
        self.plans: dict[str, tuple[Any, Callable[[str], dict[str, Any]] | None]] = {}
        #: ``msgspec.structs.asdict``, set by ``plan`` (msgspec is imported at the first use)
        self.as_dict: Callable[[Any], dict[str, Any]] = dict
        #: a kind read as a column per key -> its first column and its key names, in name order
        self.columns: dict[str, tuple[int, list[str]]] = {}
        #: a kind read as rows -> the names that come before one of a lower key id (rows come
        #: in key id order: a run that has one of them is sorted)
        self.late: dict[str, set[str]] = {}
        parts = [_RUN, _PARAMS, _TAGS]
        column = 12  # the next column's index in a row of ``sql``
        rows: list[str] = []
        joins: list[str] = []
        for kind in _VALUE_KINDS:
            keys = sorted(kinds.get(kind, []), key=lambda key: key[1])
            if len(keys) <= _PIVOT_KEYS and 2 * sum(uses for _, _, uses in keys) >= len(keys) * most:
                self.columns[kind] = (column, [name for _, name, _ in keys])
                for kid, _, _ in keys:  # a join each: a lookup without a subquery's frame
                    alias = f"{kind[0]}{kid}"
                    parts.append(f"CASE WHEN {alias}.value IS NOT NULL OR {alias}.run IS NULL THEN {alias}.value ELSE x'' END")
                    joins.append(f"LEFT JOIN {kind} {alias} ON {alias}.run = r.rid AND {alias}.key = {kid}")
                column += len(keys)
            else:
                self.late[kind] = _late([name for _, name, _ in sorted(keys)])
                rows.append(f"SELECT {_VALUE_KINDS.index(kind)}, run, key, value FROM {kind} WHERE run IN wanted")
        parts.append("(SELECT max(kid) FROM keys)")  # keys added since the names were read?
        # the wanted rids walked in their order, each run looked up (no ``IN`` list to build)
        self.sql = (f"SELECT {', '.join(parts)} FROM json_each(?) w CROSS JOIN runs r "  # noqa: S608 (ids only)
                    f"ON r.rid = w.value {' '.join(joins)}")
        self.rows_sql = f"{_WANTED} {' UNION ALL '.join(rows)}" if rows else None

    def plan(self, kids: str) -> tuple[Any, Callable[[str], dict[str, Any]] | None]:
        """What turns the JSON array of a key id list's values into their dict, in name
        order (``plans``)."""
        import msgspec

        self.as_dict = msgspec.structs.asdict
        plan = _plan(tuple(self.names[int(kid)] for kid in kids.split(",")))
        if len(self.plans) >= _PLANS:
            self.plans = {}  # a new dict, not a cleared one: another thread may be reading it
        self.plans[kids] = plan
        return plan

    def fetch(self, db: sqlite3.Connection, array: str) -> tuple[list[tuple], list[tuple]] | None:
        """The rows of ``sql`` and of ``rows_sql`` (in one read transaction) for the rids of
        ``array``, or ``None`` when a statement saw keys added since the names were read."""
        if self.rows_sql is None:  # one statement, one snapshot
            found = db.execute(self.sql, (array,)).fetchall()
            return None if found and (found[0][-1] or 0) > self.top else (found, [])
        db.execute("BEGIN")
        try:
            found = db.execute(self.sql, (array,)).fetchall()
            if found and (found[0][-1] or 0) > self.top:
                return None
            return found, db.execute(self.rows_sql, (array,)).fetchall()
        finally:
            db.execute("COMMIT")


def _plan(names: tuple[str, ...]) -> tuple[Any, Callable[[str], dict[str, Any]] | None]:
    """``plan`` of the key names ``names``: msgspec decodes the array into a struct whose
    fields are the names and makes its dict, when the names can be fields (identifiers):
    ``(decode, None)`` when they are in name order; else a function that makes the dict,
    ``(None, function)`` (the array decoded as a list and zipped with the names)."""
    import msgspec

    ordered = tuple(sorted(names))
    if all(name.isidentifier() and not keyword.iskeyword(name) and name[:1] != "_" for name in names):
        try:
            decode = msgspec.json.Decoder(msgspec.defstruct("Keys", names, array_like=True, gc=False)).decode
            made = msgspec.structs.asdict(decode("[" + ",".join(["0"] * len(names)) + "]"))
        except (TypeError, ValueError, msgspec.MsgspecError):
            made = None
        if made is not None and tuple(made) == names:
            as_dict = msgspec.structs.asdict
            if ordered == names:
                return decode, None
            template = dict.fromkeys(ordered)  # in name order, each value set by update
            return None, lambda values: _updated(template.copy(), as_dict(decode(values)))
    items = _list_decoder()
    if ordered == names:
        return None, lambda values: dict(zip(names, items(values), strict=False))
    template = dict.fromkeys(ordered)
    return None, lambda values: _updated(template.copy(), zip(names, items(values), strict=False))


def _updated(items: dict[str, Any], values: Any) -> dict[str, Any]:
    """``items`` (keys in name order) with the values of ``values``."""
    items.update(values)
    return items


#: key id lists whose names a connection keeps
_PLANS = 1024
#: the keys of the connections used last, by ``id(connection)`` (an entry holds its
#: connection, so that id is not reused while the entry lives)
_KEYS: dict[int, _Keys] = {}


def _keys(db: sqlite3.Connection, fresh: bool = False) -> _Keys:
    global _KEYS
    keys = _KEYS.get(id(db))
    if keys is None or keys.db is not db or fresh:
        keys = _Keys(db)
        _KEYS = {**(_KEYS if len(_KEYS) < 8 else {}), id(db): keys}  # a new dict: no thread sees one change
    return keys


@functools.cache
def _list_decoder() -> Any:
    """A JSON array's items (``msgspec``: imported at the first use, not with the module)."""
    import msgspec

    return msgspec.json.Decoder(list).decode


def read_summaries(db: sqlite3.Connection, found: list[tuple[str, bytes, int]]) -> dict[str, RunSummary]:
    """``{run id: RunSummary}`` of the ``(run id, directory tree id as bytes, rid)`` a
    query found (``query.select_found``) whose directory is still that tree in the index;
    the rest are left out (read them)."""
    wanted = {rid: (run_id, tree) for run_id, tree, rid in found}
    array = "[" + ",".join(map(str, sorted(wanted))) + "]"
    keys = _keys(db)
    for _ in range(3):
        got = keys.fetch(db, array)
        if got is not None:
            break
        keys = _keys(db, fresh=True)
    else:
        return {}  # keys added faster than they can be read: the runs are read from git
    rows, values = got
    out: dict[str, RunSummary] = {}
    by_rid: dict[int, RunSummary] = {}
    for row in rows:
        run_id, tree = wanted[row[0]]
        if row[1] == tree:
            out[run_id] = by_rid[row[0]] = RunSummary(row, keys)
    if keys.late:
        _fill(keys, by_rid, values)
    return out


def _fill(keys: _Keys, by_rid: dict[int, RunSummary], values: list[tuple]) -> None:
    """The kinds read as rows, from their rows ``(kind's index in _VALUE_KINDS, rid, key id, value)``."""
    metrics, attributes = ("metrics" in keys.late), ("attributes" in keys.late)
    for summary in by_rid.values():
        if metrics and summary._metrics is _UNREAD:
            summary._metrics = {}
        if attributes and summary._attributes is _UNREAD:
            summary._attributes = {}
    names = keys.names
    for kind, rid, kid, value in values:
        summary = by_rid.get(rid)
        if summary is None:
            continue
        if kind == 0:
            if summary._metrics is not None:
                summary._metrics[names[kid]] = _NAN if value is None else value
        elif summary._attributes is not None:
            summary._attributes[names[kid]] = value
    # keys sorted, as the record's JSON has them: rows come in key id order, the order keys
    # were first seen, so only a run with a key named before one seen earlier is sorted
    for kind, late in keys.late.items():
        if late:
            slot = f"_{kind}"
            for summary in by_rid.values():
                items = getattr(summary, slot)
                if items and not late.isdisjoint(items):
                    setattr(summary, slot, dict(sorted(items.items())))
