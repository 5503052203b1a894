"""Checking the records, states and chunks of a pull's pack while git receives it.

git copies the pack it receives to a file (``GIT_TRACE_PACKFILE``) as it reads it; a
reader follows that file as it grows and, for every small blob it can resolve
(``store/packstream.py``), runs the content checks a record, a state, a format-4 run
blob, a chunk or a summary gets in validation (``blob_content.precheck``). Validation after the fetch then
asks git only for the blobs this did not clear: on a first pull, instead of ``git
cat-file`` inflating each of them a second time after the fetch, they are inflated and
checked while git's ``index-pack`` works.

The reader is a process forked from this one when it can be (no other thread runs, and
the platform forks): it sends the ids it clears over a pipe as it goes, so that once
git has exited the reader's last part and validation's listing of the fetched tree run
on two cores, not one (``Cleared.finished``: validation sets aside the jobs it does not
know about yet). Otherwise it is a thread of this process, as before.

Nothing here decides alone. A blob's id is the hash of the content that was checked, so
a pack cannot get an id cleared with other content; what is cleared is used only when
the fetch succeeded (git has checked every object, ``fetch.fsckObjects``), and only for
the checks of the content itself: validation still lists every path, checks names,
modes and sizes, and compares a run's state with this clone's. Anything the reader does
not follow (a malformed or truncated stream, a thin pack's base, a delta whose base it
no longer holds, a reader that dies) is simply not cleared, and read from git as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

from ..store.packstream import scan_blobs
from ..store.repo import GitRepository
from .blob_content import precheck
from .blobs import LIMITS

__all__ = ["Arriving", "Cleared"]

#: bytes of resolved blobs kept as delta bases (the other blobs' deltas are left to git):
#: a reader thread of this process, which also holds the ids cleared (~100 bytes each)
CACHE_BYTES = 128 << 20
#: the same, for a forked reader, which sends its ids away: the same peak memory as the
#: thread's (~200 MiB at 100,000 runs, git's ``index-pack`` ~213 MiB), and 2,812 blobs of
#: the 100,000-run benchmark's pack left to git instead of 8,462
FORKED_CACHE_BYTES = 160 << 20
#: whether the reader may be a forked process (False: always a thread of this one)
FORK = True
#: how often the follower looks for more of the file while git is still writing it
_POLL = 0.005
#: ids the forked reader sends in one frame
_FRAME = 1024
_LENGTH = struct.Struct("<I")
#: what the forked reader is told on its control pipe: git succeeded / failed
_OK, _FAILED = b"+", b"-"


class Arriving:
    """The blobs of one fetch's pack, checked as they arrive: ``env()`` for the fetch,
    then ``finish(ok)`` gives the ids cleared (``Cleared``) or None."""

    def __init__(self, repo: GitRepository) -> None:
        self.hash_name = repo.fmt.name
        self.id_size = repo.fmt.raw_len
        _remove_stale(repo.git_dir)
        fd, self.path = tempfile.mkstemp(prefix=_PREFIX, suffix=".pack", dir=repo.git_dir or None)
        os.close(fd)
        self.cleared: dict[bytes, tuple[str, str | None]] = {}
        self._done = threading.Event()  # every id the reader will clear is in ``cleared``
        self._fetched = threading.Event()  # git has exited: the file is whole
        self._failed = threading.Event()  # the fetch failed: nothing is needed any more
        self._pid: int | None = None
        self._control: int | None = None
        self._lock = threading.Lock()  # the forked reader is signalled or reaped, not both at once
        self._reaped = False
        if not (FORK and hasattr(os, "fork") and threading.active_count() == 1 and self._fork()):
            self._thread = threading.Thread(target=self._follow, name="prov-arriving", daemon=True)
            self._thread.start()

    def env(self) -> dict[str, str]:
        """What the fetch's environment needs: git's copy of the pack goes to our file."""
        return {"GIT_TRACE_PACKFILE": os.path.abspath(self.path)}

    def finish(self, ok: bool) -> Cleared | None:
        """The fetch has ended (``ok``: it succeeded): what was cleared, or None. A forked
        reader goes on reading what git left in the file (it holds it open); the
        ``Cleared`` fills as it does."""
        if not ok:
            self._failed.set()
        self._fetched.set()
        if self._pid is None:
            self._thread.join()
            self._done.set()
        else:
            with contextlib.suppress(OSError):
                os.write(self._control, _OK if ok else _FAILED)
            with contextlib.suppress(OSError):
                os.close(self._control)
            if not ok:
                self._stop()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        return Cleared(self.cleared, self._done, self._stop if self._pid is not None else None) if ok else None

    # -- the reader, a thread of this process --------------------------------------------
    def _follow(self) -> None:
        try:
            with open(self.path, "rb", buffering=0) as f:
                for oid, found in _checked(self._reader(f), self.hash_name, CACHE_BYTES):
                    if self._failed.is_set():
                        return
                    self.cleared[oid] = found
        except Exception:  # noqa: BLE001 - a PackStreamError, an OSError or anything else: never the pull's
            pass  # what was cleared so far stands; the rest is read from git

    def _reader(self, f) -> Callable[[int], bytes]:
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

    # -- the reader, a forked process ----------------------------------------------------
    def _fork(self) -> bool:
        """Start the reader in a process of its own (False: it cannot be forked)."""
        try:
            pack = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        control_r, control_w = os.pipe()
        results_r, results_w = os.pipe()
        with contextlib.suppress(AttributeError, OSError):  # Linux: a pipe of 1 MiB, not 64 KiB
            import fcntl

            fcntl.fcntl(results_r, fcntl.F_SETPIPE_SZ, 1 << 20)
        try:
            pid = os.fork()
        except OSError:
            for fd in (pack, control_r, control_w, results_r, results_w):
                os.close(fd)
            return False
        if pid == 0:  # the reader: never returns
            code = 1
            try:
                _keep_only(pack, control_r, results_w)
                _send_cleared(pack, control_r, results_w, self.hash_name)
                code = 0
            except BaseException:  # noqa: BLE001 - what was sent stands; the rest is read from git
                pass
            finally:
                os._exit(code)
        for fd in (pack, control_r, results_w):
            os.close(fd)
        self._pid, self._control = pid, control_w
        self._thread = threading.Thread(target=self._receive, args=(results_r,), name="prov-arriving", daemon=True)
        self._thread.start()
        return True

    def _receive(self, fd: int) -> None:
        """The forked reader's frames into ``cleared``, until its pipe ends."""
        size, cleared, records = self.id_size, self.cleared, {}
        try:
            import msgspec

            decode = msgspec.msgpack.Decoder(tuple[bytes, bytes, list[str | None]]).decode
            with open(fd, "rb") as pipe:
                while len(head := pipe.read(4)) == 4:
                    payload = pipe.read(_LENGTH.unpack(head)[0])
                    kinds, ids, commits = decode(payload)
                    if len(ids) != len(kinds) * size:
                        break
                    for i, (kind, commit) in enumerate(zip(kinds, commits, strict=True)):
                        oid = ids[i * size:(i + 1) * size]
                        if kind == _RUN:  # a run blob: its record's id and commit
                            cleared[oid] = ("run", commit)
                        elif kind != 0x72:  # not a record: what it was cleared as has no commit
                            cleared[oid] = _BY_BYTE[kind]
                        elif (found := records.get(commit)) is not None:
                            cleared[oid] = found
                        else:
                            cleared[oid] = records[commit] = ("record", commit)
        except Exception:  # noqa: BLE001 - a frame cut short (the reader died): what came before stands
            pass
        finally:
            with self._lock, contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
                self._reaped = True
            self._done.set()

    def _stop(self) -> None:
        """End the forked reader now (nothing more it clears is wanted), and wait for it."""
        if not self._done.is_set():
            with self._lock, contextlib.suppress(OSError):
                if not self._reaped:  # never a signal to a pid that may have been reused
                    os.kill(self._pid, signal.SIGKILL)
        self._thread.join()


def _checked(read: Callable[[int], bytes], hash_name: str,
             cache_bytes: int) -> Iterator[tuple[bytes, tuple[str, str | None]]]:
    """``(id, what it was cleared as)`` of each blob of the pack ``read`` streams that
    passes ``precheck``."""
    for oid, data in scan_blobs(read, hash_name=hash_name, max_size=_MAX_SIZE, cache_bytes=cache_bytes):
        found = precheck(data, hash_name)
        if found is not None:
            yield oid, found


def _keep_only(*fds: int) -> None:
    """In the forked reader: every descriptor but ``fds`` closed, and the standard ones
    on the null device, so that no pipe of this process's (to a ``git cat-file``, or a
    caller reading its output to the end) stays open because the reader holds it."""
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    low = 3
    for fd in sorted({*fds, null}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _max_fd())
    if null > 2:
        os.close(null)


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 1 << 20)
    except (AttributeError, ValueError, OSError):
        return 1 << 16


def _send_cleared(pack: int, control: int, out: int, hash_name: str) -> None:
    """The forked reader: the pack file ``pack`` as git writes it (``control`` says when
    git has exited, and how), the ids it clears to ``out`` in frames (``_FRAME``)."""
    import msgspec

    encode = msgspec.msgpack.encode
    state: list[bytes] = []  # the last thing read on ``control``

    waiting = select.poll()  # poll, not select: the descriptor may be past select's 1024
    waiting.register(control, select.POLLIN | select.POLLHUP)

    def read(n: int) -> bytes:
        while True:
            data = os.read(pack, n)
            if data:
                return data
            if state:
                return os.read(pack, n) if state[0] == _OK else b""
            if waiting.poll(_POLL * 1000):
                state.append(os.read(control, 1) or _FAILED)  # closed unsaid: this process's parent died
                if state[0] != _OK:
                    return b""

    kinds, ids, commits = bytearray(), bytearray(), []

    def send() -> None:
        payload = encode((bytes(kinds), bytes(ids), commits))
        os.write(out, _LENGTH.pack(len(payload)))
        view = memoryview(payload)
        while view:
            view = view[os.write(out, view):]
        kinds.clear()
        ids.clear()
        commits.clear()

    try:
        for oid, (kind, commit) in _checked(read, hash_name, FORKED_CACHE_BYTES):
            kinds.append(_BYTE_OF[kind])
            ids += oid
            commits.append(commit)
            if len(commits) == _FRAME:
                send()
    finally:  # a malformed stream ends the reading: what was cleared before it is sent
        if commits:
            send()


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
#: what the forked reader sends for each kind it clears (a record also sends its commit)
_BYTE_OF = {"record": 0x72, "state": 0x73, "series": 0x6D, "observations": 0x6F, "summaries": 0x75, "run": 0x52}
_RUN = _BYTE_OF["run"]
_BY_BYTE = {byte: (kind, None) for kind, byte in _BYTE_OF.items() if kind not in ("record", "run")}


class Cleared:
    """Blob ids whose content passed a record's, a state's, a run blob's or a chunk's checks as it arrived; while
    a forked reader still runs, more come in (``finished``: no more will)."""

    __slots__ = ("_done", "_ids", "_stop")

    def __init__(self, ids: dict[bytes, tuple[str, str | None]], done: threading.Event | None = None,
                 stop: Callable[[], None] | None = None) -> None:
        self._ids = ids
        if done is None:
            done = threading.Event()
            done.set()
        self._done = done
        self._stop = stop

    def __len__(self) -> int:
        self.wait()
        return len(self._ids)

    @property
    def finished(self) -> bool:
        """Whether every id that will be cleared is in (a None from ``get`` is then final)."""
        return self._done.is_set()

    def wait(self) -> None:
        """Until the reader has sent everything it clears."""
        self._done.wait()

    def close(self) -> None:
        """Nothing more is wanted: a reader still running is stopped."""
        if self._stop is not None and not self._done.is_set():
            self._stop()

    def get(self, oid: str) -> tuple[str, str | None] | None:
        """``("record", the commit it names)``, ``(kind, None)`` for a state or a chunk, or
        None (not cleared, or not yet: see ``finished``)."""
        try:
            return self._ids.get(bytes.fromhex(oid))
        except ValueError:
            return None
