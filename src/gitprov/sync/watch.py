"""``prov sync … --watch``: keep a tracker in step with the ledger.

One sync at the start, then a poll of the ledger ref every ``interval`` seconds: when
the tip moved (a run was flushed or ended, a pull merged runs) or the last sync left
runs failed, sync again. A poll that finds nothing new reads one ref file and writes
nothing. Setting ``stop`` (the CLI does on SIGINT and SIGTERM) ends the loop: a sync in
progress finishes the runs it started, skips the rest (they stay pending) and saves
its state before ``watch`` returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import SyncError, UsageError
from ..store.prov_store import ProvStore
from .engine import SyncReport, sync_runs

if TYPE_CHECKING:
    from .bridge import Bridge

__all__ = ["watch"]

_UNSET = object()


def watch(store: ProvStore, bridge: Bridge, stop: threading.Event, *, interval: float = 5.0,
          on_report: Callable[[SyncReport], None] | None = None,
          on_busy: Callable[[SyncError], None] | None = None, **options: Any) -> int:
    """Sync the store to ``bridge`` whenever its ledger moves, until ``stop`` is set;
    returns how many syncs ran. ``options`` go to ``sync_runs``. A sync that cannot
    start (another sync holds the target's lock) is reported to ``on_busy`` and tried
    again at the next poll."""
    store = ProvStore.of(store)
    if interval <= 0:
        raise UsageError("--interval must be positive")
    last: object = _UNSET
    again = False
    rounds = 0
    while not stop.is_set():
        tip = store.ledger.tip()  # read before the sync: a move during it is seen next time
        if tip != last or again:
            try:
                report = sync_runs(store, bridge, stop=stop, **options)
            except SyncError as exc:
                if on_busy is None:
                    raise
                on_busy(exc)
                again = True
            else:
                rounds += 1
                last = tip
                again = any(r.status == "failed" or (r.status == "skipped" and not stop.is_set())
                            for r in report.results)
                if on_report is not None:
                    on_report(report)
        stop.wait(interval)
    return rounds
