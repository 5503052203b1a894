"""Note lines written in batches: the links of runs that end in quick succession.

A run is linked to its commit by a line in that commit's note, and a notes transaction
rewrites the whole note, every run of the commit included. Written run by run, a sweep
of n runs against one commit costs O(n²) in time and disk. So a process writes a line
with the transaction that asked for it only when its last notes write is ``LINGER``
seconds old (a lone run is linked at once); otherwise the line waits in this process's
queue and goes with the next write that comes due, or when the process exits. A burst of
runs thus shares one notes transaction per ``LINGER`` seconds.

A waiting line is durable: it is appended to the process's queue journal,
``.git/prov/journal/<pid>-<token>.notes``, locked with ``flock`` like run journals.
Every prov process sees waiting lines (``pending_lines``); the commands that copy or
send notes (push, relink, the post-rewrite hook) write them first (``settle``); and a
journal whose process died is written and removed by the next prov call (``settle``
from crash recovery). Lines are idempotent (a note is a set of lines), so any process
may write any line, any number of times.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (the journal is imported when there is one: `prov show` stays lean)
    from .journal import Journal
    from .notes import Notes
    from .transaction import RefUpdate

__all__ = ["LINGER", "QUEUE_SUFFIX", "NoteQueue", "note_queue", "pending_lines", "settle"]

#: seconds between two notes writes of one process while runs end back to back
LINGER = 1.0
#: a queue this long is written with the next transaction whatever its age
MAX_PENDING = 5000
QUEUE_SUFFIX = ".notes"

_queues: dict[str, NoteQueue] = {}
_queues_lock = threading.Lock()


def _journal_dir(notes: Notes) -> str | None:
    prov_dir = notes.repo.prov_dir()
    return None if prov_dir is None else os.path.join(prov_dir, "journal")


class NoteQueue:
    """One process's waiting note lines for one repository."""

    def __init__(self, notes: Notes, directory: str | None) -> None:
        self.notes = notes
        self.directory = directory
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes]] = []  # (commit, line), oldest first
        self._journal: Journal | None = None
        self._last_write = float("-inf")

    def take(self, lines_by_commit: dict[str, list[bytes]], message: str) -> tuple[RefUpdate, int] | None:
        """When the queue is due, ``(notes update carrying these lines and every waiting
        one, ticket)`` for the caller's transaction, which then calls ``written(ticket)``;
        otherwise None, and the caller ``queue``s the lines once its transaction is in."""
        with self._lock:
            now = time.monotonic()
            if self.directory is not None and now - self._last_write < LINGER and len(self._pending) < MAX_PENDING:
                return None
            batch = _by_commit(self._pending)
            for commit, lines in lines_by_commit.items():
                batch.setdefault(commit, []).extend(lines)
            self._last_write = now
            return self.notes.update(batch, message), len(self._pending)

    def queue(self, lines_by_commit: dict[str, list[bytes]]) -> None:
        """Journal the lines and keep them for the next write."""
        with self._lock:
            if self._journal is None:
                from .journal import Journal

                self._journal = Journal.create(self.directory or "", f"{self.pid}-{os.urandom(4).hex()}",
                                               {"queue": "notes", "pid": self.pid}, suffix=QUEUE_SUFFIX, reuse=False)
            for commit, lines in lines_by_commit.items():
                for line in lines:
                    self._journal.append({"commit": commit, "line": line})
                    self._pending.append((commit, line))

    def written(self, ticket: int) -> None:
        """The update ``take`` returned is committed: the ``ticket`` lines that were
        waiting then are written (lines queued meanwhile stay queued)."""
        if ticket:
            with self._lock:
                self._drop(ticket)

    def flush(self) -> None:
        """Write every waiting line now (one notes transaction)."""
        with self._lock:
            if not self._pending:
                return
            count = len(self._pending)
            self.notes.add(_by_commit(self._pending), f"prov: link {count} run(s)")
            self._last_write = time.monotonic()
            self._drop(count)

    def close(self) -> None:
        """Flush, then remove this process's queue journal (at exit)."""
        self.flush()
        with self._lock:
            if self._journal is not None and not self._pending:
                self._journal.close(remove=True)
                self._journal = None

    def _drop(self, count: int) -> None:
        """Forget the oldest ``count`` waiting lines, now written. Lines queued while a
        transaction was in flight stay, and so does the journal then (it still holds
        the written ones too: harmless, writing a line twice changes nothing)."""
        del self._pending[:count]
        if not self._pending and self._journal is not None:
            self._journal.mark_flushed()


def _by_commit(pending: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = {}
    for commit, line in pending:
        grouped.setdefault(commit, []).append(line)
    return grouped


def note_queue(notes: Notes) -> NoteQueue:
    """This process's queue for ``notes``'s repository (a new one after a fork)."""
    directory = _journal_dir(notes)
    key = directory or f"memory:{id(notes.repo)}"
    with _queues_lock:
        queue = _queues.get(key)
        if queue is None or queue.pid != os.getpid():
            if not _queues:
                atexit.register(_flush_all)
            queue = _queues[key] = NoteQueue(notes, directory)
    return queue


def _flush_all() -> None:
    with _queues_lock:
        queues = [q for q in _queues.values() if q.pid == os.getpid()]
    for queue in queues:
        try:
            queue.close()
        except Exception as exc:  # noqa: BLE001 - at exit: the journal stays for the next prov call
            import sys

            print(f"prov: warning: run links not written yet ({exc}); the next prov command writes them",
                  file=sys.stderr)


def _queue_files(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.endswith(QUEUE_SUFFIX))


def _queued_lines(paths: list[str]) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    if not paths:
        return found
    from .journal import read_journal

    for path in paths:
        try:
            _, frames = read_journal(path)
        except OSError:
            continue  # removed meanwhile: written
        for frame in frames:
            commit, line = frame.get("commit"), frame.get("line")
            if isinstance(commit, str) and isinstance(line, bytes):
                found.setdefault(commit, []).append(line)
    return found


def pending_lines(notes: Notes) -> dict[str, list[bytes]]:
    """``{commit: lines}`` waiting in any process's queue journal (not yet in the notes,
    or written a moment ago)."""
    directory = _journal_dir(notes)
    return _queued_lines(_queue_files(directory)) if directory else {}


def settle(notes: Notes, *, abandoned_only: bool = False) -> int:
    """Write the waiting lines of every queue journal into the notes (one transaction),
    and remove the journals of dead processes; returns how many lines were waiting.
    ``abandoned_only``: only dead processes' journals (crash recovery)."""
    directory = _journal_dir(notes)
    files = _queue_files(directory) if directory else []
    if not files:
        return 0
    from .journal import abandoned_journals

    dead = abandoned_journals(directory or "", suffix=QUEUE_SUFFIX)
    try:
        lines = _queued_lines([path for path, _ in dead] if abandoned_only else files)
        if lines:
            notes.add(lines, f"prov: link {sum(map(len, lines.values()))} waiting run(s)")
        for path, _ in dead:
            with contextlib.suppress(OSError):
                os.remove(path)
        return sum(map(len, lines.values()))
    finally:
        for _, fd in dead:
            os.close(fd)
