"""Runs a process leaves open, ended when it exits normally, as MLflow's and W&B's
clients end theirs: what such a run logged is kept, not lost as in a crash.

A run started without ``with`` and never ended is ended by an ``atexit`` handler:
``finished``, or ``failed`` (``killed`` for Ctrl-C) when the script ended on an uncaught
exception or called ``sys.exit`` with a failing status. Only a process that dies without
its exit handlers (SIGKILL, ``os._exit``, a forked worker) leaves a journal, which the
next prov call folds in as ``crashed``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run

__all__ = ["abandon", "exit_ending", "forget", "remember"]

#: ``id(run)`` -> (the process that started it, the run), in start order
_open: dict[int, tuple[int, Run]] = {}
_lock = threading.Lock()
_registered = False
#: the status this process last passed to ``sys.exit``, once it has called it
_exit_request: list[object] = []


def remember(run: Run) -> None:
    """Track an active run until it ends (the exit handler is registered once)."""
    global _registered
    with _lock:
        if not _registered:
            atexit.register(_end_open_runs)
            _hook_sys_exit()
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


def _hook_sys_exit() -> None:
    """Note the status the script passes to ``sys.exit``, as W&B's client does: by the
    time exit handlers run, Python no longer tells it. (``raise SystemExit(n)`` is not
    seen, and ends its runs ``finished``.)"""
    previous = sys.exit

    def exit(status: object = None) -> None:  # noqa: A001 (stands in for sys.exit)
        _exit_request[:] = [status]
        previous(status)

    exit.__doc__ = previous.__doc__
    sys.exit = exit


def exit_ending(status: object) -> tuple[str, int]:
    """A run's ending when the process leaves through ``SystemExit(status)``, and the
    exit code that gives (``None``: 0; an integer: itself; a message: 1)."""
    code = 0 if status is None else status if isinstance(status, int) and not isinstance(status, bool) else 1
    return ("finished" if code == 0 else "failed"), code


def _exit_status() -> tuple[str, int | None]:
    """How the script ended, and its exit code when ``sys.exit`` gave one: Python keeps an
    uncaught exception in ``sys.last_exc`` (``sys.last_value`` before 3.12) when it
    prints its traceback."""
    if hasattr(sys, "ps1"):  # an interactive session: an error shown earlier is not its end
        return "finished", None
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is not None:
        return ("killed" if isinstance(exc, KeyboardInterrupt) else "failed"), None
    return exit_ending(_exit_request[0]) if _exit_request else ("finished", None)


def _end_open_runs() -> None:
    with _lock:  # a forked child inherits its parent's runs: only this process's are its own
        runs = [run for pid, run in _open.values() if pid == os.getpid()]
        _open.clear()
    status, code = _exit_status()
    for run in reversed(runs):  # a child run before its parent
        try:
            run.end(status, code)
        except Exception as exc:  # noqa: BLE001 (at exit: say so, leave it to recovery)
            print(f"prov: warning: could not end run {run.id[:12]} at exit ({exc}); "
                  "the next prov command keeps what its journal holds, as a crashed run", file=sys.stderr)
    from ..store.journal import remove_idle_journals

    remove_idle_journals()  # the journals the runs just ended left for a next run
