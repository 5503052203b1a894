"""A cold build's decoding in a process of its own.

In one process, the thread inserting rows and the thread decoding runs share the GIL:
``sqlite3`` binds each row's values holding it, and lets go of it for every row it
steps, so at 100,000 runs the inserting thread took ~14 s of wall time for ~7 s of CPU
while the decoding thread waited for it. Here a child Python process reads the runs
(``reading.read_run_blobs``: its own ``git cat-file``), decodes them and makes their
rows (``rows.RunRows``, ids numbered from where the index's tables end), and hands
each batch over as one msgpack frame (exact for every value a row holds: text, bytes,
64-bit integers, floats bit for bit, None); this process only inserts them.

Anything that goes wrong in the child — it cannot start, a run it cannot read (a
missing object, a record that fails to decode), git or the child dying mid-stream —
ends it, and ``BuildChildError`` tells the caller to roll back what was inserted and build
in-process instead, where the same run gives the same error or is left out the same
way. Nothing the child made is kept unless it ends having sent every run.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BuildChildError

if TYPE_CHECKING:
    from .reading import RunBlobs

__all__ = ["CHILD", "BuildChildError", "child_batches", "start_child", "stop_child"]

#: whether a cold build decodes in a child process (False: in this one, ``rows.RunRows``' thread)
CHILD = True

_FRAME = struct.Struct("<Q")
#: runs whose blobs the reading process sends in one frame (``_read_in_a_fork``), and
#: frames read ahead of the rows being made (~4.5 MB)
_BLOB_FRAME = 256
_BLOBS_AHEAD = 8
#: frames read ahead of the inserts (each a batch of runs' rows, a few MB)
_AHEAD = 2
#: environment variables that would point the child's git elsewhere than the parent's repository
_GIT_ENV = ("GIT_DIR", "GIT_COMMON_DIR", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_INDEX_FILE")


def start_child() -> subprocess.Popen:
    """The child process of ``child_batches``, started before its request is known: its
    interpreter and imports (~0.2 s) overlap the parent's tree pass. Raises
    ``BuildChildError`` when it cannot start."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV}
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # gitprov's parent
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        return subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, bufsize=1 << 16)
    except OSError as exc:
        raise BuildChildError(f"cannot start {sys.executable}: {exc}") from exc


def stop_child(proc: subprocess.Popen) -> None:
    """End a child ``start_child`` started that is not used after all."""
    proc.kill()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    proc.wait()


def child_batches(git_dir: str, runs: Sequence[tuple[str, str]], blob_ids: bytes,
                  start: dict[str, Any], batch: int, proc: subprocess.Popen | None = None,
                  log: bool = False) -> Iterator[dict[str, list]]:
    """The rows of ``runs`` (``RunRows.add``), a batch of tables at a time, made by a
    child process reading the repository at ``git_dir`` (``proc``, from ``start_child``,
    or one started now); ``start``: ``RunRows.start()`` of the index they go into;
    ``log``: ``runs`` are format 4's ``(run id, run blob id)``, ``blob_ids`` empty. Raises
    ``BuildChildError`` (after every batch it could send) unless every run came."""
    import msgspec

    if proc is None:
        proc = start_child()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    frames: queue.Queue[bytes | None] = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()
    errors: list[bytes] = []

    def feed() -> None:
        try:
            head = {"dir": git_dir, "runs": len(runs), "ids": len(blob_ids), "batch": batch, "log": log, **start}
            proc.stdin.write(json.dumps(head).encode() + b"\n")
            for at in range(0, len(runs), 4096):
                proc.stdin.write(b"".join(b"%s %s\n" % (r.encode(), t.encode()) for r, t in runs[at:at + 4096]))
            proc.stdin.write(blob_ids)
        except OSError:  # the child died: its output ends
            pass
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def read() -> None:
        """Frames off the pipe (``read`` lets go of the GIL while it waits), then None."""
        stdout = proc.stdout
        try:
            while len(size := stdout.read(_FRAME.size)) == _FRAME.size:
                (n,) = _FRAME.unpack(size)
                data = stdout.read(n)
                if len(data) != n or not put(data):
                    break
        finally:
            put(None)

    def put(item: bytes | None) -> bool:
        """``item`` queued, unless the consumer stops first."""
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def drain() -> None:
        errors.append(proc.stderr.read()[-2000:])

    threads = [threading.Thread(target=f, name=f"prov-build-{f.__name__}", daemon=True) for f in (feed, read, drain)]
    for thread in threads:
        thread.start()
    # tuples: what executemany binds, and untracked by the garbage collector (lists of
    # lists made it walk the heap over and over: 2.5x the decoding time)
    decode: Callable[[bytes], Any] = msgspec.msgpack.Decoder(dict[str, list[tuple] | int]).decode
    got = 0
    finished = False
    try:
        for data in iter(frames.get, None):
            tables = decode(data)
            if "done" in tables:
                finished = tables["done"] == len(runs) == got
                break
            got += tables.pop("count")
            yield tables
    finally:
        stop.set()
        if not finished:
            proc.kill()
        for thread in threads:
            thread.join()
        proc.stdout.close()
        proc.stderr.close()
        code = proc.wait()
    if not finished or code != 0:
        why = b"".join(errors).decode(errors="replace").strip().splitlines()
        raise BuildChildError(f"the decoding process ended after {got} of {len(runs)} runs (exit {code})"
                          + (f": {why[-1]}" if why else ""))


def _read_in_a_fork(repo: Any, runs: Sequence[tuple[str, str]], blob_ids: bytes,
                    log: bool = False) -> Iterator[RunBlobs]:
    """``read_packed_run_blobs`` in a process forked from this one (no thread runs yet):
    inflating the blobs and making the rows take two cores, not one. The blobs come over
    a pipe, ``_BLOB_FRAME`` runs a frame: their lengths, then their bytes. Raises
    ``BuildChildError`` when the reader did not send every run (its error on stderr)."""
    from .reading import RunBlobs, read_packed_run_blobs

    read_end, write_end = os.pipe()
    with contextlib.suppress(AttributeError, OSError):  # Linux: a pipe of 1 MiB, not 64 KiB
        import fcntl

        fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, 1 << 20)
    pid = os.fork()
    if pid == 0:  # the reader: never returns
        code = 1
        try:
            os.close(read_end)
            with open(write_end, "wb", buffering=1 << 20) as out:
                lengths: list[int] = []
                parts: list[bytes] = []
                for blobs in read_packed_run_blobs(repo, runs, blob_ids, log):
                    lengths += (len(blobs.record), len(blobs.state))
                    parts += (blobs.record, blobs.state)
                    if len(lengths) == 2 * _BLOB_FRAME:
                        out.write(struct.pack(f"<{len(lengths)}I", *lengths))
                        out.write(b"".join(parts))
                        lengths, parts = [], []
                if lengths:
                    out.write(struct.pack(f"<{len(lengths)}I", *lengths))
                    out.write(b"".join(parts))
            code = 0
        except BaseException as exc:  # told on stderr, the parent's last line of it
            with contextlib.suppress(BaseException):
                sys.stderr.write(f"reading the packs: {type(exc).__name__}: {exc}\n")
                sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_end)
    frames: queue.Queue[tuple[tuple[int, ...], bytes] | None] = queue.Queue(maxsize=_BLOBS_AHEAD)
    stop = threading.Event()

    def put(item: tuple[tuple[int, ...], bytes] | None) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                frames.put(item, timeout=0.1)
                return True
        return False

    def receive() -> None:
        """Frames off the pipe, ``_BLOBS_AHEAD`` at most waiting (``read`` lets go of the
        GIL): the reader is not held up while this process makes rows, nor is it the
        other way round."""
        try:
            with open(read_end, "rb", buffering=1 << 16) as pipe:
                for start in range(0, len(runs), _BLOB_FRAME):
                    count = min(_BLOB_FRAME, len(runs) - start)
                    head = pipe.read(8 * count)
                    if len(head) != 8 * count:
                        return
                    lengths = struct.unpack(f"<{2 * count}I", head)
                    data = pipe.read(sum(lengths))
                    if len(data) != sum(lengths) or not put((lengths, data)):
                        return
        finally:
            put(None)

    receiver = threading.Thread(target=receive, name="prov-build-blobs", daemon=True)
    receiver.start()
    sent, ended = 0, False
    try:
        for lengths, data in iter(frames.get, None):
            at = 0
            for k, (run_id, tree) in enumerate(runs[sent:sent + len(lengths) // 2]):
                record_end = at + lengths[2 * k]
                state_end = record_end + lengths[2 * k + 1]
                yield RunBlobs(run_id, tree, data[at:record_end], data[record_end:state_end])
                at = state_end
            sent += len(lengths) // 2
        ended = True  # the pipe ended: the reader is done, or failed and says why
    finally:
        stop.set()
        if not ended:  # given up before the pipe ended: the reader stops, and its pipe
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        receiver.join()
        _, status = os.waitpid(pid, 0)
    if status != 0 or sent != len(runs):
        raise BuildChildError(f"the process reading the packs ended after {sent} of {len(runs)} runs "
                              f"(status {status})")


class _RunList(Sequence[tuple[str, str]]):
    """``(run id, directory tree)`` pairs of hex ids held as one ``bytes`` of their raw
    ids (~40 bytes a run, where a list of tuples of two strings took ~240: 20 MB at
    100,000 runs, in the child and in the reader forked from it); a slice is a view."""

    __slots__ = ("data", "run_len", "size", "start", "stop")

    def __init__(self, data: bytes, run_len: int, tree_len: int, start: int = 0, stop: int | None = None) -> None:
        self.data, self.run_len, self.size = data, run_len, run_len + tree_len
        self.start, self.stop = start, len(data) // self.size if stop is None else stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[tuple[str, str]]:
        data, run_len, size = self.data, self.run_len, self.size
        for at in range(self.start * size, self.stop * size, size):
            yield data[at:at + run_len].hex(), data[at + run_len:at + size].hex()

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            first, last, step = k.indices(len(self))
            if step != 1:
                return [self[i] for i in range(first, last, step)]
            return _RunList(self.data, self.run_len, self.size - self.run_len, self.start + first,
                            self.start + max(first, last))
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        at = (self.start + k) * self.size
        return self.data[at:at + self.run_len].hex(), self.data[at + self.run_len:at + self.size].hex()


def _run_list(lines: Iterator[bytes]) -> Sequence[tuple[str, str]]:
    """The request's ``run_id tree`` lines as a ``_RunList`` when every run id and every
    tree is lowercase hex of one even length each (any ledger's), else as tuples."""
    data, sizes = bytearray(), None
    for line in lines:
        run_id, tree = line.decode().split()
        sizes = sizes or (len(run_id), len(tree))
        if (len(run_id), len(tree)) != sizes or sizes[0] % 2 or sizes[1] % 2 \
                or not _LOWER_HEX.issuperset(run_id + tree):  # tuples for all, the rest as they come
            done = list(_RunList(bytes(data), sizes[0] // 2, sizes[1] // 2)) if data else []
            return [*done, (run_id, tree), *(tuple(rest.decode().split()) for rest in lines)]
        data += bytes.fromhex(run_id + tree)
    return _RunList(bytes(data), sizes[0] // 2, sizes[1] // 2) if sizes else []


_LOWER_HEX = frozenset("0123456789abcdef")


def _main() -> int:
    """The child: read the request on stdin, write a frame per batch on stdout."""
    import msgspec

    from ..store.repo import GitRepository
    from .reading import read_packed_run_blobs
    from .rows import RunRows

    gc.disable()  # millions of short-lived rows, no cycles: a collection finds nothing to free
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    head = json.loads(stdin.readline())
    runs = _run_list(stdin.readline() for _ in range(head["runs"]))
    blob_ids = stdin.read(head["ids"])
    repo = GitRepository.open(head["dir"], require_work_tree=False)
    encode = msgspec.msgpack.Encoder().encode

    def send(tables: dict[str, list], count: int) -> None:
        data = encode({**tables, "count": count})
        stdout.write(_FRAME.pack(len(data)) + data)

    rows = RunRows.detached(head, send)
    read = _read_in_a_fork if hasattr(os, "fork") else read_packed_run_blobs
    for blobs in read(repo, runs, blob_ids, bool(head.get("log"))):
        rows.add(blobs)
    rows.flush()
    data = encode({"done": len(runs)})
    stdout.write(_FRAME.pack(len(data)) + data)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
