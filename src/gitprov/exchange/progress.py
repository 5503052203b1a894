"""Progress of a fetch, validation and merge, shown the way git shows its own.

A ``Progress`` writes to a terminal (the CLI makes one only when stderr is one): a line
per phase, rewritten in place (``\\r``) at most a few times a second, finished with
``, done.``. git's own progress for the transfer is passed through as it comes. Off a
terminal nothing is made, and the library's calls cost nothing.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

__all__ = ["Progress"]

#: seconds between two rewrites of a phase's line
_EVERY = 0.2


class Progress:
    """Counts for the phases of an exchange, written to ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._shown = 0.0
        self._phase: str | None = None

    def update(self, phase: str, count: int, total: int | None = None) -> None:
        """``count`` things of ``phase`` done so far (safe from any thread)."""
        now = time.monotonic()
        if phase == self._phase and now - self._shown < _EVERY:
            return
        with self._lock:
            self._phase, self._shown = phase, now
            self._write(f"\rprov: {phase}: {_count(count, total)}")

    def done(self, phase: str, count: int, total: int | None = None, note: str = "") -> None:
        """The last count of ``phase``, and the end of its line."""
        with self._lock:
            self._phase = None
            self._write(f"\rprov: {phase}: {_count(count, total)}{note}, done.\n")

    def passthrough(self, text: str) -> None:
        """git's own progress output, as it is."""
        with self._lock:
            self._write(text)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is not worth failing for
            pass


def _count(count: int, total: int | None) -> str:
    if total:
        return f"{100 * count // total}% ({count:,}/{total:,})"
    return f"{count:,}"
