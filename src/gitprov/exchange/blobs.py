"""Reading the blobs a remote brings, with bounded memory (DESIGN.md §8): each blob's
size before its content, the content of those within their limit handed to a check.

The blobs that are decoded (records, states, chunks, summaries, the format marker,
notes) go to one ``git cat-file --batch``, whose answer gives each blob's type and size
before its content: a blob over its limit (``LIMITS``) is passed over in small pieces,
never held or decoded. Artifacts and patches are checked by size alone (``git cat-file
--batch-check``), never read. The requests, the sizes and the contents are handled by
three threads joined by pipes to git, so git reads objects (in C) while Python decodes,
and what is in flight is bounded by the pipes. What the blobs must hold — and the names,
modes and paths that make them jobs — is ``validate.py``'s.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ..errors import DataError
from ..store import catfile
from ..store.repo import GitRepository

__all__ = ["LIMITS", "MAX_REPORTED", "Job", "Verdict", "check_blobs", "where_of"]

#: Largest sizes accepted from a remote, in bytes.
LIMITS = {
    "record": 1 << 20,
    "state": 16 << 20,
    "chunk": 64 << 20,
    "summary": 4 << 20,
    "artifact": 1 << 30,
    "code.patch": 256 << 20,
    "note": 16 << 20,
    "format": 4096,
}
#: a run blob of format 4 holds a record and a state
LIMITS["run"] = LIMITS["record"] + LIMITS["state"] + 64
#: a first pull reads every record and state of the pack it brought, in tree order, not
#: pack order: small windows (``catfile.BOUNDED``) are mapped and unmapped again and again
#: (seconds of system time at 100,000 runs), and a small delta-base cache resolves the
#: same delta chains again and again (half of git's time). Wider windows and a larger
#: cache, still bounded (mapped pages are the pack's own, clean and shared).
_WIDE = ("-c", "core.packedGitWindowSize=64m", "-c", "core.packedGitLimit=256m")
#: problems collected before a check stops
MAX_REPORTED = 20
#: how a blob over its limit is passed over: read and dropped in pieces this size
_SKIP = 1 << 20


class Verdict:
    """What validating one ref found: problems (empty: fine), and what the new data holds."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        #: commits the validated records were made at (to keep from ``git gc``)
        self.pinned: set[str] = set()
        #: ids of the run directories the remote adds
        self.added: list[str] = []
        #: run directories (or notes) checked
        self.checked = 0
        #: a log's merge bases and what the validated tip wrote above them (``validate_log``):
        #: the merge's, when the local tip has not moved since (not folded twice)
        self.fold: tuple[list[str], dict[str, str]] | None = None
        self._lock = threading.Lock()

    def add(self, message: str) -> None:
        with self._lock:
            if len(self.problems) < MAX_REPORTED:
                self.problems.append(message)

    def full(self) -> bool:
        return len(self.problems) >= MAX_REPORTED


class Job(NamedTuple):
    """A blob to check: ``kind`` says which limit and which check (``_SIZED`` kinds are
    checked by size alone), ``arg`` what the check needs (a run id, a path, ...)."""

    oid: str
    kind: str
    arg: Any


#: kinds of blobs checked by their size alone, never read
_SIZED = frozenset(("artifact", "code.patch"))
#: the limit of each kind (a key of ``LIMITS``)
_LIMIT_OF = {"run": "run", "record": "record", "link": "record", "state": "state", "series": "chunk", "observations": "chunk",
             "summaries": "summary", "format": "format", "note": "note", "artifact": "artifact", "code.patch": "code.patch"}


def where_of(job: Job) -> str:
    """What a problem with ``job``'s blob names."""
    kind, arg = job.kind, job.arg
    if kind in ("record", "state", "code.patch"):
        return f"run {arg[:12]}/{kind}"
    if kind == "run":
        return f"run {arg[:12]}"
    if kind == "link":
        return arg[0]
    if kind == "note":
        return f"note of {arg[:12]}"
    return arg if isinstance(arg, str) else kind  # chunks and artifacts: their path; the format marker


def check_blobs(repo: GitRepository, jobs: Iterator[Job], verdict: Verdict,
                check: Callable[[Job, bytes], None]) -> None:
    """Check every job's blob: its size, then (``check(job, content)``) its content.

    The blobs that are decoded go to one ``git cat-file --batch``, whose header gives
    the size before the content: within its limit the content is read and checked,
    over it the content is passed over in pieces, never held. Blobs checked by size
    alone go to a ``git cat-file --batch-check`` (started for the first of them). A
    thread lists the jobs and writes the requests, another reads the sizes, this one
    reads and checks the contents; each waits only on the pipe before it, whose size
    bounds what is in flight."""
    reader = catfile.start(repo, config=(*_WIDE, "-c", "core.deltaBaseCacheLimit=256m"))
    if reader is None:
        raise DataError("cannot validate fetched provenance: git cat-file cannot be started")
    wanted: deque[Job] = deque()
    sized: deque[Job] = deque()
    sizer: list[Any] = []  # the --batch-check process, once started
    failures: list[BaseException] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start_sizer() -> Any:
        proc = catfile.start(repo, check=True, config=_WIDE)
        if proc is None:
            raise DataError("cannot validate fetched provenance: git cat-file cannot be started")
        sizer.append(proc)
        thread = threading.Thread(target=check_sizes, args=(proc,), name="prov-validate-size", daemon=True)
        threads.append(thread)
        thread.start()
        return proc

    def ask() -> None:
        write = reader.stdin.write
        size_only = None
        try:
            for job in jobs:
                if stop.is_set():
                    break
                if job.kind in _SIZED:
                    size_only = size_only or start_sizer()
                    sized.append(job)
                    size_only.stdin.write(job.oid.encode() + b"\n")
                else:
                    wanted.append(job)
                    write(job.oid.encode() + b"\n")
        except (OSError, ValueError):
            pass  # git stopped: the answers read so far are all there will be
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            failures.append(exc)
        finally:
            close = getattr(jobs, "close", None)
            if close is not None:
                close()  # a listing left unfinished stops its git
            for proc in (reader, *sizer):
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()

    def check_sizes(proc) -> None:
        try:
            while True:  # to the end of git's answers (a killed git's end too)
                header = catfile.read_header(proc.stdout)
                if header is None:
                    break
                _sized(sized.popleft(), header, verdict)
        except (OSError, ValueError):
            pass
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    lister = threading.Thread(target=ask, name="prov-validate-list", daemon=True)
    lister.start()
    finished = False
    try:
        stdout = reader.stdout
        readline, read = stdout.readline, stdout.read
        while True:
            line = readline()
            parts = line.split()
            if len(parts) == 3 and parts[1] == b"blob" and line.endswith(b"\n") and parts[2].isdigit():
                job, size = wanted.popleft(), int(parts[2])  # the common answer, read at once
                within = size <= LIMITS[_LIMIT_OF[job.kind]] or _sized(job, catfile.Header(job.oid, "blob", size),
                                                                       verdict)
            else:
                header = catfile.parse_header(line)
                if header is None:
                    break
                job, size = wanted.popleft(), header.size
                within = _sized(job, header, verdict)  # missing, not a blob, or too big: a problem
                if header.type is None:
                    continue  # nothing follows "<oid> missing"
            if not within:  # passed over unread, a piece at a time
                if not _pass_over(read, size + 1):
                    break
                continue
            data = read(size + 1)
            if len(data) != size + 1:
                verdict.add(f"{where_of(job)}: object {job.oid} is missing")
                break
            check(job, data[:-1])
            if len(verdict.problems) >= MAX_REPORTED:
                break
        finished = not verdict.full()
    finally:
        stop.set()
        if not finished:
            _kill(reader, *sizer)
        lister.join()  # it closes the processes' input: they finish what they were asked
        if not finished:
            _kill(*sizer)  # one started meanwhile
        for thread in threads:
            thread.join()
        for proc in (reader, *sizer):
            _stop(proc)
    if failures:
        raise failures[0]
    if finished and (sized or wanted) and not verdict.full():
        raise DataError("cannot validate fetched provenance: git cat-file stopped answering")


def _sized(job: Job, header: catfile.Header, verdict: Verdict) -> bool:
    """Whether ``job``'s blob is there, a blob, and within its limit (else a problem)."""
    limit = LIMITS[_LIMIT_OF[job.kind]]
    if header.type is None:
        verdict.add(f"{where_of(job)}: object {job.oid} is missing")
    elif header.type != "blob":
        verdict.add(f"{where_of(job)}: is a {header.type}, must be a regular file")
    elif header.size > limit:
        verdict.add(f"{where_of(job)}: {header.size:,} bytes, more than the {limit:,} accepted")
    else:
        return True
    return False


def _pass_over(read, size: int) -> bool:
    """Read ``size`` bytes and drop them, a piece at a time (False: the output ended first)."""
    while size > 0:
        piece = read(min(size, _SKIP))
        if not piece:
            return False
        size -= len(piece)
    return True


def _kill(*procs) -> None:
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.kill()


def _stop(proc) -> None:
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError, ValueError):
            pipe.close()
    proc.wait()
