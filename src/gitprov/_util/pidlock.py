"""Lock files that hold the pid of their owner, so a lock left by a dead process is
recognised and taken over. Standard library only (the commit hook uses it)."""

from __future__ import annotations

import contextlib
import os

__all__ = ["holder", "take"]


def holder(path: str) -> int | None:
    """The pid of the live process holding the lock ``path``, or None (no lock, an
    unreadable one, or one whose process is gone)."""
    try:
        with open(path, encoding="ascii") as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, someone else's
        return pid
    return pid


def take(path: str) -> int | None:
    """Create the lock ``path`` holding this process's pid; its open file descriptor, or
    None while a live process holds it. A lock left by a dead process is replaced."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if holder(path) is not None:
                return None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        os.write(fd, str(os.getpid()).encode())
        return fd
    return None
