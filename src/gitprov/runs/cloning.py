"""``Run.clone``'s full copy: everything a run logged, carried into its clone.

Metric points and observations keep their steps, epochs and timestamps (appended to
the clone's buffers as they were, not re-stamped); artifacts are carried by reference:
the clone's tree names the same blob (or the same local-cache entry), so nothing is
stored twice. Dataset versions, the io schema and the lineage are copied as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..keys import key_to_name
from . import reading

if TYPE_CHECKING:
    from .run import Run

__all__ = ["copy_contents"]


def copy_contents(source: Run, clone: Run) -> None:
    """Copy ``source``'s metrics, observations, artifacts, datasets, schema and lineage
    into the active run ``clone``."""
    writer = clone._writer
    for key in source.get_metric_keys():
        points = source.get_metric_history(key)
        series = clone._open_series(key)
        series.steps += [p.step for p in points]
        series.stamps += [p.timestamp for p in points]
        series.values += [p.value for p in points]
        if points:
            series.next_step = points[-1].step + 1
        writer.buffered += len(points)
    for key, found in source.get_observations().items():
        if found:
            writer.observations.setdefault(key, []).extend((o.epoch, o.timestamp, o.value) for o in found)
            clone.state.observations[key] = max(o.epoch for o in found) + 1
    edits: dict[str, str | None] = {}
    for key, ref in source.state.artifacts.items():
        if ref.location == "tree":
            blob = _artifact_blob(source, key)
            if blob is None:
                continue  # missing from the source's tree (prov verify reports it): nothing to refer to
            name = f"artifacts/{key_to_name(key)}"
            edits[name] = blob
            data = source._writer.deferred.get(blob)
            if data is None and not source.store.git.odb.contains(blob):  # kept in the source's run blob
                data = source.store.ledger.run_file(source.id, name)
            if data is not None:  # not written yet by the source: the clone writes it with its own pack
                writer.deferred[blob] = data
        clone.state.artifacts[key] = ref
    if edits:
        writer.stage_edits(edits, journal=not any(b in writer.deferred for b in edits.values()))
    clone.state.datasets.update(source.state.datasets)
    if source.state.io_schema is not None:
        clone.state.io_schema = dict(source.state.io_schema)
    clone.state.lineage = source.state.lineage
    writer.dirty = True


def _artifact_blob(source: Run, key: str) -> str | None:
    path = f"artifacts/{key_to_name(key)}"
    pending = source._writer.pending.get(path)
    if isinstance(pending, str):
        return pending
    if not source._writer.stored:
        return None
    return reading.artifact_blob_id(source.store.ledger, source.id, key)
