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
#: runs per statement
_CHUNK = 1000
#: the runs of a JSON array of rids, as a table
_WANTED = "wanted(rid) AS (SELECT value FROM json_each(?))"
#: each run's rows of a keyed table as one JSON object, keys in key id order (a plain
#: param's text is its JSON: ``rows.param_row``): SQLite builds it, msgspec reads it, a
#: value a run instead of a row a key. The rows come in primary-key order ``(run, key)``
#: and the ``GROUP BY`` takes them as they come (no sorter in the plan), so each object's
#: keys are in key id order, which ``read_summaries`` sorts where it is not the name order
_OBJECTS = """WITH """ + _WANTED + """,
named(kid, prefix) AS MATERIALIZED (SELECT kid, json_quote(name) || ':' FROM keys)
SELECT x.run, '{{' || group_concat(n.prefix || {value}) || '}}' FROM {table} x
JOIN named n ON n.kid = x.key WHERE x.run IN wanted GROUP BY x.run"""
_PARAMS = _OBJECTS.format(table="params", value="CASE WHEN x.num IS NULL THEN json_quote(x.value) ELSE x.value END")
_TAGS = _OBJECTS.format(table="tags", value="json_quote(x.value)")
#: their metric and attribute rows, in key id order (a float's text in SQLite is not always exact)
_ROWS = """WITH """ + _WANTED + """
SELECT 0, run, key, value FROM metrics WHERE run IN wanted
UNION ALL SELECT 1, run, key, value FROM attributes WHERE run IN wanted"""


class RunSummary:
    """What the index holds of one run; ``params``, ``metrics`` and ``attributes`` are
    ``None`` when they must be read from the record (``raw``)."""

    __slots__ = ("_created_at", "attributes", "created", "deleted", "ended", "experiment", "metrics", "name", "params",
                 "status", "tags", "updated")

    def __init__(self, row: tuple, raw: int) -> None:
        (self.name, self.experiment, self.status, self.created, self.ended, self.updated, deleted) = row
        self.deleted = bool(deleted)
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
        return _EPOCH + timedelta(microseconds=value)  # type: ignore[arg-type]
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


def read_summaries(db: sqlite3.Connection, found: list[tuple[str, str, int]]) -> dict[str, RunSummary]:
    """``{run id: RunSummary}`` of the ``(run id, directory tree id, rid)`` a query found
    whose directory is still that tree in the index; the rest are left out (read them)."""
    import msgspec

    from .store import id_bytes

    wanted = {rid: (run_id, id_bytes(tree)) for run_id, tree, rid in found}
    out: dict[str, RunSummary] = {}
    rids = sorted(wanted)
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    nan = float("nan")
    db.execute("BEGIN")  # one snapshot: rows another process changes meanwhile are not mixed in
    try:
        names: dict[int, str] = {}
        kinds: dict[str, list[str]] = {}
        for kid, kind, name in db.execute("SELECT kid, kind, name FROM keys ORDER BY kid"):
            names[kid] = name
            kinds.setdefault(kind, []).append(name)
        by_rid: dict[int, RunSummary] = {}
        for start in range(0, len(rids), _CHUNK):
            chunk = rids[start:start + _CHUNK]
            array = "[" + ",".join(map(str, chunk)) + "]"
            for rid, tree, raw, *row in db.execute(
                    "SELECT rid, tree, raw, name, experiment, status, created, ended, COALESCE(updated, ended), deleted "
                    "FROM runs "
                    f"WHERE rid IN ({','.join('?' * len(chunk))})", chunk):  # noqa: S608 (marks only)
                run_id, expected = wanted[rid]
                if tree == expected:
                    by_rid[rid] = out[run_id] = RunSummary(tuple(row), raw or 0)
            for rid, text in db.execute(_PARAMS, (array,)):
                summary = by_rid.get(rid)
                if summary is not None and summary.params is not None:
                    summary.params = decode(text)
            for rid, text in db.execute(_TAGS, (array,)):
                summary = by_rid.get(rid)
                if summary is not None:
                    summary.tags = decode(text)
            for part, rid, kid, value in db.execute(_ROWS, (array,)):
                summary = by_rid.get(rid)
                if summary is None:
                    continue
                if part == 0:
                    if summary.metrics is not None:
                        summary.metrics[names[kid]] = nan if value is None else value
                elif summary.attributes is not None:
                    summary.attributes[names[kid]] = value
    finally:
        db.execute("COMMIT")
    # keys sorted, as the record's JSON has them: the rows come in key id order, the order
    # keys were first seen, so only a run with a key named before one seen earlier is sorted
    for part in ("params", "metrics", "tags", "attributes"):
        late = _late(kinds.get(part, []))
        if late:
            for summary in by_rid.values():
                items = getattr(summary, part)
                if items and not late.isdisjoint(items):
                    setattr(summary, part, dict(sorted(items.items())))
    return out
