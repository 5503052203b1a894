"""Folding the journals of dead run writers into the ledger (status ``crashed``)."""

from __future__ import annotations

import contextlib
import os

from .. import codec
from ..errors import DataError, WriteError
from ..model import RunRecord, RunState
from ..store.journal import NEW_SUFFIX, abandoned_journals, read_journal
from ..store.ledger import run_dir
from ..store.prov_store import ProvStore
from ..store.transaction import commit_on_refs

__all__ = ["recover_abandoned", "recover_quietly"]

#: seconds recovery waits for a ref lock (a run writer holds one for milliseconds)
_LOCK_WAIT_SECONDS = 0.25


def recover_quietly(store: ProvStore) -> list[str]:
    """``recover_abandoned``, with a failure to write reported on stderr, not raised."""
    try:
        return recover_abandoned(store)
    except WriteError as exc:
        import sys

        print(f"prov: warning: cannot recover crashed runs: {exc}", file=sys.stderr)
        return []


def recover_abandoned(store: ProvStore) -> list[str]:
    """Fold every journal whose writer died; returns the recovered run ids."""
    store = ProvStore.of(store)
    folder = store.journal_dir()
    if folder is None or not os.path.isdir(folder):
        return []
    error: WriteError | None = None
    # recovery is opportunistic (every prov call tries again): a ref lock that does not
    # go away at once is not waited for (a process killed inside its ref update leaves
    # one until the user removes it, as with git)
    with store.git.refs.lock_wait_at_most(_LOCK_WAIT_SECONDS):
        try:
            recovered = _recover_runs(store, folder)
        except WriteError as exc:  # (a ref locked by a dead process, say)
            recovered, error = [], exc
    _remove_stale_new_journals(folder)
    _remove_note_queues(store, folder)
    if error is not None:
        raise error
    return recovered


def _remove_stale_new_journals(folder: str) -> None:
    """Journals whose creator died before renaming them into place (``*.new``, a minute
    old and unlocked): they hold a header at most."""
    import time

    for path, fd in abandoned_journals(folder, suffix=NEW_SUFFIX):
        try:
            if time.time() - os.fstat(fd).st_mtime > 60:
                os.remove(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _remove_note_queues(store: ProvStore, folder: str) -> None:
    """Note queue journals (``*.notes``) of dead processes of git-prov 0.1, which
    batched run links there: the runs they name are in the ledger, and upgrading it to
    format 2 (done here first) lists them under their commits."""
    queues = abandoned_journals(folder, suffix=".notes")
    try:
        if queues:
            store.ledger.apply({}, "prov: upgrade the ledger to format 2")
        for path, _ in queues:
            with contextlib.suppress(OSError):
                os.remove(path)
    finally:
        for _, fd in queues:
            os.close(fd)


def _recover_runs(store: ProvStore, folder: str) -> list[str]:
    from .._util.clock import utc_timestamp
    from .writer import commit_link

    recovered = []
    for path, fd in abandoned_journals(folder):
        try:
            header, frames = read_journal(path)
            if not header:
                os.remove(path)
                continue
            run_id = header["run"]
            record = codec.decode(header["record"], RunRecord, f"journal record of {run_id[:12]}")
            base = run_dir(run_id)
            changes: dict[str, bytes | str | None] = {}
            journal_state = None
            for frame in frames:
                for rel, oid in frame.get("changes", {}).items():
                    if oid is not None and store.git.odb.contains(oid):
                        changes[f"{base}/{rel}"] = oid
                journal_state = frame.get("state", journal_state)
            stored = store.ledger.run_file(run_id, "record") is not None
            if not stored:
                changes[f"{base}/record"] = header["record"]
                if record.code.patch and store.git.odb.contains(record.code.patch):
                    changes[f"{base}/code.patch"] = record.code.patch
            state = _latest_state(store.ledger.run_file(run_id, "state"), journal_state, run_id) or RunState(
                name=record.name, experiment=record.experiment)
            if state.status == "running":
                state.status = "crashed"
                state.ended = utc_timestamp()
            state.lamport += 1
            state.updated = utc_timestamp()
            changes[f"{base}/state"] = codec.encode(state)
            # the commit's entry (again, if the run's first write landed: the same bytes)
            # and its note's runs line when a writer died between the ledger and the notes
            links, pointer = commit_link(store, run_id, record)
            changes.update(links)
            updates = [store.ledger.update(changes, f"prov: recover crashed run {run_id[:12]}")]
            commit_on_refs(store.git, updates if pointer is None else [*updates, pointer])
            os.remove(path)
            recovered.append(run_id)
        except (DataError, KeyError, TypeError) as exc:
            # leave the journal for inspection; report once per call
            import sys

            print(f"prov: cannot recover run journal {path}: {exc}", file=sys.stderr)
        finally:
            os.close(fd)
    return recovered


def _latest_state(stored: bytes | None, journaled: bytes | None, run_id: str) -> RunState | None:
    """The newer (by lamport clock) of the ledger's state and the journal's last one:
    a writer that died after its final ledger write left an older state journaled. On a
    tie the journal wins (states journaled after a flush keep the flushed clock)."""
    states = [codec.decode(data, RunState, f"state of run {run_id[:12]}") for data in (journaled, stored) if data]
    return max(states, key=lambda s: s.lamport) if states else None
