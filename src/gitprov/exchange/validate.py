"""Checking provenance fetched from a remote before it is merged (DESIGN.md §8).

Only what the remote adds or changes relative to the local copy is looked at, as
``git diff-tree`` lists it (identical subtrees are never read): each entry's path,
name and mode first; then every blob's size, asked of ``git cat-file --batch-check``,
so nothing over its limit is ever read; then, through one ``git cat-file --batch``, the
blobs that are decoded (records, states, metric and observation chunks, the format
marker, notes), one at a time. Artifacts and patches are checked by size alone, never
read. The listing and both git processes are streamed through a short pipeline, so
memory stays bounded whatever the ledger's size or a blob's, and git reads objects
while Python decodes. git itself has already checked the objects' syntax and ids
(prov fetches with ``fetch.fsckObjects``), so a blob's id is the hash of its content;
these checks are about meaning: names, modes, sizes, format versions, run ids that
match their records, runs listed under the commit their record names.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import NamedTuple

from .. import codec
from ..errors import DataError, ProvError
from ..keys import check_key, key_from_name
from ..model import RunRecord, RunState
from ..runs.series import decode_metric_chunk, decode_observation_chunk
from ..runs.summary import decode_metric_summary
from ..store import catfile
from ..store.notes import split_note
from ..store.objects import MODE_BLOB, MODE_TREE
from ..store.repo import GitRepository
from .diff import DiffEntry, diff_entries
from .remote_values import check_record_values, check_state_values, rewrites_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .progress import Progress

__all__ = ["LIMITS", "Verdict", "validate_ledger", "validate_notes"]

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
#: a first pull reads every object of the pack it brought, in tree order, not pack order:
#: windows of 1 MB (``catfile.BOUNDED``) are mapped and unmapped again and again (seconds
#: of system time at 100,000 runs), and a small delta-base cache resolves the same delta
#: chains again and again (half of git's time). Wider windows and a larger cache, still bounded.
_WIDE = ("-c", "core.packedGitWindowSize=32m", "-c", "core.packedGitLimit=128m")
_CHUNK_NAME = re.compile(r"[0-9a-f]{8}-[0-9]{8}\Z")
_WRITER = re.compile(r"[0-9a-f]{8}\Z")
_MAX_REPORTED = 20


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
        self._lock = threading.Lock()

    def add(self, message: str) -> None:
        with self._lock:
            if len(self.problems) < _MAX_REPORTED:
                self.problems.append(message)

    def full(self) -> bool:
        return len(self.problems) >= _MAX_REPORTED


class _Job(NamedTuple):
    """A blob to size, and to read and ``check`` when ``check`` is not None."""

    oid: str
    where: str
    limit: int
    check: Callable[[bytes, str], None] | None


def validate_ledger(repo: GitRepository, ours: str | None, theirs: str | None,
                    progress: Progress | None = None) -> Verdict:
    """Check what ledger tree ``theirs`` adds to ``ours`` (None: an empty ledger)."""
    verdict = Verdict()
    if theirs is None or theirs == ours:
        return verdict
    _run(repo, _LedgerCheck(repo, verdict, progress, ours).jobs(diff_entries(repo, ours, theirs)), verdict)
    if progress is not None:
        progress.done("checking runs", verdict.checked)
    return verdict


def validate_notes(repo: GitRepository, ours: str | None, theirs: str | None) -> Verdict:
    """Check the notes that notes tree ``theirs`` adds or changes relative to ``ours``."""
    verdict = Verdict()
    if theirs is None or theirs == ours:
        return verdict
    _run(repo, _note_jobs(repo, diff_entries(repo, ours, theirs), verdict), verdict)
    return verdict


# -- the ledger, entry by entry -------------------------------------------------------
def _hex(text: str, length: int) -> bool:
    return len(text) == length and not text.strip("0123456789abcdef")


def _decode(fn, verdict: Verdict):
    try:
        return fn()
    except ProvError as exc:
        verdict.add(str(exc))
        return None


class _RunDir:
    """The run directory whose entries are being listed."""

    def __init__(self, prefix: str, where: str, new: bool) -> None:
        self.prefix = prefix
        self.where = where
        self.new = new
        self.present: set[str] = set()
        self.deleted: set[str] = set()


class _LedgerCheck:
    """Turns the listing of a ledger diff into problems found by name and mode, and
    jobs for the blobs whose size and content are to be checked."""

    def __init__(self, repo: GitRepository, verdict: Verdict, progress: Progress | None,
                 ours: str | None = None) -> None:
        self.fmt = repo.fmt
        self.odb = repo.odb
        self.ours = ours  # the local ledger tree: a finished local run's record is not rewritten
        self.verdict = verdict
        self.progress = progress
        #: record blobs read as a commit's run listing: their run directory's copy is the same blob
        self.linked: set[str] = set()

    def jobs(self, entries: Iterable[DiffEntry]) -> Iterator[_Job]:
        run: _RunDir | None = None
        skip: str | None = None  # below a directory already reported
        for entry in entries:
            if self.verdict.full():
                return
            path = entry.path
            if run is not None and not path.startswith(run.prefix):
                self._finish(run)
                run = None
            if skip is not None and path.startswith(skip):
                continue
            if entry.status == "D":
                if run is not None and path.count("/") == 3:
                    run.deleted.add(path.rsplit("/", 1)[1])
                continue  # a deletion adds nothing to validate
            parts = path.split("/")
            if parts[0] == "runs" and len(parts) == 3:
                run = self._run_dir(entry, parts)
                if run is None:
                    skip = path + "/"
                continue
            if run is not None and len(parts) == 4:
                run.present.add(parts[3])
            found = self._entry(entry, parts, run)
            if found is False:
                skip = path + "/"
            elif found is not None and found is not True:
                yield found
        if run is not None:
            self._finish(run)

    def _finish(self, run: _RunDir) -> None:
        missing = [name for name in ("record", "state")
                   if (name not in run.present) if run.new or name in run.deleted]
        if missing:
            self.verdict.add(f"{run.where}: missing {missing[0]}")
        self.verdict.checked += 1
        if self.progress is not None:
            self.progress.update("checking runs", self.verdict.checked)

    def _run_dir(self, entry: DiffEntry, parts: list[str]) -> _RunDir | None:
        shard, run_id = parts[1], parts[2]
        if not self.fmt.is_id(run_id) or not run_id.startswith(shard):
            self.verdict.add(f"runs/{shard}/{run_id[:40]}: not a run id of this repository's hash ({self.fmt.name})")
            return None
        if entry.mode != MODE_TREE:
            self.verdict.add(f"run {run_id[:12]}: must be a directory")
            return None
        if entry.status == "A":
            self.verdict.added.append(run_id)
        return _RunDir(entry.path + "/", f"run {run_id[:12]}", entry.status == "A")

    def _problem(self, message: str) -> bool:
        self.verdict.add(message)
        return False

    def _blob(self, entry: DiffEntry, where: str, limit: int, check: Callable[[bytes, str], None] | None) -> _Job | bool:
        if entry.mode != MODE_BLOB:
            return self._problem(f"{where}: must be a regular file (mode {MODE_BLOB}), has mode {entry.mode}")
        return _Job(entry.oid, where, limit, check)

    def _tree(self, entry: DiffEntry, where: str) -> bool:
        return True if entry.mode == MODE_TREE else self._problem(f"{where}: must be a directory")

    def _key(self, name: str, where: str) -> bool:
        try:
            check_key(key_from_name(name))
        except ProvError as exc:
            return self._problem(f"{where}/{name}: {exc}")
        return True

    def _entry(self, entry: DiffEntry, parts: list[str], run: _RunDir | None) -> _Job | bool | None:
        """A job, True (fine), False (a problem: skip what is below), or None (fine, nothing to read)."""
        path, depth = entry.path, len(parts)
        if path == "format":
            return self._blob(entry, "format", LIMITS["format"], self._format)
        if parts[0] == "commits":
            return self._commits(entry, parts)
        if parts[0] != "runs":
            return self._problem(f"unexpected entry {parts[0]!r} at the ledger root")
        if depth == 1:
            return self._tree(entry, "runs")
        if depth == 2:
            if not _hex(parts[1], 2):
                return self._problem(f"{path}: not a two-hex-digit shard")
            return self._tree(entry, path)
        if run is None:  # below a run directory that was not listed: cannot happen in git's order
            return self._problem(f"{path}: not inside a run directory")
        where, name = run.where, parts[3]
        if depth == 4:
            if name in ("record", "state", "code.patch"):
                if name == "record" and entry.oid != parts[2]:
                    return self._problem(f"{where}: id does not match its record's content")
                if name == "record" and entry.oid in self.linked:
                    return True  # read (and its size checked) as its commit's listing
                check = {"record": self._record, "state": partial(self._state, run_id=parts[2]),
                         "code.patch": None}[name]
                return self._blob(entry, f"{where}/{name}", LIMITS[name], check)
            if name in ("series", "observations", "artifacts", "summaries"):
                return self._tree(entry, f"{where}/{name}")
            return self._problem(f"{where}: unexpected entry {name!r}")
        if depth == 5:
            if not self._key(parts[4], f"{where}/{name}"):
                return False
            if name == "artifacts":
                return self._blob(entry, f"{where}/artifacts/{parts[4]}", LIMITS["artifact"], None)
            return self._tree(entry, f"{where}/{name}/{parts[4]}")
        if depth == 6 and name in ("series", "observations"):
            chunk_path = f"{where}/{name}/{parts[4]}/{parts[5]}"
            if not _CHUNK_NAME.match(parts[5]):
                return self._problem(f"{chunk_path}: not a chunk name (<writer>-<seq>)")
            decode = decode_metric_chunk if name == "series" else decode_observation_chunk
            return self._blob(entry, chunk_path, LIMITS["chunk"], lambda data, where: self._chunk(decode, data, where))
        if depth == 6 and name == "summaries":
            summary_path = f"{where}/summaries/{parts[4]}/{parts[5]}"
            if not _WRITER.match(parts[5]):
                return self._problem(f"{summary_path}: not a summary name (<writer>)")
            return self._blob(entry, summary_path, LIMITS["summary"],
                              lambda data, where: self._chunk(decode_metric_summary, data, where))
        return self._problem(f"{where}: unexpected entry {'/'.join(parts[3:])[:120]!r}")

    def _commits(self, entry: DiffEntry, parts: list[str]) -> _Job | bool:
        """``commits/<c[:2]>/<c>/<id[:2]>/<id>``: directories down to the entry, which names
        the record blob of run ``<id>``, a run made at commit ``<c>``."""
        path, depth, hex_len = entry.path, len(parts), self.fmt.hex_len
        # the directories above were listed (and found fine) before: only the last name is new
        names_ok = depth == 1 or depth <= 5 and _hex(parts[-1], 2 if depth in (2, 4) else hex_len) and (
            depth % 2 == 0 or parts[-1].startswith(parts[-2]))
        if not names_ok:
            return self._problem(f"{path[:120]}: not a commits/<id[:2]>/<commit>/<id[:2]>/<run id> path of this repository")
        if depth < 5:
            return self._tree(entry, path)
        if entry.oid != parts[4]:
            return self._problem(f"{path}: names blob {entry.oid[:12]}, not the record of run {parts[4][:12]}")
        self.linked.add(entry.oid)
        commit, run_id = parts[2], parts[4]
        return self._blob(entry, path, LIMITS["record"], lambda data, where: self._link(data, where, commit, run_id))

    # -- content checks (on the thread reading git's answers) --------------------------
    def _format(self, data: bytes, where: str) -> None:
        _decode(lambda: codec.decode(data, dict, "ledger format marker"), self.verdict)

    def _record(self, data: bytes, where: str) -> None:
        record = _decode(lambda: codec.decode(data, RunRecord, where), self.verdict)
        if record is None:
            return
        self._local_rules(where, lambda: check_record_values(record))
        if record.code.commit:
            self.verdict.pinned.add(record.code.commit)

    def _local_rules(self, where: str, check: Callable[[], None]) -> None:
        """Remote data obeys the limits of the local API calls that make it."""
        try:
            check()
        except ProvError as exc:
            self.verdict.add(f"{where}: {exc} (refused as a local call would be)")

    def _link(self, data: bytes, path: str, commit: str, run_id: str) -> None:
        record = _decode(lambda: codec.decode(data, RunRecord, f"record of run {run_id[:12]}"), self.verdict)
        if record is None:
            return
        self._local_rules(f"run {run_id[:12]}/record", lambda: check_record_values(record))
        if record.code.commit != commit:
            self.verdict.add(f"{path}: run {run_id[:12]} was made at commit {str(record.code.commit)[:12]}, "
                             f"not {commit[:12]}")
        else:
            self.verdict.pinned.add(commit)

    def _state(self, data: bytes, where: str, run_id: str) -> None:
        state = _decode(lambda: codec.decode(data, RunState, where), self.verdict)
        if state is None:
            return
        self._local_rules(where, lambda: check_state_values(state))
        mine = self._our_state(run_id)
        if mine is not None:
            for problem in rewrites_of(mine, state):
                self.verdict.add(f"{where}: {problem}")

    def _our_state(self, run_id: str) -> RunState | None:
        """This clone's state of ``run_id``, or None (a run new here, or unreadable: the
        merge reports that)."""
        if self.ours is None:
            return None
        from ..store.trees import read_path

        try:
            entry = read_path(self.odb, self.ours, f"runs/{run_id[:2]}/{run_id}/state")
            if entry is None or entry.is_tree:
                return None
            return codec.decode(self.odb.read_typed(entry.oid, "blob"), RunState, "state")
        except ProvError:
            return None

    def _chunk(self, decode, data: bytes, path: str) -> None:
        try:
            decode(data)
        except ProvError as exc:
            self.verdict.add(str(exc))
        except Exception as exc:  # a malformed msgpack payload raises many kinds
            self.verdict.add(f"{path}: not a valid chunk ({exc})")


# -- notes -------------------------------------------------------------------------------
def _note_jobs(repo: GitRepository, entries: Iterable[DiffEntry], verdict: Verdict) -> Iterator[_Job]:
    """A job for every note blob (a path of two-hex-digit directories down to a commit id)."""
    hex_len = repo.fmt.hex_len
    for entry in entries:
        if verdict.full():
            return
        if entry.status == "D" or entry.mode == MODE_TREE:
            continue
        commit = entry.path.replace("/", "")
        if len(commit) != hex_len or not all(len(p) == 2 for p in entry.path.split("/")[:-1]):
            continue  # not a note (git notes ignores it too)
        verdict.checked += 1
        where = f"note of {commit[:12]}"
        yield _Job(entry.oid, where, LIMITS["note"], lambda data, w: _note_lines(data, w, verdict))


def _note_lines(data: bytes, where: str, verdict: Verdict) -> None:
    for i, line in enumerate(split_note(data), 1):
        _decode(lambda ln=line, w=f"{where}, line {i}": codec.decode_note_line(ln, w), verdict)


# -- the pipeline ------------------------------------------------------------------------
def _run(repo: GitRepository, jobs: Iterator[_Job], verdict: Verdict) -> None:
    """Size every job's blob, then read and check the ones that have a check.

    Three stages, each on its own thread: listing the jobs and asking ``git cat-file
    --batch-check`` for their sizes; reading the sizes and asking ``git cat-file --batch``
    for the blobs within their limits that are decoded; reading those and checking them
    (this thread). Each stage waits only on the pipe before it, whose size bounds what
    is in flight."""
    sizer = catfile.start(repo, check=True, config=_WIDE)
    reader = catfile.start(repo, config=(*_WIDE, "-c", "core.deltaBaseCacheLimit=256m")) if sizer is not None else None
    if sizer is None or reader is None:
        if sizer is not None:
            _stop(sizer)
        raise DataError("cannot validate fetched provenance: git cat-file cannot be started")
    sized: deque[_Job] = deque()
    wanted: deque[_Job] = deque()
    failures: list[BaseException] = []
    stop = threading.Event()

    def ask_sizes() -> None:
        try:
            for job in jobs:
                if stop.is_set():
                    break
                sized.append(job)
                sizer.stdin.write(job.oid.encode() + b"\n")
        except (OSError, ValueError):
            pass  # git stopped: the sizes read so far are all there will be
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            failures.append(exc)
        finally:
            close = getattr(jobs, "close", None)
            if close is not None:
                close()  # a listing left unfinished stops its git
            with contextlib.suppress(OSError, ValueError):
                sizer.stdin.close()

    def check_sizes() -> None:
        try:
            while not stop.is_set():
                header = catfile.read_header(sizer.stdout)
                if header is None:
                    break
                job = sized.popleft()
                if header.type is None:
                    verdict.add(f"{job.where}: object {job.oid} is missing")
                elif header.type != "blob":
                    verdict.add(f"{job.where}: is a {header.type}, must be a regular file")
                elif header.size > job.limit:
                    verdict.add(f"{job.where}: {header.size:,} bytes, more than the {job.limit:,} accepted")
                elif job.check is not None:
                    wanted.append(job)
                    reader.stdin.write(job.oid.encode() + b"\n")
        except (OSError, ValueError):
            pass
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            with contextlib.suppress(OSError, ValueError):
                reader.stdin.close()

    threads = [threading.Thread(target=ask_sizes, name="prov-validate-list", daemon=True),
               threading.Thread(target=check_sizes, name="prov-validate-size", daemon=True)]
    for thread in threads:
        thread.start()
    finished = False
    try:
        while True:
            header = catfile.read_header(reader.stdout)
            if header is None:
                break
            job = wanted.popleft()
            data = reader.stdout.read(header.size + 1) if header.type is not None else b""
            if len(data) != header.size + 1:
                verdict.add(f"{job.where}: object {job.oid} is missing")
                break
            job.check(data[:-1], job.where)  # type: ignore[misc]
            if verdict.full():
                break
        finished = not verdict.full()
    finally:
        stop.set()
        for proc in (sizer, reader):
            _stop(proc, kill=not finished)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    if finished and (sized or wanted) and not verdict.full():
        raise DataError("cannot validate fetched provenance: git cat-file stopped answering")


def _stop(proc, kill: bool = True) -> None:
    if kill:
        with contextlib.suppress(OSError):
            proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError, ValueError):
            pipe.close()
    proc.wait()
