"""Which runs a sync covers: the plan, read from the run index without reading a run.

The plan is every live run (or the ones asked for), oldest first, held compactly;
``plan_size`` counts it without listing it, for the line ``prov sync`` says before the
tracker's library is imported (so this module imports neither the engine nor a bridge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["PAGE", "Plan", "plan_size", "sync_plan"]

#: runs read from the ledger and synced at a time: a sync of any ledger holds this many
PAGE = 256


class Plan(Sequence):
    """The runs to sync, ``(run id, tree, name, parent)`` each, held compactly: ids and
    trees as raw bytes in one buffer, a name a run, parents by position (100,000 runs:
    about 11 MB instead of 30 MB of tuples)."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str | None]]) -> None:
        self._ids = bytearray()
        self._width = 0
        self._names: list[str] = []
        self._parents: dict[int, str] = {}
        for run_id, tree, name, parent in rows:
            raw = bytes.fromhex(run_id) + bytes.fromhex(tree)
            self._width = self._width or len(raw)
            self._ids += raw
            if parent:
                self._parents[len(self._names)] = parent
            self._names.append(name)

    def __len__(self) -> int:
        return len(self._names)

    def _row(self, i: int) -> tuple[str, str, str, str | None]:
        half, at = self._width // 2, i * self._width
        return (self._ids[at:at + half].hex(), self._ids[at + half:at + self._width].hex(), self._names[i],
                self._parents.get(i))

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._row(i)


def sync_plan(store: ProvStore, run_ids: list[str] | None) -> tuple[str | None, Plan]:
    """The ledger tip and ``(run id, tree, name, parent)`` of each run to sync, oldest
    first, deleted runs left out, from the run index (no run is read)."""
    from ..index.store import index_of
    from ..runs.reading import resolve_run_id

    index = index_of(store)
    wanted = {resolve_run_id(store.ledger, r) for r in run_ids} if run_ids else None
    rows = index.iter_live_runs()
    plan = Plan(rows if wanted is None else (row for row in rows if row[0] in wanted))
    return index.indexed_tip(), plan


def plan_size(store: ProvStore, run_ids: list[str] | None) -> int:
    """How many runs ``sync_plan`` will hold, counted by the run index without listing
    them (100,000 runs: a few ms, where the plan takes half a second)."""
    if run_ids:
        return len(sync_plan(store, run_ids)[1])
    from ..index.store import index_of

    row = index_of(store).connection().execute("SELECT count(*) FROM runs WHERE deleted = 0").fetchone()
    return int(row[0])
