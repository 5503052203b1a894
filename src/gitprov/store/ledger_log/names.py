"""The log's names: its markers, the entry of each file of a run, and the run blob
that holds a run's record, state and small artifacts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["CHECKPOINT_MARKER", "ID_PATTERN", "INLINE_LIMIT", "LOG_MARKER", "RESERVED", "SENTINEL", "SENTINEL_RECORD",
           "SENTINEL_STATE", "decode_run_blob", "encode_run_blob", "entry_name", "file_of", "is_run_blob", "link_of",
           "record_commit", "run_blob_name", "run_blob_parts", "run_of"]

LOG_MARKER = b'{"format_version":4,"kind":"ledger","layout":"log","requires":"git-prov>=0.4.0"}'
CHECKPOINT_MARKER = b'{"format_version":4,"kind":"ledger","layout":"checkpoint","requires":"git-prov>=0.4.0"}'
#: a run of format 4 under ``runs/``, where a release of format 3 lists runs: it stops
#: there with its "newer than this git-prov reads" line instead of listing none
SENTINEL_RECORD = b'{"format_version":4,"kind":"run-record","requires":"git-prov>=0.4.0"}'
SENTINEL_STATE = b'{"format_version":4,"kind":"run-state","requires":"git-prov>=0.4.0"}'
SENTINEL = "runs"
RESERVED = ("format", SENTINEL)
_NAME = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})(?:[=!+@#^].*)?$")
ID_PATTERN = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
#: a run blob's entry: ``<id>``, or ``<id>^<commit>`` (one match, where ``file_of`` parses any name)
_RUN_BLOB = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})(?:\^([0-9a-f]{40}|[0-9a-f]{64}))?$")
#: artifacts up to this size that a transaction writes as content are kept in the run
#: blob (an entry and an object less a run); larger ones, or ones already stored, as
#: ``<id>@<key>``
INLINE_LIMIT = 4096
#: a run's files as format 3 names them (``runs/<xx>/<id>/…``) -> the separator of
#: their entry in the log; ``None``: the file is inside the run blob
_FOLDERS = {"series": "=", "observations": "!", "summaries": "+"}
_SEPARATORS = {sep: folder for folder, sep in _FOLDERS.items()}


def run_of(name: str) -> str | None:
    """The run an entry name belongs to (``<id>`` or ``<id>`` and a separator), else None."""
    m = _NAME.match(name)
    return m.group(1) if m else None


def entry_name(run_id: str, path: str) -> str | None:
    """The log's entry for a run's file as format 3 names it in the run's directory
    (``series/<key>/<chunk>`` -> ``<id>=<key>=<chunk>``); None for ``record`` and
    ``state``, which are inside the run blob."""
    if path in ("record", "state"):
        return None
    if path == "code.patch":
        return f"{run_id}#patch"
    folder, _, rest = path.partition("/")
    if folder == "artifacts" and rest and "/" not in rest:
        return f"{run_id}@{rest}"
    key, _, leaf = rest.partition("/")
    if folder in _FOLDERS and key and leaf and "/" not in leaf and "=" not in key:
        return f"{run_id}{_FOLDERS[folder]}{key}={leaf}"
    raise ValueError(f"not a file of a run: {path!r}")


def file_of(name: str) -> tuple[str, str] | None:
    """``(run id, the file as format 3 names it)`` of a log entry (``<id>`` alone is the
    run blob: ``(id, "")``); None for a name that is not a run's."""
    run_id = run_of(name)
    if run_id is None:
        return None
    rest = name[len(run_id):]
    if not rest:
        return run_id, ""
    sep, body = rest[0], rest[1:]
    if sep == "^":
        return (run_id, "") if ID_PATTERN.match(body) else None  # the run blob, named with its commit
    if sep == "#":
        return (run_id, "code.patch") if body == "patch" else None
    if sep == "@":
        return (run_id, f"artifacts/{body}") if body and "/" not in body else None
    key, eq, leaf = body.partition("=")
    if not key or not eq or not leaf or "/" in body:
        return None
    return run_id, f"{_SEPARATORS[sep]}/{key}/{leaf}"


def run_blob_name(run_id: str, commit: str | None) -> str:
    """The entry of a run's blob: its id, and the commit it was made at (the run's link
    to its commit, which never changes)."""
    return f"{run_id}^{commit}" if commit else run_id


def is_run_blob(name: str) -> str | None:
    """The run id when ``name`` is a run blob's entry, else None."""
    m = _RUN_BLOB.match(name)
    return m.group(1) if m else None


def link_of(name: str) -> tuple[str, str] | None:
    """``(run id, commit)`` of a run blob's entry that names its commit, else None."""
    m = _RUN_BLOB.match(name)
    return (m.group(1), m.group(2)) if m and m.group(2) else None


def record_commit(record: bytes) -> str | None:
    """The commit a run's record says it was made at (its ``code.commit``), if any."""
    import msgspec

    try:
        code = msgspec.json.decode(record).get("code")
    except (msgspec.DecodeError, AttributeError):
        return None
    commit = code.get("commit") if isinstance(code, dict) else None
    return commit if isinstance(commit, str) and ID_PATTERN.match(commit) else None


def encode_run_blob(record: bytes, state: bytes, artifacts: dict[str, bytes] | None = None) -> bytes:
    """The run blob: msgpack of the record's and the state's canonical bytes, and the
    artifacts kept in it by their name in the log (none: no such part)."""
    import msgspec

    blob: dict[str, Any] = {"record": record, "state": state}
    if artifacts:
        blob["artifacts"] = dict(sorted(artifacts.items()))
    return msgspec.msgpack.encode(blob)


def decode_run_blob(data: bytes, run_id: str, hash_blob: Callable[[str, bytes], str]) -> tuple[bytes, bytes]:
    """``(record, state)`` of a run blob, its record checked against the run id (the
    blob id of the record's bytes); ``ValueError`` when it is not one."""
    return run_blob_parts(data, run_id, hash_blob)[:2]  # type: ignore[return-value]


def run_blob_parts(data: bytes, run_id: str,
                   hash_blob: Callable[[str, bytes], str]) -> tuple[bytes, bytes, dict[str, bytes]]:
    """``(record, state, artifacts)`` of a run blob, as ``decode_run_blob`` checks it."""
    record, state, artifacts = split_run_blob(data, run_id)
    if hash_blob("blob", record) != run_id:
        raise ValueError(f"run blob of {run_id[:12]} holds the record of another run")
    return record, state, artifacts


def split_run_blob(data: bytes, run_id: str = "") -> tuple[bytes, bytes, dict[str, bytes]]:
    """``(record, state, artifacts)`` of a run blob whose parts have their types, the
    record not yet compared with any run (``run_id`` only names it in a ``ValueError``)."""
    import msgspec

    try:
        obj = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"run blob of {run_id[:12]} is not msgpack: {exc}") from None
    if not isinstance(obj, dict) or not {"record", "state"} <= set(obj) <= {"record", "state", "artifacts"}:
        raise ValueError(f"run blob of {run_id[:12]} is not a record and a state")
    record, state, artifacts = obj["record"], obj["state"], obj.get("artifacts", {})
    if not (isinstance(record, bytes) and isinstance(state, bytes) and isinstance(artifacts, dict)
            and all(isinstance(k, str) and "/" not in k and isinstance(v, bytes) for k, v in artifacts.items())):
        raise ValueError(f"run blob of {run_id[:12]} holds a part of the wrong type")
    return record, state, artifacts
