"""Runs a process leaves open, ended when it exits normally, as MLflow's and W&B's
clients end theirs: what such a run logged is kept, not lost as in a crash.

A run started without ``with`` and never ended is ended by an ``atexit`` handler:
``finished``, or ``failed`` (``killed`` for Ctrl-C) when the script ended on an uncaught
exception. Only a process that dies without its exit handlers (SIGKILL, ``os._exit``, a
forked worker) leaves a journal, which the next prov call folds in as ``crashed``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run

__all__ = ["abandon", "forget", "remember"]

#: ``id(run)`` -> (the process that started it, the run), in start order
_open: dict[int, tuple[int, Run]] = {}
_lock = threading.Lock()
_registered = False


def remember(run: Run) -> None:
    """Track an active run until it ends (the exit handler is registered once)."""
    global _registered
    with _lock:
        if not _registered:
            atexit.register(_end_open_runs)
            _registered = True
        _open[id(run)] = (os.getpid(), run)


def forget(run: Run) -> None:
    """The run ended: nothing to do for it at exit."""
    with _lock:
        _open.pop(id(run), None)


def abandon() -> None:
    """Leave this process's open runs to crash recovery (their journals stay): a
    command that failed has said why, and ending its runs again would fail again."""
    with _lock:
        _open.clear()


def _exit_status() -> str:
    """How the script ended: Python keeps an uncaught exception in ``sys.last_exc``
    (``sys.last_value`` before 3.12) when it prints its traceback."""
    if hasattr(sys, "ps1"):  # an interactive session: an error shown earlier is not its end
        return "finished"
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is None:
        return "finished"
    return "killed" if isinstance(exc, KeyboardInterrupt) else "failed"


def _end_open_runs() -> None:
    with _lock:  # a forked child inherits its parent's runs: only this process's are its own
        runs = [run for pid, run in _open.values() if pid == os.getpid()]
        _open.clear()
    status = _exit_status()
    for run in reversed(runs):  # a child run before its parent
        try:
            run.end(status)
        except Exception as exc:  # noqa: BLE001 (at exit: say so, leave it to recovery)
            print(f"prov: warning: could not end run {run.id[:12]} at exit ({exc}); "
                  "the next prov command keeps what its journal holds, as a crashed run", file=sys.stderr)
    from ..store.journal import remove_idle_journals

    remove_idle_journals()  # the journals the runs just ended left for a next run
