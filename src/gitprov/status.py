"""``prov status``: what this clone's provenance has not delivered yet, and where.

- per remote: runs and notes (captures, run and rewrite links) added or changed here
  since the remote was last seen (its ``refs/prov-remotes/<remote>/`` copy, refreshed by
  every fetch, pull and push; nothing is asked of the network), and the outbox's pending
  push with its last error;
- per tracker with sync state: runs not synced at their current version, and failures;
- pending relinks: commits runs were made against that history no longer reaches and no
  rewrite link carried on (a squash merge, a deleted branch).

Every part costs what differs, not the size of the ledger: ``git diff-tree`` of the
tracked and local trees, the run index for trackers, ``git rev-list`` from the commits
runs pin for relinks.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .exchange.outbox import PendingPush, pending
from .exchange.remote import tracking_ref, unpushed_notes
from .store.ledger import LEDGER_REF
from .store.prov_store import ProvStore

__all__ = ["ProvStatus", "RelinkStatus", "RemoteStatus", "TrackerStatus", "prov_status"]


@dataclass
class RemoteStatus:
    """One remote, as last seen. ``exchanged`` False: never pushed to nor fetched from
    here, so everything may be missing there (the lists are then empty)."""

    remote: str
    exchanged: bool
    runs_added: list[str] = field(default_factory=list)
    runs_changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: PendingPush | None = None

    @property
    def clean(self) -> bool:
        return self.exchanged and not (self.runs_added or self.runs_changed or self.notes or self.pending)


@dataclass
class TrackerStatus:
    """One sync target: runs not synced at their current version, and failed ones."""

    target: str
    kind: str
    key: str | None
    unsynced: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    never_synced: bool = False


@dataclass
class RelinkStatus:
    """A commit no ref reaches any more, with the runs made against it."""

    commit: str
    runs: list[str]


@dataclass
class ProvStatus:
    remotes: list[RemoteStatus] = field(default_factory=list)
    trackers: list[TrackerStatus] = field(default_factory=list)
    relinks: list[RelinkStatus] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (all(r.clean for r in self.remotes) and not any(t.unsynced or t.failed for t in self.trackers)
                and not self.relinks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        for remote, plain in zip(self.remotes, data["remotes"], strict=True):
            plain["clean"] = remote.clean
        return data


def prov_status(store: ProvStore) -> ProvStatus:
    """Everything not delivered yet: to remotes, to trackers, across rewrites."""
    store = ProvStore.of(store)
    from .history import pending_relinks

    return ProvStatus(remotes=_remotes(store), trackers=_trackers(store),
                      relinks=[RelinkStatus(c, runs) for c, runs in pending_relinks(store)])


def _remotes(store: ProvStore) -> list[RemoteStatus]:
    from .exchange.diff import ledger_diff
    from .exchange.remote import added_runs, log_runs_ahead
    from .store.ledger import Ledger

    git = store.git
    waiting = {p.remote: p for p in pending(git)}
    out = []
    for name in [*git.config.remote_names(), *(r for r in waiting if r not in git.config.remote_names())]:
        status = RemoteStatus(name, exchanged=False, pending=waiting.get(name))
        theirs, ours = git.refs.read(tracking_ref(name, LEDGER_REF)), git.refs.read(LEDGER_REF)
        if theirs is not None and git.odb.contains(theirs):
            status.exchanged = True
            if ours is not None and ours != theirs and Ledger(git).is_log(ours):
                status.runs_added, status.runs_changed = log_runs_ahead(git, theirs, ours)
            elif ours is not None and ours != theirs:
                their_tree, our_tree = git.read_commit(theirs).tree, git.read_commit(ours).tree
                diff = ledger_diff(git, their_tree, our_tree)
                if diff is not None:
                    status.runs_added = sorted(diff.added)
                    status.runs_changed = sorted(set(diff.runs) - diff.added)
                else:
                    status.runs_added = added_runs(git, their_tree, our_tree)
            status.notes = unpushed_notes(git, name) or []
        out.append(status)
    return out


def _trackers(store: ProvStore) -> list[TrackerStatus]:
    """Targets with local sync state, and auto-sync targets never synced (from the run
    index: one query, no run read)."""
    from .sync.auto import configured_targets
    from .sync.state import SyncState, state_keys

    prov_dir = store.git.prov_dir()
    directory = os.path.join(prov_dir, "sync") if prov_dir else None
    names = state_keys(directory)
    try:
        configured = configured_targets(store.git.config)
    except Exception:  # noqa: BLE001 - a bad setting is 'prov sync's to report, not status's
        configured = []
    kinds = {n.split("-", 1)[0] for n in names}
    never = [k for k in configured if k not in kinds]
    if not names and not never:
        return []
    from .index.store import index_of

    live = [(run_id, tree) for run_id, tree, _name, _parent in index_of(store).live_runs()]
    out = []
    for key in names:
        state = SyncState(directory, key, key)
        described = state.target
        status = TrackerStatus(target=described.split(" ", 1)[-1], kind=key.split("-", 1)[0], key=key)
        for run_id, tree in live:
            entry = state.get(run_id)
            if entry and entry.get("error"):
                status.failed[run_id] = str(entry["error"])
            elif not entry or entry.get("version") != tree:
                status.unsynced.append(run_id)
        state.close()
        out.append(status)
    for kind in never:
        out.append(TrackerStatus(target=kind, kind=kind, key=None, unsynced=[r for r, _ in live], never_synced=True))
    return out

