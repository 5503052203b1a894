"""Run a sync: pick the runs, hand them to a bridge from worker threads, retry, report.

Runs go out parents first (so a child can point at its parent's external run), and a
model's producer before its consumers, each level in parallel on ``workers`` threads. A transient error (connection refused, a
timeout, a locked database) is retried with exponential backoff; when the tracker
keeps failing, the runs not yet attempted are ``skipped`` and stay pending. Nothing a
bridge does is trusted as done until it returns: only then is the run marked synced
at its ledger version in the local state. Setting ``stop`` (``--watch`` on SIGINT or
SIGTERM) lets the runs in progress finish and skips the rest, which stay pending.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProvError, UsageError
from ..store.prov_store import ProvStore
from .bridge import Bridge, RunResult, RunSource, is_transient
from .plan import PAGE, Plan, plan_size, sync_plan
from .state import SyncState, target_key

__all__ = ["PAGE", "Plan", "SyncReport", "TargetStatus", "open_state", "plan_size", "sync_plan", "sync_runs",
           "sync_status"]


@dataclass
class SyncReport:
    """Every per-run result of one sync."""

    target: str
    kind: str
    dry_run: bool
    results: list[RunResult] = field(default_factory=list)
    seconds: float = 0.0
    #: what the bridge says the user should know (each said once), one line each.
    warnings: list[str] = field(default_factory=list)
    #: every result counted by status, as it came, whether kept in ``results`` or not
    #: (``sync_runs(keep_results=False)``: a caller that prints each as it comes)
    tally: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if r.status in ("failed", "skipped")]

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    @property
    def failed_count(self) -> int:
        counts = self.counts()
        return counts.get("failed", 0) + counts.get("skipped", 0)

    def counts(self) -> dict[str, int]:
        if self.tally:
            return dict(self.tally)
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"target": self.target, "kind": self.kind, "dry_run": self.dry_run,
               "counts": self.counts(), "seconds": round(self.seconds, 3),
               "runs": [r.to_json() for r in self.results]}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def open_state(store: ProvStore, bridge: Bridge) -> SyncState:
    store = ProvStore.of(store)
    prov_dir = store.git.prov_dir()
    directory = os.path.join(prov_dir, "sync") if prov_dir else None
    return SyncState(directory, target_key(bridge.kind, bridge.address), f"{bridge.kind} {bridge.address}")


def _pages(store: ProvStore, bridge: Bridge, state: SyncState, tip: str | None,
           plan: Plan) -> Iterator[tuple[list[RunResult], list[RunSource]]]:
    """The plan a page at a time: the results of runs the state shows unchanged (not
    read), and the runs to hand to the bridge, read now. A page is made when the one
    before it has been synced, so parents synced there count for their children."""
    from ..runs.run import Run

    for start in range(0, len(plan), PAGE):
        same: list[RunResult] = []
        sources: list[RunSource] = []
        for run_id, tree, name, parent in plan[start:start + PAGE]:
            entry = state.get(run_id)
            parent_entry = state.get(parent) if parent else None
            parent_synced = bool(parent_entry and parent_entry.get("version") and parent_entry.get("external_id"))
            result = bridge.unchanged(run_id, name, tree, entry, parent_synced and not (entry or {}).get("parent"))
            if result is not None:
                same.append(result)
            else:
                sources.append(RunSource(Run.load(store, run_id, tip), tree))
        yield same, sources


def _levels(sources: list[RunSource]) -> list[list[RunSource]]:
    """Sources grouped so every run comes after its parent (when both are synced)."""
    by_id = {s.id: s for s in sources}
    depth: dict[str, int] = {}

    def level(s: RunSource, seen: frozenset[str] = frozenset()) -> int:
        if s.id in depth:
            return depth[s.id]
        parent = by_id.get(s.run.record.parent or "")
        d = 0 if parent is None or parent.id in seen else level(parent, seen | {s.id}) + 1
        depth[s.id] = d
        return d

    groups: dict[int, list[RunSource]] = {}
    for s in sources:
        groups.setdefault(level(s), []).append(s)
    return [part for k in sorted(groups) for part in _producers_first(groups[k])]


def _models(side: dict[str, list[str]]) -> set[str]:
    return {f"{k}@{v}" for k, versions in side.items() if k.startswith("model:") for v in (versions or [""])}


def _producers_first(group: list[RunSource]) -> list[list[RunSource]]:
    """``group`` split so a run comes after the runs of the group that produce a model it
    consumes (a tracker fixes a model's source run when the model is first made, by
    whichever run links it first); runs in a cycle stay together."""
    makes: dict[str, set[str]] = {}
    for s in group:
        for m in _models(s.run.state.lineage.outputs):
            makes.setdefault(m, set()).add(s.id)
    if not makes:
        return [group]
    out: list[list[RunSource]] = []
    done: set[str] = set()
    left = list(group)
    while left:
        ready = [s for s in left if all(p in done or p == s.id
                                        for m in _models(s.run.state.lineage.inputs) for p in makes.get(m, ()))]
        ready = ready or left
        out.append(ready)
        done |= {s.id for s in ready}
        left = [s for s in left if s.id not in done]
    return out


def sync_runs(store: ProvStore, bridge: Bridge, *, workers: int = 4, dry_run: bool = False,
              retries: int = 3, backoff: float = 0.5, run_ids: list[str] | None = None,
              on_result: Callable[[RunResult], None] | None = None,
              stop: threading.Event | None = None, lock_wait: float = 0.0,
              keep_results: bool = True) -> SyncReport:
    """Mirror the repository's runs (or ``run_ids``) to ``bridge``'s tracker; once
    ``stop`` is set no further run is started (those not started are ``skipped``);
    ``lock_wait``: seconds to wait for another sync to the same target to finish;
    ``keep_results`` False: the report counts results without keeping them (each
    goes to ``on_result``), so a sync of any size holds a page of runs at a time."""
    store = ProvStore.of(store)
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    started = time.monotonic()
    state = open_state(store, bridge)
    report = SyncReport(target=bridge.address, kind=bridge.kind, dry_run=dry_run)
    tip, plan = sync_plan(store, run_ids)
    if not dry_run:
        state.acquire(wait=lock_wait)
    # a bridge whose tracker library retries each request itself (MLflow over HTTP) is
    # not retried run by run on top of that: ``retries`` already governs those tries
    run_retries = 0 if getattr(bridge, "retries_requests", False) else retries
    down = threading.Event()  # the tracker keeps failing: stop trying
    streak = [0]
    lock = threading.Lock()

    def one(source: RunSource) -> RunResult:
        entry = state.get(source.id)
        parent = source.run.record.parent
        if parent:
            parent_entry = state.get(parent)
            source.parent_external_id = (parent_entry or {}).get("external_id") if parent_entry and parent_entry.get("version") else None
        if down.is_set():
            return RunResult(run_id=source.id, name=source.run.name, status="skipped",
                             error="not attempted: the tracker was failing")
        if stop is not None and stop.is_set():
            return RunResult(run_id=source.id, name=source.run.name, status="skipped",
                             error="not attempted: the sync was stopped")
        t0 = time.monotonic()
        attempt = 0
        use = entry
        while True:
            attempt += 1
            try:
                result, new_entry = bridge.sync_run(source, use, dry_run=dry_run)
                with lock:
                    streak[0] = 0
                if not dry_run and new_entry != entry:
                    state.put(source.id, new_entry)
                break
            except Exception as exc:  # noqa: BLE001 - every failure becomes a per-run result
                transient = is_transient(exc) and not isinstance(exc, ProvError)
                if transient and attempt <= run_retries and not down.is_set() and not (stop and stop.is_set()):
                    if stop is not None:
                        stop.wait(backoff * (2 ** (attempt - 1)))
                    else:
                        time.sleep(backoff * (2 ** (attempt - 1)))
                    continue
                if not transient and not isinstance(exc, ProvError) and use and attempt == 1:
                    use = None  # the local state may be stale (run deleted remotely): look it up again
                    continue
                if transient:
                    with lock:
                        streak[0] += 1
                        if streak[0] >= max(3, workers):
                            down.set()
                message = _one_line(exc)
                result = RunResult(run_id=source.id, name=source.run.name, status="failed", error=message)
                if not dry_run:
                    failed = dict(entry or {})
                    failed["error"] = message
                    state.put(source.id, failed)
                break
        result.attempts = attempt
        result.seconds = time.monotonic() - t0
        return result

    def done(result: RunResult) -> None:
        report.tally[result.status] = report.tally.get(result.status, 0) + 1
        if keep_results:
            report.results.append(result)
        if on_result:
            on_result(result)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prov-sync") if workers > 1 else None
    session = getattr(bridge, "session", None)
    connect = getattr(bridge, "connect", None)
    try:
        with session() if session is not None else contextlib.nullcontext():
            _sync_pages(store, bridge, state, tip, plan, pool, one, done, connect)
    finally:
        if pool is not None:
            pool.shutdown()
        try:
            if not dry_run:
                state.save()
        finally:
            state.release()
            state.close()
    take = getattr(bridge, "take_warnings", None)
    if take is not None:
        report.warnings = take()
    report.seconds = time.monotonic() - started
    return report


def _sync_pages(store: ProvStore, bridge: Bridge, state: SyncState, tip: str | None,
                plan: Plan, pool: ThreadPoolExecutor | None,
                one: Callable[[RunSource], RunResult], done: Callable[[RunResult], None],
                connect: Callable[[], None] | None) -> None:
    """Hand the plan to ``one`` page by page, parents first; ``connect`` (the bridge's
    reachability check, raising a ``SyncError``) runs once, before the first run that
    needs the tracker, so an unreachable tracker ends the sync at once."""
    for same, sources in _pages(store, bridge, state, tip, plan):
        for result in same:
            done(result)
        if sources and connect is not None:
            connect()
            connect = None
        for group in _levels(sources):
            for result in (map(one, group) if pool is None or len(group) == 1 else pool.map(one, group)):
                done(result)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}" if not isinstance(exc, ProvError) else text[:300]


@dataclass
class TargetStatus:
    """Which runs one target holds at their current version (``prov sync status``)."""

    target: str
    kind: str
    key: str
    synced: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "key": self.key, "synced": self.synced,
                "pending": self.pending, "failed": self.failed}


def sync_status(store: ProvStore, target: str | None = None) -> list[TargetStatus]:
    """Synced / pending / failed runs for every target with local state (or ``target``:
    a kind like ``mlflow`` or a state key)."""
    store = ProvStore.of(store)
    from ..runs.reading import all_run_entries, read_state
    from .state import state_keys

    prov_dir = store.git.prov_dir()
    directory = os.path.join(prov_dir, "sync") if prov_dir else None
    keys = state_keys(directory)
    tip = store.ledger.tip()
    runs = [(rid, tree) for rid, tree in all_run_entries(store.ledger, tip) if not read_state(store.ledger, rid, tip).deleted]
    out = []
    for key in keys:
        kind = key.split("-", 1)[0]
        if target and target not in (kind, key):
            continue
        state = SyncState(directory, key, key)
        status = TargetStatus(target=state.target.split(" ", 1)[-1], kind=kind, key=key)
        for run_id, tree in runs:
            entry = state.get(run_id)
            if entry and entry.get("version") == tree and not entry.get("error"):
                status.synced.append(run_id)
            elif entry and entry.get("error"):
                status.failed[run_id] = entry["error"]
            else:
                status.pending.append(run_id)
        state.close()
        out.append(status)
    return out
