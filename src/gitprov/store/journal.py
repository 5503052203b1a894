"""Write-ahead journals of active runs under ``.git/prov/journal/``.

A run's writer appends frames (4-byte big-endian length + msgpack) describing tree
edits whose blobs are already in the object store, so replaying a journal is
idempotent. The writer holds an exclusive ``flock`` on its journal while alive: a
journal whose lock can be taken belongs to a dead process and is folded into the
ledger by the next prov call (status ``crashed``). After each ledger flush the journal
is cut back to its header.

When a run ends, its journal is emptied but kept open and locked for the next run of
the same process (creating and removing a file costs more than the rest of a short
run's bookkeeping); an empty journal is removed at exit, or by the next prov call
after a crash.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import Any

import msgspec

from ..errors import WriteError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no dead-writer detection by lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["NEW_SUFFIX", "Journal", "abandoned_journals", "read_journal", "remove_idle_journals"]

_SUFFIX = ".wal"
#: a journal being created (``<name><suffix>.new``) until it is locked and renamed
NEW_SUFFIX = ".new"
#: ``{directory: (pid, empty journal)}``: at most one idle journal per directory
_idle: dict[str, tuple[int, Journal]] = {}
_idle_lock = threading.Lock()
_cleanup_registered = False


def _frame(obj: Any) -> bytes:
    data = msgspec.msgpack.encode(obj)
    return len(data).to_bytes(4, "big") + data


class Journal:
    """The journal of one run writer; holds its lock until closed."""

    def __init__(self, path: str, fd: int, header_len: int, reuse: bool = True) -> None:
        self.path = path
        self._fd = fd
        self._header_len = header_len
        self._reuse = reuse
        self._frames = False  # anything appended after the header

    @classmethod
    def create(cls, directory: str, name: str, header: dict[str, Any], *,
               suffix: str = _SUFFIX, reuse: bool = True) -> Journal:
        """A new journal ``name + suffix`` (or this process's idle one, when ``reuse``),
        locked, holding ``header``."""
        if reuse:
            with _idle_lock:
                pid, idle = _idle.pop(directory, (None, None))
            if idle is not None and pid == os.getpid():  # (never a parent's, after a fork)
                data = _frame(header)
                os.write(idle._fd, data)
                idle._header_len = len(data)
                idle._frames = False
                return idle
        path = os.path.join(directory, name + suffix)
        # made under another name and locked before it is renamed into place: a journal
        # under its own name is locked from its first moment, so another process never
        # takes it for one whose writer died
        tmp = path + NEW_SUFFIX
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise WriteError(f"cannot create run journal {path}: {exc.strerror}") from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            data = _frame(header)
            os.write(fd, data)
            os.rename(tmp, path)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise WriteError(f"cannot create run journal {path}: {exc.strerror}") from exc
        return cls(path, fd, len(data), reuse)

    def append(self, frame: dict[str, Any]) -> None:
        os.write(self._fd, _frame(frame))
        self._frames = True

    def mark_flushed(self) -> None:
        """Everything journaled so far is in the ledger: cut back to the header (no
        file operation when nothing was appended since)."""
        if self._frames:
            os.ftruncate(self._fd, self._header_len)
            self._frames = False

    def close(self, remove: bool = True) -> None:
        if self._fd < 0:
            return
        if remove and self._reuse and _keep_idle(self):
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
        os.close(self._fd)
        self._fd = -1


def _keep_idle(journal: Journal) -> bool:
    """Empty ``journal`` and keep it (locked) for the next run of this process."""
    directory = os.path.dirname(journal.path)
    try:
        os.ftruncate(journal._fd, 0)
    except OSError:
        return False
    global _cleanup_registered
    with _idle_lock:
        if directory in _idle:
            return False
        if not _cleanup_registered:
            atexit.register(remove_idle_journals)
            _cleanup_registered = True
        _idle[directory] = (os.getpid(), journal)
    return True


def remove_idle_journals() -> None:
    """Remove the journals this process keeps for its next run (at its exit)."""
    with _idle_lock:
        idle = [j for pid, j in _idle.values() if pid == os.getpid()]
        _idle.clear()
    for journal in idle:
        with contextlib.suppress(OSError):
            os.remove(journal.path)
        with contextlib.suppress(OSError):
            os.close(journal._fd)
        journal._fd = -1


def read_journal(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, frames)``; a torn last frame (killed mid-write) is ignored."""
    with open(path, "rb") as f:
        data = f.read()
    frames = []
    pos = 0
    while pos + 4 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if pos + 4 + size > len(data):
            break
        try:
            frames.append(msgspec.msgpack.decode(data[pos + 4 : pos + 4 + size]))
        except msgspec.DecodeError:
            break
        pos += 4 + size
    if not frames:
        return {}, []
    return frames[0], frames[1:]


def abandoned_journals(directory: str, suffix: str = _SUFFIX) -> list[tuple[str, int]]:
    """``(path, locked fd)`` of journals (``*suffix``) whose writer is gone; the caller
    closes the fds."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(suffix))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        if fcntl is None:
            os.close(fd)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its writer is alive
            continue
        if not os.path.exists(path):  # folded by someone else meanwhile
            os.close(fd)
            continue
        found.append((path, fd))
    return found
