"""How the run index stores values, and the layout its readers share: run and object
ids as bytes (``id_bytes``, ``hexish``), lineage node kinds as small integers
(``node_row``), times as integer microseconds (``time_value``), each with what gives it
back as the record holds it; the tables keyed by run and by key; SQL fragments for a
run's commit and a key's id. ``store.py`` keeps the file, its schema and its refresh."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

__all__ = ["COMMIT_SQL", "DIRECTIONS", "KEYED_TABLES", "NODE_KINDS", "RUN_TABLES", "epoch_ms", "hex_sql", "hexish",
           "id_bytes", "key_sql", "node_kind", "node_row", "time_text", "time_value", "unhex"]

_EPOCH = datetime(1970, 1, 1)
_HEX = frozenset("0123456789abcdef")
#: tables with one row or more per run, keyed by its ``rid`` in column ``run``
RUN_TABLES = ("params", "metrics", "tags", "attributes", "lineage", "stages")
#: tables whose ``key`` is a ``keys.kid`` (``keys.kind`` is the table's name)
KEYED_TABLES = ("params", "metrics", "tags", "attributes")
#: ``lineage.direction``: what a run consumed (``in``) or produced (``out``)
DIRECTIONS = {"in": 0, "out": 1}
#: ``nodes.kind`` of the kinds lineage holds (any other kind is kept as its text); a run
#: node's ``name``, a run id, is stored as bytes (``hexish``): ``node_row``, ``node_kind``
NODE_KINDS = {"run": 0, "model": 1, "dataset": 2}
_KIND_NAMES = {code: kind for kind, code in NODE_KINDS.items()}

def id_bytes(text: str) -> bytes:
    """A (lowercase hex) object or run id as the index stores it."""
    return bytes.fromhex(text)


def hexish(text: str | None) -> bytes | str | None:
    """A value that is usually an id (a commit, a parent run): bytes when it is lowercase
    hex of even length, else as given."""
    if text and len(text) % 2 == 0 and _HEX.issuperset(text):
        return bytes.fromhex(text)
    return text


def unhex(value: Any) -> Any:
    """What ``hexish`` stored, as it was given."""
    return value.hex() if isinstance(value, bytes) else value


def hex_sql(column: str) -> str:
    """SQL giving ``column`` (stored by ``hexish`` or ``id_bytes``) as text again."""
    return f"(CASE typeof({column}) WHEN 'blob' THEN lower(hex({column})) ELSE {column} END)"


def node_row(kind: str, name: str) -> tuple[int | str, bytes | str]:
    """``(kind, name)`` of a lineage node as ``nodes`` stores them."""
    code = NODE_KINDS.get(kind, kind)
    return code, (hexish(name) or name) if code == 0 else name  # type: ignore[return-value]


def node_kind(kind: int | str) -> str:
    """The kind ``node_row`` stored, as lineage names it."""
    return _KIND_NAMES.get(kind, kind) if kind.__class__ is int else kind  # type: ignore[return-value]


#: SQL for the commit of run ``r`` as ``hexish`` stored it (``runs.commit_id`` is a
#: ``commits.cid``: a commit is stored once, not in every run made against it)
COMMIT_SQL = "(SELECT oid FROM commits WHERE cid = r.commit_id)"


def key_sql(kind: str) -> str:
    """SQL for the key id of a ``kind`` key named by the next parameter (NULL: no run has it)."""
    return f"(SELECT kid FROM keys WHERE kind = '{kind}' AND name = ?)"


def epoch_ms(timestamp: Any) -> int | None:
    """Milliseconds since the epoch of a run's RFC 3339 UTC time (``created``, ``ended``),
    as MLflow's ``start_time`` / ``end_time`` of the synced run hold it; also of the
    index's integer form of such a time (``time_value``)."""
    from datetime import datetime, timedelta, timezone

    if isinstance(timestamp, int):
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=timestamp)
        return int(moment.timestamp() * 1000)
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        moment = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


#: ``time_value``: a day (``YYYY-MM-DD``) -> its microseconds since the epoch
_DAYS: dict[str, int] = {}
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)


def time_value(text: str | None) -> int | str | None:
    """A run's time as the index stores it: microseconds since the epoch when it has the
    form every record's time has (``2026-11-22T04:56:35.123456Z``: they sort as the text
    does, in 8 bytes instead of 27), else the text itself; ``time_text`` gives it back."""
    if text.__class__ is str and len(text) == 27 and _TIME.fullmatch(text):  # type: ignore[arg-type]
        day = _DAYS.get(text[:10])  # type: ignore[index]
        if day is None:  # what datetime.fromisoformat takes, in days since the epoch, once a day
            try:
                day = (datetime.fromisoformat(text[:10]) - _EPOCH).days * 86_400_000_000  # type: ignore[index]
            except ValueError:
                return text
            if len(_DAYS) >= 4096:
                _DAYS.clear()
            _DAYS[text[:10]] = day  # type: ignore[index]
        hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])  # type: ignore[index]
        if hour > 23 or minute > 59 or second > 59:  # what fromisoformat refuses
            return text
        return day + ((hour * 60 + minute) * 60 + second) * 1_000_000 + int(text[20:26])  # type: ignore[index]
    return text


def time_text(value: Any) -> Any:
    """What ``time_value`` stored, as the record's text."""
    if value.__class__ is int:
        from datetime import timedelta

        return (_EPOCH + timedelta(microseconds=value)).isoformat(timespec="microseconds") + "Z"
    return value
