"""Reading the ``record`` and ``state`` blobs of many run directories at once.

The object layer reads one run as a tree and two blobs decoded in Python, pack deltas
applied in Python: ~0.4 ms a run, minutes for a cold index of 100,000 runs. Many runs
are read instead through one ``git cat-file --batch`` process (git's own pack reader
and delta cache, in C), asked for ``<run tree>:record`` and ``<run tree>:state`` in one
stream. Few runs (an incremental update, a page of query results) stay in-process: a
process start costs more than they do. Without a usable ``git`` binary, or in an
in-memory repository, everything goes through the object layer: slower, same bytes.
A run whose objects ``git`` reports missing is read again through the object layer,
so its error is the same on both paths; if ``git`` cannot read the repository at all
(an extension it does not know) or dies, the object layer reads the remaining runs.

A cold build reads every run: ``in_pack_order`` first reads the run trees (small, one
``git cat-file`` pass) for their record and state blob ids, and orders the runs by where
their blobs lie in the packs. Asked for in run-id order, blobs stored as deltas of one
another (``git fast-import``'s chains, a repack's) are resolved again and again once
git's delta-base cache is full: at 100,000 runs, 14 s of git's CPU instead of 5.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import NamedTuple

from ..errors import DataError
from ..store import catfile
from ..store.repo import GitRepository
from ..store.trees import read_tree

__all__ = ["BULK_MIN", "PAGE", "RunBlobs", "in_pack_order", "read_packed_run_blobs", "read_run_blobs",
           "read_run_pages"]

#: from this many runs on, one ``git cat-file --batch`` process reads them
BULK_MIN = 200
#: runs asked for at a time when ``runs`` is not a sequence (a streamed listing)
PAGE = 500
#: runs read from the packs at a time (``read_packed_run_blobs``): their blobs are found in
#: the pack indexes together, ~150 bytes a run while they are read. Large: a lookup is
#: cheapest when a fanout bucket's names are read once for many ids (``Pack.offsets_of``);
#: at 100,000 runs written one by one (1.6 million objects in the packs), 16,384 runs at a
#: time took the reader 4.4-5.0 s of CPU and one chunk 2.9-3.3 s, its peak 124 -> 137 MiB
_PACKED_CHUNK = 1 << 17
#: answers parsed ahead of the caller: ``_QUEUED`` chunks of ``_CHUNK`` blobs (a few MB)
_CHUNK = 64
_QUEUED = 64


class RunBlobs(NamedTuple):
    """The stored bytes of one run's ``record`` and ``state``; ``tree``: what they were
    read from (format 3: the run's directory; format 4: its run blob)."""

    run_id: str
    tree: str
    record: bytes
    state: bytes


def read_run_blobs(repo: GitRepository, runs: Iterable[tuple[str, str]], *,
                   bulk: bool | None = None, blob_ids: bytes = b"", log: bool | None = None) -> Iterator[RunBlobs]:
    """``RunBlobs`` for each ``(run id, run directory tree id)`` of ``runs``, in order
    (``log``, format 4: ``(run id, run blob id)``; None: as the repository's ledger is).

    ``runs`` is a sequence (all of it asked for at once) or any other iterable, drawn
    ``PAGE`` runs at a time (``read_run_pages``), so a caller can stream a listing of
    any length in bounded memory. ``bulk``: ``None`` chooses by count (``BULK_MIN``),
    ``True`` asks for the ``git cat-file`` path (still falling back when git cannot be
    started), ``False`` forces the object layer. ``blob_ids`` (``in_pack_order``, with ``runs`` a
    sequence): each run's record and state ids, asked for instead of their paths. Raises ``DataError`` for a run
    directory without a record or state, ``MissingObjectError`` for a missing object.
    """
    if log is None:
        log = ledger_is_log(repo)
    if not isinstance(runs, Sequence):
        source = iter(runs)
        head = list(islice(source, BULK_MIN))
        yield from read_run_pages(repo, chain([head] if head else [], _pages(source)),
                                  bulk=len(head) >= BULK_MIN if bulk is None else bulk, log=log)
        return
    if bulk is None:
        bulk = len(runs) >= BULK_MIN
    proc = (_start_cat_file(repo, in_order=True) if blob_ids or log else _start_cat_file(repo)) if bulk and runs else None
    if proc is None:
        for run_id, tree in runs:
            yield read_one(repo, run_id, tree)
        return
    yield from _read_with_git(repo, proc, iter([list(runs)]), ahead=None, blob_ids=blob_ids, log=log)


def ledger_is_log(repo: GitRepository) -> bool:
    """Whether the repository's ledger is format 4's log (its runs read from run blobs)."""
    from ..store.ledger import Ledger

    return Ledger(repo).is_log()


def in_pack_order(repo: GitRepository, runs: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], bytes]:
    """``runs`` ordered by where their record blobs lie in the packs, and the ids of
    their record and state blobs (``read_run_blobs``' ``blob_ids``: both raw ids of each
    run, in that order; zeros for a run whose record or state is not a plain file). As
    given, with no ids, when git cannot be asked or there are too few runs to matter;
    format 4's run blobs ordered by where they lie, with no ids (each is asked for by
    its own)."""
    if len(runs) < BULK_MIN:
        return list(runs), b""
    if ledger_is_log(repo):  # each run one blob, its id known: ordered by where it lies
        where = repo.odb.pack_positions([bytes.fromhex(oid) for _, oid in runs])
        repo.odb.drop_pages()
        return [runs[i] for i in sorted(range(len(runs)), key=where.__getitem__)], b""
    repo.odb.drop_pages()  # the shard trees' pages: a long history spreads them over the packs
    proc = _start_cat_file(repo, in_order=True)  # trees are small: few delta bases to keep
    if proc is None:
        return list(runs), b""
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            for start in range(0, len(runs), 4096):
                stdin.write(b"".join(b"%s\n" % tree.encode() for _, tree in runs[start:start + 4096]))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    writer = threading.Thread(target=feed, name="prov-cat-file-feed", daemon=True)
    writer.start()
    size = repo.odb.fmt.raw_len
    none = bytes(2 * size)
    pairs = bytearray()
    try:
        for _ in runs:
            head = stdout.readline().split()
            if len(head) != 3 or not head[2].isdigit():
                if len(head) == 2:  # missing: the run is read as before, its error the same
                    pairs += none
                    continue
                break  # git stopped
            body = stdout.read(int(head[2]) + 1)[:-1]
            pairs += (head[1] == b"tree" and _record_and_state(body, size)) or none
    finally:
        proc.kill()
        writer.join()
        stdout.close()
        proc.wait()
    pairs += none * (len(runs) - len(pairs) // (2 * size))
    step = 2 * size
    where = repo.odb.pack_positions([pairs[at:at + size] for at in range(0, len(pairs), step)])
    repo.odb.drop_pages()  # the lookups' pages of the pack indexes
    order = sorted(range(len(runs)), key=where.__getitem__)
    ordered = bytearray()
    for i in order:
        ordered += pairs[i * step:(i + 1) * step]
    return [runs[i] for i in order], bytes(ordered)


def read_packed_run_blobs(repo: GitRepository, runs: Sequence[tuple[str, str]], blob_ids: bytes,
                          log: bool = False) -> Iterator[RunBlobs]:
    """``RunBlobs`` of ``runs`` with their ``blob_ids`` (``in_pack_order``), read from the
    packs by this process (``odb.read_blobs``), ``_PACKED_CHUNK`` runs at a time. In pack
    order each blob is inflated once, its delta base kept from the blob before it; through
    ``git cat-file`` git inflated each twice (its cache keeps the bases it resolved, not
    the objects it answered) and Python parsed its answers: at 100,000 runs 6 s of git's
    CPU and 2.3 s of this process's against ~3 s. A run without ids is read as ``read_one``
    reads it; errors are ``read_one``'s (``MissingObjectError``, ``DataError``). ``log``:
    ``runs`` are ``(run id, run blob id)`` of format 4, and ``blob_ids`` is not read."""
    if log:
        yield from _read_packed_log(repo, runs)
        return
    step = 2 * repo.odb.fmt.raw_len
    half = step // 2
    none = bytes(step)
    for start in range(0, len(runs), _PACKED_CHUNK):
        chunk = runs[start:start + _PACKED_CHUNK]
        pairs = blob_ids[start * step:(start + len(chunk)) * step]
        ids = [pairs[at:at + half] for at in range(0, len(pairs), half)]
        wanted = [raw for k, raw in enumerate(ids) if pairs[(k >> 1) * step:((k >> 1) + 1) * step] != none]
        blobs = repo.odb.read_blobs(wanted)
        for k, (run_id, tree) in enumerate(chunk):
            if pairs[k * step:(k + 1) * step] == none:
                yield read_one(repo, run_id, tree)
            else:
                record = next(blobs)
                yield RunBlobs(run_id, tree, record, next(blobs))


def _read_packed_log(repo: GitRepository, runs: Sequence[tuple[str, str]]) -> Iterator[RunBlobs]:
    """``read_packed_run_blobs`` of format 4's run blobs: each read by its id, in the
    order given (``in_pack_order``'s), and decoded as ``read_one`` decodes it."""
    for start in range(0, len(runs), _PACKED_CHUNK):
        chunk = runs[start:start + _PACKED_CHUNK]
        blobs = repo.odb.read_blobs([bytes.fromhex(oid) for _, oid in chunk])
        for run_id, oid in chunk:
            yield _from_run_blob(repo, run_id, oid, next(blobs))


def _record_and_state(data: bytes, size: int) -> bytes | None:
    """The raw ids of a run tree's ``record`` and ``state``, one after the other, when
    both are plain files."""
    if len(data) == 2 * size + 27 and data.startswith(b"100644 record\x00") and \
            data[14 + size:27 + size] == b"100644 state\x00":  # what every run tree holds
        return data[14:14 + size] + data[27 + size:]
    record = state = None
    pos, end = 0, len(data)
    while pos < end:
        sp = data.find(b" ", pos)
        nul = data.find(b"\x00", sp)
        if sp < 0 or nul < 0 or nul + 1 + size > end:
            return None
        name = data[sp + 1:nul]
        if name == b"record" or name == b"state":
            if data[pos:sp] != b"100644":
                return None
            if name == b"record":
                record = data[nul + 1:nul + 1 + size]
            else:
                state = data[nul + 1:nul + 1 + size]
        pos = nul + 1 + size
    return record + state if record is not None and state is not None else None


def read_run_pages(repo: GitRepository, pages: Iterable[list[tuple[str, str]]], *,
                   bulk: bool = True, log: bool | None = None) -> Iterator[RunBlobs]:
    """``RunBlobs`` for the runs of each page of ``(run id, tree id)``, in order, through
    one ``git cat-file`` (``bulk``) or the object layer. A page is drawn from ``pages``
    when the one before it has begun to be yielded, so the first runs come as soon as
    the first page is answered, whatever it costs to make the next."""
    pages = iter(pages)
    proc = _start_cat_file(repo, buffered=False) if bulk else None
    if proc is None:
        for page in pages:
            for run_id, tree in page:
                yield read_one(repo, run_id, tree)
        return
    yield from _read_with_git(repo, proc, pages, ahead=1, log=ledger_is_log(repo) if log is None else log)


def _pages(source: Iterator[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    while page := list(islice(source, PAGE)):
        yield page


def read_one(repo: GitRepository, run_id: str, tree: str) -> RunBlobs:
    """One run through the object layer: from its directory (format 3) or its run blob
    (format 4), as the object is."""
    kind, data = repo.odb.read(tree)
    if kind == "blob":
        return _from_run_blob(repo, run_id, tree, data)
    entries = read_tree(repo.odb, tree)
    record, state = entries.get("record"), entries.get("state")
    if record is None or state is None or record.is_tree or state.is_tree:
        raise DataError(f"run {run_id[:12]} has no record or state in the ledger; run 'prov verify'")
    return RunBlobs(run_id, tree, repo.odb.read_typed(record.oid, "blob"), repo.odb.read_typed(state.oid, "blob"))


def _from_run_blob(repo: GitRepository, run_id: str, oid: str, data: bytes) -> RunBlobs:
    from ..store.ledger_log import decode_run_blob

    try:
        record, state = decode_run_blob(data, run_id, repo.fmt.hash_object)
    except ValueError as exc:
        raise DataError(f"{exc}; run 'prov verify'") from None
    return RunBlobs(run_id, oid, record, state)


def _start_cat_file(repo: GitRepository, buffered: bool = True, *, in_order: bool = False):  # -> subprocess.Popen | None
    """A ``git cat-file --batch`` process on ``repo`` (``catfile.start``), or None.
    ``buffered``: git holds its answers until its output buffer fills or its input ends
    (every request is written at once); otherwise each answer is flushed as it is made
    (requests come a page at a time, and the reader waits for the answers of the page
    before the last), and a streamed listing takes a smaller delta-base cache.
    ``in_order``: blobs asked for in pack order (``in_pack_order``) need few delta bases
    kept: at 100,000 runs a 16 MB cache costs no more time than git's 96 MB, and git's
    peak memory is 47 MB instead of 145."""
    config = ("-c", "core.deltaBaseCacheLimit=16m") if in_order else () if buffered else (
        "-c", "core.deltaBaseCacheLimit=32m")
    return catfile.start(repo, buffered=buffered, config=config)


class _GitGone(Exception):
    """``git cat-file`` stopped answering (could not read the repository, or died)."""


def _read_with_git(repo: GitRepository, proc, pages: Iterator[list[tuple[str, str]]],
                   ahead: int | None, blob_ids: bytes = b"", log: bool = False) -> Iterator[RunBlobs]:
    """Answers of ``proc`` for the runs of ``pages``. A writer thread sends the requests
    of each page handed to it (all of them when ``ahead`` is None, else ``ahead`` pages
    beyond the one being read); a reader thread parses the answers into a bounded
    queue, so git keeps working while the caller is busy with what it was given (a
    cold build inserting rows), and this generator pairs them with their runs. ``log``:
    each run is one run blob, asked for by its id."""
    stdin, stdout = proc.stdin, proc.stdout
    step = 2 * repo.odb.fmt.raw_len
    none = bytes(step)

    def lines(page: list[tuple[str, str]], start: int) -> bytes:
        """The requests for ``page[start:start + 4096]``: its blobs by id where ``blob_ids``
        has them (given with a single page, every run at once), else by path."""
        if log:
            return b"".join(b"%s\n" % tree.encode() for _, tree in page[start:start + 4096])
        out = []
        for k, (_, tree) in enumerate(page[start:start + 4096], start):
            pair = blob_ids[k * step:(k + 1) * step]
            if pair and pair != none:
                out.append(b"%s\n%s\n" % (pair[:step // 2].hex().encode(), pair[step // 2:].hex().encode()))
            else:
                out.append(b"%s:record\n%s:state\n" % (tree.encode(), tree.encode()))
        return b"".join(out)

    requests: queue.SimpleQueue[list[tuple[str, str]] | None] = queue.SimpleQueue()
    answers: queue.Queue[list[bytes | None] | BaseException] = queue.Queue(maxsize=_QUEUED)
    stop = threading.Event()

    def feed() -> None:
        try:
            for page in iter(requests.get, None):
                for start in range(0, len(page), 4096):  # a page may be every run of a cold build
                    stdin.write(lines(page, start))
                stdin.flush()
        except OSError:  # git died: the reader sees the end of its output
            pass
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def put(item: list[bytes | None] | BaseException) -> bool:
        while not stop.is_set():
            try:
                answers.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    # every request written at once: the last answers come with the end of git's output;
    # a page at a time: each answer is passed on as it comes, or a page would wait on the next
    size = _CHUNK if ahead is None else 1

    def parse() -> None:
        chunk: list[bytes | None] = []
        try:
            while True:
                chunk.append(_next_blob(stdout))
                if len(chunk) >= size:
                    if not put(chunk):
                        return
                    chunk = []
        except (_GitGone, DataError) as exc:  # the end of git's output, or an answer that makes no sense
            if not chunk or put(chunk):
                put(exc)

    def received() -> Iterator[bytes | None]:
        while True:
            item = answers.get()
            if isinstance(item, BaseException):
                raise item
            yield from item

    sent: deque[list[tuple[str, str]]] = deque()

    def send() -> bool:
        page = next(pages, None)
        requests.put(page)
        if page is None:
            return False
        sent.append(page)
        return True

    writer = threading.Thread(target=feed, name="prov-cat-file-feed", daemon=True)
    reader = threading.Thread(target=parse, name="prov-cat-file-read", daemon=True)
    writer.start()
    reader.start()
    more = send()
    while more and ahead is None:
        more = send()
    done = 0  # runs of sent[0] answered
    finished = False
    blobs = received()
    try:
        while sent:
            page = sent[0]
            while done < len(page):
                run_id, tree = page[done]
                record = next(blobs)
                state = record if log else next(blobs)
                if record is None or state is None:
                    # git says missing: the object layer names what is wrong (or finds it)
                    yield read_one(repo, run_id, tree)
                elif log:  # the one blob is the run blob
                    yield _from_run_blob(repo, run_id, tree, record)
                else:
                    yield RunBlobs(run_id, tree, record, state)
                done += 1
                while more and ahead is not None and len(sent) <= ahead:
                    more = send()
            sent.popleft()
            done = 0
        finished = True
    except _GitGone:
        pass  # e.g. a repository extension this git does not know: the object layer reads on
    finally:
        stop.set()
        if not finished:
            proc.kill()
            requests.put(None)
        writer.join()
        reader.join()
        stdout.close()
        proc.wait()
    if finished:
        return
    rest = chain([sent.popleft()[done:]] if sent else [], sent, pages if more else [])
    for page in rest:
        for run_id, tree in page:
            yield read_one(repo, run_id, tree)


def _next_blob(stdout) -> bytes | None:
    """The next answer of ``cat-file --batch``: a blob's bytes, or None when missing."""
    line = stdout.readline()
    parts = line.split()
    if len(parts) == 3 and parts[1] == b"blob" and parts[2].isdigit() and line[-1:] == b"\n":  # the usual answer
        size = int(parts[2])
        data = stdout.read(size + 1)
        if len(data) != size + 1:
            raise _GitGone
        return data[:size]
    header = catfile.parse_header(line)
    if header is None:
        raise _GitGone
    if header.type is None:
        return None
    data = stdout.read(header.size + 1)
    if len(data) != header.size + 1:
        raise _GitGone
    if header.type != "blob":
        raise DataError(f"object {header.oid} is a {header.type}, expected a blob")
    return data[:header.size]
