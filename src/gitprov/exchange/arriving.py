"""Checking the records and states of a pull's pack while git receives it.

git copies the pack it receives to a file (``GIT_TRACE_PACKFILE``) as it reads it; a
thread follows that file as it grows and, for every small blob it can resolve
(``store/packstream.py``), runs the content checks a record or a state gets in
validation (``validate.precheck``). Validation after the fetch then asks git only for
the blobs this did not clear: on a first pull, instead of ``git cat-file`` inflating
every record and state a second time after the fetch, they are inflated and checked
on the other core while git's ``index-pack`` works.

Nothing here decides alone. A blob's id is the hash of the content that was checked, so
a pack cannot get an id cleared with other content; what is cleared is used only when
the fetch succeeded (git has checked every object, ``fetch.fsckObjects``), and only for
the checks of the content itself: validation still lists every path, checks names,
modes and sizes, and compares a run's state with this clone's. Anything the reader does
not follow (a malformed or truncated stream, a thin pack's base, a delta whose base it
no longer holds) is simply not cleared, and read from git as before.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time

from ..store.packstream import scan_blobs
from ..store.repo import GitRepository
from .blobs import LIMITS
from .validate import precheck

__all__ = ["Arriving", "Cleared"]

#: bytes of resolved blobs kept as delta bases (the other blobs' deltas are left to git)
CACHE_BYTES = 128 << 20
#: how often the follower looks for more of the file while git is still writing it
_POLL = 0.005


class Arriving:
    """The blobs of one fetch's pack, checked as they arrive: ``env()`` for the fetch,
    then ``finish(ok)`` gives the ids cleared (``Cleared``) or None."""

    def __init__(self, repo: GitRepository) -> None:
        self.hash_name = repo.fmt.name
        _remove_stale(repo.git_dir)
        fd, self.path = tempfile.mkstemp(prefix=_PREFIX, suffix=".pack", dir=repo.git_dir or None)
        os.close(fd)
        self.cleared: dict[bytes, tuple[str, str | None]] = {}
        self._fetched = threading.Event()  # git has exited: the file is whole
        self._failed = threading.Event()  # the fetch failed: nothing is needed any more
        self._thread = threading.Thread(target=self._follow, name="prov-arriving", daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """What the fetch's environment needs: git's copy of the pack goes to our file."""
        return {"GIT_TRACE_PACKFILE": os.path.abspath(self.path)}

    def finish(self, ok: bool) -> Cleared | None:
        """The fetch has ended (``ok``: it succeeded): what was cleared, or None."""
        if not ok:
            self._failed.set()
        self._fetched.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        return Cleared(self.cleared) if ok else None

    def _follow(self) -> None:
        try:
            with open(self.path, "rb", buffering=0) as f:
                for oid, data in scan_blobs(self._reader(f), hash_name=self.hash_name, max_size=_MAX_SIZE,
                                            cache_bytes=CACHE_BYTES):
                    if self._failed.is_set():
                        return
                    found = precheck(data)
                    if found is not None:
                        self.cleared[oid] = found
        except Exception:  # noqa: BLE001 - a PackStreamError, an OSError or anything else: never the pull's
            pass  # what was cleared so far stands; the rest is read from git

    def _reader(self, f):
        """``read(n)`` of the file as git writes it: waits for more while git runs."""
        fetched, failed = self._fetched, self._failed

        def read(n: int) -> bytes:
            while True:
                data = f.read(n)
                if data or failed.is_set():
                    return data or b""
                if fetched.is_set():
                    return f.read(n) or b""
                fetched.wait(_POLL)
        return read


def _remove_stale(git_dir: str | None) -> None:
    """Remove the copies of packs left by pulls that were killed (unchanged for an hour:
    git appends to a live one as the pack arrives)."""
    if not git_dir:
        return
    with contextlib.suppress(OSError):
        for entry in os.scandir(git_dir):
            if entry.name.startswith(_PREFIX) and entry.name.endswith(".pack"):
                with contextlib.suppress(OSError):
                    if time.time() - entry.stat().st_mtime > _STALE:
                        os.unlink(entry.path)


_PREFIX = "prov-pack-"
#: seconds after which a copy of a pack nobody writes to is a killed pull's
_STALE = 3600
#: the largest blob checked as it arrives: within the limit of every kind cleared
_MAX_SIZE = min(LIMITS["record"], LIMITS["state"])


class Cleared:
    """Blob ids whose content passed a record's or a state's checks as it arrived."""

    __slots__ = ("_ids",)

    def __init__(self, ids: dict[bytes, tuple[str, str | None]]) -> None:
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, oid: str) -> tuple[str, str | None] | None:
        """``("record", the commit it names)``, ``("state", None)``, or None (not cleared)."""
        try:
            return self._ids.get(bytes.fromhex(oid))
        except ValueError:
            return None
