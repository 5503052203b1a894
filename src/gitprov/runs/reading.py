"""Reading stored runs from the ledger: record, state, series, artifacts."""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import codec
from ..errors import DataError, UsageError
from ..keys import key_to_name
from ..model import RunRecord, RunState
from ..store.ledger import Ledger
from .series import decode_metric_chunk, decode_observation_chunk

__all__ = ["MetricPoint", "Observation", "metric_chunk_ids", "metric_chunks", "metric_summary_ids", "read_record",
           "read_state", "resolve_run_id"]


class MetricPoint(NamedTuple):
    step: int
    timestamp: int  # milliseconds since the epoch
    value: float


class Observation(NamedTuple):
    epoch: int
    timestamp: int
    value: Any


def resolve_run_id(ledger: Ledger, prefix: str) -> str:
    """The full id of the run whose id starts with ``prefix`` (unique prefix)."""
    if not isinstance(prefix, str):
        raise UsageError(f"a run id is a string of hex characters, not {type(prefix).__name__}")
    prefix = prefix.strip().lower()
    if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
        raise UsageError(f"run id {prefix!r} is not a run id or a prefix of at least 4 hex characters")
    matches = ledger.run_ids_with_prefix(prefix)
    if not matches:
        raise UsageError(f"no run with id {prefix!r}; list runs with 'prov runs'")
    if len(matches) > 1:
        raise UsageError(f"run id prefix {prefix!r} is ambiguous ({', '.join(m[:12] for m in matches[:5])}); give more characters")
    return matches[0]


def read_record(ledger: Ledger, run_id: str, tip: str | None = None) -> RunRecord:
    data = ledger.run_file(run_id, "record", tip)
    if data is None:
        raise UsageError(f"no run with id {run_id!r}; list runs with 'prov runs'")
    return codec.decode(data, RunRecord, f"record of run {run_id[:12]}")


def read_state(ledger: Ledger, run_id: str, tip: str | None = None) -> RunState:
    data = ledger.run_file(run_id, "state", tip)
    if data is None:
        raise DataError(f"run {run_id[:12]} has no state in the ledger")
    return codec.decode(data, RunState, f"state of run {run_id[:12]}")


def _chunks(ledger: Ledger, run_id: str, folder: str, key: str, tip: str | None) -> list[bytes]:
    listing = ledger.run_folder(run_id, f"{folder}/{key_to_name(key)}", tip)
    odb = ledger.repo.odb
    return [odb.read_typed(listing[name].oid, "blob") for name in sorted(listing, key=_chunk_order)]


def _chunk_order(name: str) -> tuple[str, int]:
    writer, _, seq = name.rpartition("-")
    return writer, int(seq) if seq.isdigit() else 0


def metric_history_from_blobs(blobs: list[bytes]) -> list[MetricPoint]:
    out: list[MetricPoint] = []
    for blob in blobs:
        steps, stamps, values = decode_metric_chunk(blob)
        out.extend(MetricPoint(s, t, v) for s, t, v in zip(steps, stamps, values, strict=True))
    return out


def metric_chunk_ids(ledger: Ledger, run_id: str, key: str, tip: str | None = None) -> list[str]:
    """The blob ids of the stored chunks of metric ``key``, in logging order."""
    return [oid for _, oid in metric_chunks(ledger, run_id, key, tip)]


def metric_chunks(ledger: Ledger, run_id: str, key: str, tip: str | None = None) -> list[tuple[str, str]]:
    """``(name, blob id)`` of the stored chunks of metric ``key``, in logging order."""
    listing = ledger.run_folder(run_id, f"series/{key_to_name(key)}", tip)
    return [(name, listing[name].oid) for name in sorted(listing, key=_chunk_order)]


def metric_summary_ids(ledger: Ledger, run_id: str, key: str, tip: str | None = None) -> list[str]:
    """The blob ids of the summaries of metric ``key`` (``runs/summary.py``), one per
    writer that spilled a long series of it; none for a short one or an older run."""
    listing = ledger.run_folder(run_id, f"summaries/{key_to_name(key)}", tip)
    return [listing[name].oid for name in sorted(listing) if not listing[name].is_tree]


def metric_history(ledger: Ledger, run_id: str, key: str, tip: str | None = None) -> list[MetricPoint]:
    return metric_history_from_blobs(_chunks(ledger, run_id, "series", key, tip))


def observations(ledger: Ledger, run_id: str, key: str, tip: str | None = None) -> list[Observation]:
    out: list[Observation] = []
    for blob in _chunks(ledger, run_id, "observations", key, tip):
        epochs, stamps, values = decode_observation_chunk(blob)
        out.extend(Observation(e, t, v) for e, t, v in zip(epochs, stamps, values, strict=True))
    return out


def artifact_blob_id(ledger: Ledger, run_id: str, key: str, tip: str | None = None) -> str | None:
    entry = ledger.run_folder(run_id, "artifacts", tip).get(key_to_name(key))
    return entry.oid if entry is not None and not entry.is_tree else None


def all_run_entries(ledger: Ledger, tip: str | None = None) -> list[tuple[str, str]]:
    """``(run id, run directory tree id)`` for every run."""
    return [(run_id, entry.oid) for run_id, entry in ledger.run_entries(tip)]
