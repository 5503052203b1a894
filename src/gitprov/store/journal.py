"""Write-ahead journals of active runs under ``.git/prov/journal/``.

A run's writer appends frames (4-byte big-endian length + msgpack) describing tree
edits whose blobs are already in the object store, so replaying a journal is
idempotent. The writer holds an exclusive ``flock`` on its journal while alive: a
journal whose lock can be taken belongs to a dead process and is folded into the
ledger by the next prov call (status ``crashed``). After each ledger flush the journal
is cut back to its header.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import msgspec

from ..errors import WriteError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no dead-writer detection by lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "abandoned_journals", "read_journal"]

_SUFFIX = ".wal"


def _frame(obj: Any) -> bytes:
    data = msgspec.msgpack.encode(obj)
    return len(data).to_bytes(4, "big") + data


class Journal:
    """The journal of one run writer; holds its lock until closed."""

    def __init__(self, path: str, fd: int, header_len: int) -> None:
        self.path = path
        self._fd = fd
        self._header_len = header_len

    @classmethod
    def create(cls, directory: str, name: str, header: dict[str, Any]) -> Journal:
        path = os.path.join(directory, name + _SUFFIX)
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise WriteError(f"cannot create run journal {path}: {exc.strerror}") from exc
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        data = _frame(header)
        os.write(fd, data)
        return cls(path, fd, len(data))

    def append(self, frame: dict[str, Any]) -> None:
        os.write(self._fd, _frame(frame))

    def mark_flushed(self) -> None:
        """Everything journaled so far is in the ledger: cut back to the header."""
        os.ftruncate(self._fd, self._header_len)

    def close(self, remove: bool = True) -> None:
        if self._fd < 0:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
        os.close(self._fd)
        self._fd = -1


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


def abandoned_journals(directory: str) -> list[tuple[str, int]]:
    """``(path, locked fd)`` of journals whose writer is gone; caller closes the fds."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(_SUFFIX))
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
