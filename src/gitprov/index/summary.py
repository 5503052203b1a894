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
``runs`` columns; its params and its tags, each as its key ids (one bit each while every
key id is below 63, else their list) and a JSON array of its values
that SQLite writes and msgspec reads in one call; its metrics and attributes as a column
per key when a kind has few keys that most runs have (SQLite's text of a float is not
always exact, so they come as values, never as text), else as rows in a second statement
of the same read transaction. The key names are kept per connection and read again only
when a statement sees a key added since. The rows stay tuples (``Summaries``): a part of
a run is decoded when it is asked for, and no object is made for each run. The summary
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
    from collections.abc import Callable, Iterable

__all__ = ["CREATED", "EXPERIMENT", "NAME", "RAW_ATTRIBUTES", "RAW_METRICS", "RAW_PARAMS", "STATUS", "UPDATED",
           "Summaries", "moment", "parse_time", "read_summaries"]

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
#: a run's ``runs`` columns (``NAME`` and the like), then its params and its tags, each as its key
#: ids, a space and its values as a JSON array in the same order (two aggregates over the
#: same rows; a plain param's text is its JSON, ``rows.param_row``)
_RUN = "r.rid, r.tree, r.raw, r.name, r.experiment, r.status, r.created, COALESCE(r.updated, r.ended)"
_PARAMS = ("(SELECT {keys} || ' [' || group_concat(CASE WHEN num IS NULL THEN json_quote(value) "
           "ELSE value END) || ']' FROM params WHERE run = r.rid)")
_TAGS = "(SELECT {keys} || ' ' || json_group_array(value) FROM tags WHERE run = r.rid)"
#: a run's key ids of a kind: one bit each when every key id is below ``_MASK_BITS`` (one
#: number to write instead of a list; the values come in key id order, the table's own),
#: else their list
_MASK_BITS = 63
_KEY_MASK, _KEY_LIST = "sum(1 << key)", "group_concat(key)"
#: the kinds whose values come as values: a column per key, or rows
_VALUE_KINDS = ("metrics", "attributes")


class Summaries:
    """The summaries of one answer: ``rows``, ``{run id: its row}`` (``_Keys.sql``: ``NAME``,
    ``EXPERIMENT``, ``STATUS``, ``CREATED``, ``UPDATED`` hold the run's columns, times as
    the index stores them), and what decodes a row's parts, each into a new dict at each
    call (``None``: read that part from the record). A row is a plain tuple: the answer's
    runs keep their rows, no object is made for a run, and a part is decoded only when
    it is asked for."""

    __slots__ = ("_keys", "_values", "rows")

    def __init__(self, rows: dict[str, tuple], keys: _Keys, values: dict[int, list] | None = None) -> None:
        self.rows = rows
        self._keys = keys
        #: the kinds read as rows (``_fill``): rid -> [metrics, attributes]
        self._values = values

    def params(self, row: tuple) -> dict[str, Any] | None:
        raw = row[2]
        return None if raw and raw & RAW_PARAMS else self._decoded(row[_PARAMS_COLUMN])

    def tags(self, row: tuple) -> dict[str, str]:
        return self._decoded(row[_PARAMS_COLUMN + 1])

    def experiment(self, row: tuple) -> str:
        """The experiment's name (the index keeps its key id)."""
        experiment = row[EXPERIMENT]
        return self._keys.names.get(experiment, "") if experiment.__class__ is int else experiment

    @staticmethod
    def status(row: tuple) -> str:
        """The status's name (the index keeps a known one as a small integer,
        ``encoding.status_value``)."""
        status = row[STATUS]
        return STATUS_NAMES[status] if status.__class__ is int else status

    def _decoded(self, text: str | None) -> dict[str, Any]:
        """Params or tags: their key ids, a space, a JSON array of their values."""
        if text is None:
            return {}
        kids, _, values = text.partition(" ")
        keys = self._keys
        decode, slow = keys.plans.get(kids) or keys.plan(kids)
        return keys.as_dict(decode(values)) if slow is None else slow(values)

    def metrics(self, row: tuple) -> dict[str, float] | None:
        raw = row[2]
        if raw and raw & RAW_METRICS:
            return None
        return self._part(row, "metrics", 0)

    def attributes(self, row: tuple) -> dict[str, Any] | None:
        raw = row[2]
        if raw and raw & RAW_ATTRIBUTES:
            return None
        return self._part(row, "attributes", 1)

    def _part(self, row: tuple, kind: str, slot: int) -> dict[str, Any]:
        """Metrics or attributes: from a column per key (a value, NULL for none, ``_NULL``
        for NaN or null), or from the rows ``read_summaries`` read."""
        columns = self._keys.columns.get(kind)
        if columns is None:
            return self._values[row[0]][slot].copy()  # type: ignore[index]
        start, stop, names, make = columns
        try:  # every key, each a number: the usual run (``sum`` fails on a None or an ``_NULL``)
            sum(row[start:stop])
        except TypeError:
            pass
        else:
            return make(row)
        null = _NAN if kind == "metrics" else None
        return {name: null if value.__class__ is bytes else value
                for name, value in zip(names, row[start:stop], strict=True) if value is not None}


#: a summary row's columns (``_RUN``; no more than the accessors read: each column
#: crossing into Python costs about a microsecond at 1,000 results)
NAME, EXPERIMENT, STATUS, CREATED, UPDATED = 3, 4, 5, 6, 7
_PARAMS_COLUMN = 8


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
        most = max((uses for kind, keys in kinds.items() if kind != "experiment" for _, _, uses in keys), default=0)
        #: a key id mask or list (``_PARAMS``) -> what decodes the JSON array of its values: a
        #: decoder whose result ``structs.asdict`` makes the dict, or (``None``, a function
        #: that makes it)
        self.plans: dict[str, tuple[Any, Callable[[str], dict[str, Any]] | None]] = {}
        #: ``msgspec.structs.asdict``, set by ``plan`` (msgspec is imported at the first use)
        self.as_dict: Callable[[Any], dict[str, Any]] = dict
        #: a kind read as a column per key -> its first column, the column after its last, its
        #: key names in name order, and what makes the dict of a row whose cells are all values
        self.columns: dict[str, tuple[int, int, list[str], Callable[[tuple], dict[str, Any]]]] = {}
        #: a kind read as rows -> the names that come before one of a lower key id (rows come
        #: in key id order: a run that has one of them is sorted)
        self.late: dict[str, set[str]] = {}
        #: the key ids of a run's params and tags come as a bit mask (``_KEY_MASK``)
        self.mask = self.top < _MASK_BITS
        key_ids = _KEY_MASK if self.mask else _KEY_LIST
        parts = [_RUN, _PARAMS.format(keys=key_ids), _TAGS.format(keys=key_ids)]
        column = _PARAMS_COLUMN + 2  # the next column's index in a row of ``sql``
        rows: list[str] = []
        joins: list[str] = []
        for kind in _VALUE_KINDS:
            keys = sorted(kinds.get(kind, []), key=lambda key: key[1])
            if len(keys) <= _PIVOT_KEYS and 2 * sum(uses for _, _, uses in keys) >= len(keys) * most:
                names = [name for _, name, _ in keys]
                self.columns[kind] = (column, column + len(keys), names, _maker(column, names))
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
        if self.mask:
            bits = int(kids)
            ids = [kid for kid in range(bits.bit_length()) if bits >> kid & 1]
        else:
            ids = [int(kid) for kid in kids.split(",")]
        plan = _plan(tuple(self.names[kid] for kid in ids))
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


def _maker(start: int, names: list[str]) -> Callable[[tuple], dict[str, Any]]:
    """What makes ``{name: row[start + i]}`` of the key names ``names``: a dict display
    (four metrics: about a fifth of ``dict(zip(...))``'s time). The names enter as values,
    never as source text."""
    body = ", ".join(f"_{i}: row[{start + i}]" for i in range(len(names)))
    return eval(f"lambda row: {{{body}}}", {f"_{i}": name for i, name in enumerate(names)})  # noqa: S307


def read_summaries(db: sqlite3.Connection, found: list[tuple[str, bytes, int]]) -> Summaries:
    """The summaries of the ``(run id, directory tree id as bytes, rid)`` a query found
    (``query.select_found``) whose directory is still that tree in the index; the rest
    are left out of ``rows`` (read them)."""
    wanted = {rid: (run_id, tree) for run_id, tree, rid in found}
    array = "[" + ",".join(map(str, sorted(wanted))) + "]"
    keys = _keys(db)
    for _ in range(3):
        got = keys.fetch(db, array)
        if got is not None:
            break
        keys = _keys(db, fresh=True)
    else:
        return Summaries({}, keys)  # keys added faster than they can be read: the runs are read from git
    rows, values = got
    out: dict[str, tuple] = {}
    for row in rows:
        run_id, tree = wanted[row[0]]
        if row[1] == tree:
            out[run_id] = row
    return Summaries(out, keys, _fill(keys, out.values(), values) if keys.late else None)


def _fill(keys: _Keys, rows: Iterable[tuple], values: list[tuple]) -> dict[int, list]:
    """The kinds read as rows, from their rows ``(kind's index in _VALUE_KINDS, rid, key
    id, value)``: rid -> [metrics, attributes]."""
    by_rid: dict[int, list] = {row[0]: [{}, {}] for row in rows}
    names = keys.names
    for kind, rid, kid, value in values:
        parts = by_rid.get(rid)
        if parts is not None:
            parts[kind][names[kid]] = _NAN if kind == 0 and value is None else value
    # keys sorted, as the record's JSON has them: rows come in key id order, the order keys
    # were first seen, so only a run with a key named before one seen earlier is sorted
    for kind, late in keys.late.items():
        if late:
            slot = _VALUE_KINDS.index(kind)
            for parts in by_rid.values():
                items = parts[slot]
                if items and not late.isdisjoint(items):
                    parts[slot] = dict(sorted(items.items()))
    return by_rid
