"""How the run index stores values, and the layout its readers share: run and object
ids as bytes (``id_bytes``, ``hexish``), lineage node kinds as small integers
(``node_row``), a node's lookup hash (``node_hash``), a lineage row's direction folded
into its node (``link``), times as integer microseconds (``time_value``), a run's status
as a small integer (``status_value``) and its experiment as a key id, each with what
gives it back as the record holds it; the tables keyed by run and by key; SQL fragments
for a run's commit, status, experiment and a key's id. ``store.py`` keeps the file, its
schema and its refresh."""

from __future__ import annotations

import re
import zlib
from datetime import datetime
from typing import Any

__all__ = ["COMMIT_SQL", "DIRECTIONS", "EXPERIMENT_SQL", "KEYED_TABLES", "KEY_KINDS", "NODE_KINDS", "NODE_NAMES_SQL", "RUN_TABLES",
           "LINKS_SQL", "STATUS_SQL", "TIME_BASE", "epoch_ms", "hex_sql", "hexish", "id_bytes", "key_sql", "link",
           "links_json", "node_hash", "node_kind", "node_row", "pack_links", "status_text", "status_value", "time_text",
           "time_value", "unhex", "unpack_links"]

#: the moment a run's time counts from (``time_value``): SQLite stores an integer within
#: 2**47 of zero in 6 bytes, microseconds from 2025 do for times from mid-2020 to mid-2029
#: (microseconds since 1970 take 8); any other time is stored as well, in 8 bytes
TIME_BASE = datetime(2025, 1, 1)
_EPOCH = TIME_BASE
_HEX = frozenset("0123456789abcdef")
#: tables with one row or more per run, keyed by its ``rid`` in column ``run``
RUN_TABLES = ("params", "metrics", "tags", "attributes", "lineage", "stages")
#: tables whose ``key`` is a ``keys.kid`` (``keys.kind`` is the table's name)
KEYED_TABLES = ("params", "metrics", "tags", "attributes")
#: the kinds of ``keys``: the keyed tables' and the names of experiments (``runs.experiment``
#: is a ``keys.kid``: a name stored once; such keys count no uses and are never removed)
KEY_KINDS = (*KEYED_TABLES, "experiment")
#: SQL for the experiment of run ``r`` (``runs.experiment``: a ``keys.kid``)
EXPERIMENT_SQL = "(SELECT name FROM keys WHERE kid = r.experiment)"
#: ``runs.status`` of the statuses a release writes (``finished`` is 1, which SQLite stores in
#: no bytes); any other status is kept as its text: ``status_value``, ``status_text``
STATUS_CODES = {"running": 0, "finished": 1, "failed": 2, "killed": 3, "crashed": 4}
STATUS_NAMES = tuple(STATUS_CODES)
#: SQL for the status of run ``r`` as its text
STATUS_SQL = ("(CASE r.status " + " ".join(f"WHEN {code} THEN '{name}'" for name, code in STATUS_CODES.items())
              + " ELSE r.status END)")
#: ``lineage.direction``: what a run consumed (``in``) or produced (``out``)
DIRECTIONS = {"in": 0, "out": 1}
#: ``nodes.kind`` of the kinds lineage holds (any other kind is kept as its text); a run
#: node's ``name``, a run id, is stored as bytes (``hexish``): ``node_row``, ``node_kind``
NODE_KINDS = {"run": 0, "model": 1, "dataset": 2}
_KIND_NAMES = {code: kind for kind, code in NODE_KINDS.items()}

def status_value(status: str) -> int | str:
    """A run's status as ``runs.status`` stores it."""
    return STATUS_CODES.get(status, status)


def status_text(value: int | str) -> str:
    """What ``status_value`` stored, as the state holds it."""
    return STATUS_NAMES[value] if value.__class__ is int else value  # type: ignore[index,return-value]


def link(direction: int, node: int) -> int:
    """A lineage link: a run's lineage row's node id and direction in one integer (the node
    id doubled, plus 1 for ``out``), as ``lineage.links`` and ``lineage_node.link`` hold it."""
    return node * 2 + direction


def pack_links(links: list[int]) -> bytes:
    """``lineage.links``: a run's lineage links (``link``), ascending, as varints (7 bits a
    byte, low first): one row a run instead of a row a link (``lineage_node`` holds a row a
    link, keyed by link, for the other direction); ``unpack_links`` gives them back."""
    out = bytearray()
    for value in links:
        while value > 0x7F:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def unpack_links(data: bytes) -> list[int]:
    """The links ``pack_links`` stored."""
    links: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            links.append(value)
            value = shift = 0
    return links


def links_json(data: bytes) -> str:
    """The SQL function ``links``: a run's links as a JSON array, for ``json_each``."""
    return "[" + ",".join(map(str, unpack_links(data))) + "]"


#: SQL for the lineage rows of run ``l`` (a ``lineage`` row): ``j.value`` is each ``link``
LINKS_SQL = "json_each(links(l.links)) j"


def node_hash(kind: int | str, name: bytes | str) -> int:
    """``nodes.hash``: 24 bits of the CRC-32 of a node's kind and name (as ``node_row``
    stores them), what ``nodes_hash`` indexes: a node is looked up by its kind and name
    (and item) through it, in 3 bytes an entry where the whole key took ~30."""

    data = name if name.__class__ is bytes else b"s" + name.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
    return zlib.crc32(data, kind if kind.__class__ is int else zlib.crc32(str(kind).encode("utf-8", "surrogatepass"))) \
        & 0xFFFFFF


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


#: the model and dataset names among ``{nodes}``, as ``node_names`` keeps them: a name's
#: prefix is a range of that small table (``edges.with_prefix``), each name's nodes then
#: found by ``nodes_hash``; run nodes are found by their run (``runs_id``) and left out
NODE_NAMES_SQL = "SELECT DISTINCT kind, name FROM {nodes} WHERE kind != 0"

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
        moment = TIME_BASE.replace(tzinfo=timezone.utc) + timedelta(microseconds=timestamp)
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
    """A run's time as the index stores it: microseconds since ``TIME_BASE`` when it has
    the form every record's time has (``2026-11-22T04:56:35.123456Z``: they sort as the
    text does, in 6 bytes instead of 27), else the text itself; ``time_text`` gives it back."""
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
