"""What a ledger blob must hold, judged from its bytes alone: a record or a state decoded
in one typed parse (``decode_model``), and ``precheck``, the checks a blob gets as it
arrives in a pull, before anything says where it sits (``arriving.py``): a record, a
state, a format-4 run blob, a metric or observation chunk or a series summary that
passes them is not read again by validation (``validate.py``, ``validate_log.py``),
which checks names, paths, modes and sizes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from .. import codec
from ..keys import key_from_name
from ..model import RunRecord, RunState
from ..model.common import FORMAT_VERSION
from ..runs.series import check_metric_chunk, decode_observation_chunk
from ..runs.summary import decode_metric_summary
from ..store.ledger_log.names import split_run_blob
from .remote_values import check_key_once, check_record_values, check_state_values

__all__ = ["CHUNK_KINDS", "decode_model", "precheck"]


class _StrictRecord(RunRecord, kw_only=True):
    """A record whose ``format_version`` must be there (the model defaults it)."""

    format_version: int


class _StrictState(RunState, kw_only=True):
    """A state whose ``format_version`` must be there (the model defaults it)."""

    format_version: int


_TYPED = {RunRecord: msgspec.json.Decoder(_StrictRecord), RunState: msgspec.json.Decoder(_StrictState)}


def decode_model(data: bytes, model: type, where: str, run_id: str = "") -> Any:
    """``codec.decode(data, model, where)`` in one parse, by msgspec's typed decoder
    (which checks the types as it parses, building nothing twice, and requires a
    ``format_version``) when that version is one this version reads and the data has no
    tagged float; anything else takes ``codec.decode``'s own path, for its rules and its
    messages (``where``, with ``{}`` standing for the first 12 digits of ``run_id``)."""
    if b"$float" not in data:
        try:
            value = _TYPED[model].decode(data)
            if 1 <= value.format_version <= FORMAT_VERSION:
                return value
        except msgspec.DecodeError:  # (a ValidationError too) said in codec.decode's words below
            pass
    return codec.decode(data, model, where.format(run_id[:12]))


def precheck(data: bytes, hash_name: str = "sha1") -> tuple[str, str | None] | None:
    """The checks of a blob's content alone, for a blob whose use is not known yet
    (``arriving.py``): ``("record", the commit it names)``, ``("state", None)``, ``("run",
    "<its record's blob id> <the commit the record names>")`` for a format-4 run blob
    (ids of ``hash_name``), or a chunk's kind (``("series", None)``, ``("observations",
    None)``, ``("summaries", None)``) when ``data`` passes every check of that kind, else
    None (the blob is then checked in full when listed)."""
    if data[:1] != b"{":  # not JSON: msgpack, a run blob, a chunk or a summary
        if data[:1] in _RUN_BLOB_MAPS and b"\xa6record" in data and b"\xa5state" in data:
            found = _precheck_run_blob(data, hash_name)
            if found is not None:
                return found
        return _precheck_chunk(data)
    model, check = (RunState, check_state_values) if b'"kind":"run-state"' in data else (RunRecord, check_record_values)
    try:
        value = decode_model(data, model, "")
        check(value)
    except Exception:  # noqa: BLE001 - whatever fails here is checked again, in full, when listed
        return None
    if model is RunState:
        return _STATE
    commit = value.code.commit
    return _RECORDS.setdefault(commit, ("record", commit)) if len(_RECORDS) < 4096 else ("record", commit)


def _precheck_run_blob(data: bytes, hash_name: str) -> tuple[str, str] | None:
    """A run blob's checks (``validate_log``'s): its parts, its record and state decoded
    and under the local calls' limits, the names of the artifacts it keeps; the run it
    belongs to is the blob id of its record, which is said for validation to compare
    with the run the blob's name says. Its state is compared with a clone's own there,
    when the run is not new to it."""
    try:
        record, state, artifacts = split_run_blob(data)
        for name in artifacts:
            check_key_once(key_from_name(name), "artifact key")  # the same few names, in every run
        value = decode_model(record, RunRecord, "")
        check_record_values(value)
        check_state_values(decode_model(state, RunState, ""))
    except Exception:  # noqa: BLE001 - whatever fails here is checked again, in full, when listed
        return None
    digest = hashlib.new(hash_name, b"blob %d\0" % len(record))
    digest.update(record)
    return ("run", f"{digest.hexdigest()} {value.code.commit or ''}")


#: the first byte of a run blob: a msgpack map of its two or three parts
_RUN_BLOB_MAPS = (b"\x82", b"\x83")


def _precheck_chunk(data: bytes) -> tuple[str, None] | None:
    for marker, found, decode in _CHUNKS:
        if marker in data:
            try:
                decode(data)
            except Exception:  # noqa: BLE001 - checked again, in full, when listed
                return None
            return found
    return None


_STATE = ("state", None)
#: what marks each kind of chunk, what it is cleared as, and its check (``content``'s)
_CHUNKS = ((b"metric-chunk", ("series", None), check_metric_chunk),
           (b"observation-chunk", ("observations", None), decode_observation_chunk),
           (b"metric-summary", ("summaries", None), decode_metric_summary))
#: the kinds of blob whose check is their content's alone: one cleared as its own kind is settled
CHUNK_KINDS = frozenset(found[0] for _, found, _ in _CHUNKS)
#: one answer per commit named (100,000 records name a few commits)
_RECORDS: dict[str | None, tuple[str, str | None]] = {}
