"""git's own repack of prov's packs, started off the hot path.

Every transaction writes one pack of whole objects (``store/packs.py``). When enough of
them lie outside a geometric progression, ``PackDirectory.maintain`` calls
``start_repack``: ``git repack --geometric=4 -d -q`` in a session of its own (stdin and
stdout /dev/null, stderr appended to ``.git/prov/repack.log``, ten steps nicer than
prov), never waited for. git rolls the small packs (and loose objects) into one pack
with deltas, reusing the deltas already there and leaving ``.keep`` and cruft packs
alone, at a cost that follows the packs rolled up, not the size of the repository.

``.git/prov/repack.lock`` holds the pid of the repack prov started: while it runs, no
other prov process starts one. A lock whose process is gone, or older than ten
minutes (its pid may have been reused), is taken over. This process reaps the repacks
it started (``running``), so a finished one never looks alive as a zombie.
"""

from __future__ import annotations

import contextlib
import os
import time

from .._util.logfile import trim
from .._util.pidlock import holder, take
from ..errors import ProvError
from . import gitbin
from .packs import GEOMETRIC_FACTOR

__all__ = ["LOCK", "LOG", "running", "start_repack"]

LOCK, LOG = "repack.lock", "repack.log"
_STALE_SECONDS = 600
_LOG_LIMIT = 64 * 1024
#: repack the repository prov opened, whatever object directory a hook's caller set
_DROP = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH",
         "GIT_INDEX_FILE", "GIT_WORK_TREE")
_children: set[int] = set()  # repacks this process started and has not reaped


def _reap() -> None:
    for pid in list(_children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _children.discard(pid)


def running(common_dir: str) -> int | None:
    """The pid of the repack prov started in the repository at ``common_dir``, while it
    runs; None when none does."""
    _reap()
    return holder(os.path.join(common_dir, "prov", LOCK))


#: the repack again while packs written during the last one leave more than the limit
#: (at most ``_ROUNDS`` times): a burst of transactions that all met a running repack
#: is rolled up without waiting for the next transaction; then the commit-graph brought
#: up to date, a layer for the commits since the last (``--split``, git merges layers
#: as they pile up): format 4's fold walks the ledger's commits, 4× faster with it, and
#: ``git gc`` writes one anyway, which would otherwise make ``.git`` grow. ``$1`` the
#: pack directory, ``$2`` the limit, ``$3`` the git directory, the rest the git command line.
_DRAIN = ('dir=$1 limit=$2 gitdir=$3; shift 3; round=0; while [ "$round" -lt %d ]; do round=$((round + 1)); '
          '"$@" || exit $?; count=0; for p in "$dir"/pack-*.pack; do [ -e "$p" ] && count=$((count + 1)); '
          'done; [ "$count" -le "$limit" ] && break; done; '
          'git --git-dir "$gitdir" commit-graph write --reachable --split --no-progress; exit 0')
_ROUNDS = 4


def start_repack(common_dir: str, *, write_midx: bool = False, pack_dir: str | None = None,
                 limit: int | None = None) -> int | None:
    """Start ``git repack --geometric=4 -d -q`` (``--write-midx`` too when the
    repository has a multi-pack-index) detached, unless one prov started still runs;
    given ``pack_dir`` and ``limit``, it is run again while more than ``limit`` packs
    remain (packs written while it ran), up to four times, and the commit-graph is
    written after it.
    Its pid, or None: one runs already, or git could not be started (one line in
    ``repack.log``). Never raises for a repack it could not start."""
    directory = os.path.join(common_dir, "prov")
    lock, log = os.path.join(directory, LOCK), os.path.join(directory, LOG)
    _reap()
    try:
        os.makedirs(directory, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.stat(lock).st_mtime > _STALE_SECONDS:
                os.unlink(lock)
        fd = take(lock)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        with contextlib.suppress(OSError):
            trim(log, _LOG_LIMIT, 100)
        args = ["repack", f"--geometric={GEOMETRIC_FACTOR}", "-d", "-q", *(["--write-midx"] if write_midx else [])]
        try:
            wrap = ("sh", "-c", _DRAIN % _ROUNDS, "prov-repack", pack_dir, str(limit), common_dir) \
                if pack_dir is not None and limit is not None else ()
            pid = gitbin.detach(args, git_dir=common_dir, drop=_DROP, log=log, wrap=wrap)
        except ProvError as exc:
            with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as f:
                f.write(f"prov: git repack not started: {exc}\n")
            with contextlib.suppress(OSError):
                os.unlink(lock)
            return None
        _children.add(pid)
        with contextlib.suppress(OSError):  # background work: behind the user's own (git's pack-objects inherits it)
            os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10))
        with contextlib.suppress(OSError):  # the lock names the repack from now on
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(pid).encode(), 0)
        return pid
    finally:
        os.close(fd)
