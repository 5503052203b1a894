"""Checking provenance fetched from a remote before it is merged (DESIGN.md §8): the
rules of the ledger's paths and of what its blobs hold.

Only what the remote adds or changes relative to the local copy is looked at, as
``git diff-tree`` lists it (identical subtrees are never read): each entry's path,
name and mode first, which makes the blobs to read jobs for ``blobs.py`` (sizes before
contents, bounded memory); then the content of each blob within its limit. git itself
has already checked the objects' syntax and ids (prov fetches with
``fetch.fsckObjects``), so a blob's id is the hash of its content; these checks are
about meaning: names, modes, sizes, format versions, run ids that match their records,
runs listed under the commit their record names, and the values of records and states
under the rules of the local calls that make them (``remote_values.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from .. import codec
from ..errors import ProvError
from ..keys import check_key, key_from_name
from ..model import RunRecord, RunState
from ..runs.series import check_metric_chunk, decode_observation_chunk
from ..runs.summary import decode_metric_summary
from ..store.notes import split_note
from ..store.objects import MODE_BLOB, MODE_TREE
from ..store.repo import GitRepository
from .blob_content import CHUNK_KINDS, decode_model
from .blobs import LIMITS, MAX_REPORTED, Job, Verdict, check_blobs, where_of
from .diff import DiffEntry, diff_entries
from .remote_values import check_record_values, check_state_values, rewrites_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .arriving import Cleared
    from .progress import Progress

__all__ = ["LIMITS", "Verdict", "validate_ledger", "validate_notes"]

#: jobs set aside at most while the reader of the arriving pack still runs (then waited for)
_DEFERRED = 1 << 16
_CHUNK_NAME = re.compile(r"[0-9a-f]{8}-[0-9]{8}\Z")
_WRITER = re.compile(r"[0-9a-f]{8}\Z")


def validate_ledger(repo: GitRepository, ours: str | None, theirs: str | None,
                    progress: Progress | None = None, cleared: Cleared | None = None) -> Verdict:
    """Check what ledger tree ``theirs`` adds to ``ours`` (None: an empty ledger).
    ``cleared``: blobs whose content passed ``precheck`` as they arrived (not read again)."""
    verdict = Verdict()
    if theirs is None or theirs == ours:
        return verdict
    check = _LedgerCheck(repo, verdict, progress, ours, cleared)
    check_blobs(repo, check.jobs(diff_entries(repo, ours, theirs)), verdict, check.content)
    if progress is not None:
        progress.done("checking runs", verdict.checked)
    return verdict


def validate_notes(repo: GitRepository, ours: str | None, theirs: str | None) -> Verdict:
    """Check the notes that notes tree ``theirs`` adds or changes relative to ``ours``."""
    verdict = Verdict()
    if theirs is None or theirs == ours:
        return verdict
    check_blobs(repo, _note_jobs(repo, diff_entries(repo, ours, theirs), verdict), verdict,
         lambda job, data: _note_lines(data, where_of(job), verdict))
    return verdict


# -- the ledger, entry by entry -------------------------------------------------------
def _hex(text: str, length: int) -> bool:
    return len(text) == length and not text.strip("0123456789abcdef")


class _RunDir:
    """The run directory whose entries are being listed."""

    __slots__ = ("deleted", "id", "new", "prefix", "present")

    def __init__(self, prefix: str, run_id: str, new: bool) -> None:
        self.prefix = prefix
        self.id = run_id
        self.new = new
        self.present: set[str] = set()
        self.deleted: set[str] = set()

    @property
    def where(self) -> str:
        return f"run {self.id[:12]}"


class _LedgerCheck:
    """Turns the listing of a ledger diff into problems found by name and mode, and
    jobs for the blobs whose size and content are to be checked (``content``)."""

    def __init__(self, repo: GitRepository, verdict: Verdict, progress: Progress | None,
                 ours: str | None = None, cleared: Cleared | None = None) -> None:
        self.cleared = cleared
        self.fmt = repo.fmt
        self.odb = repo.odb
        self.ours = ours  # the local ledger tree: a finished local run's record is not rewritten
        self.verdict = verdict
        self.progress = progress
        #: record blobs read as a commit's run listing: their run directory's copy is the same blob
        self.linked: set[str] = set()
        #: runs whose directory is new here: no local state to compare theirs with
        self.new: set[str] = set()
        #: jobs whose blob the reader of the arriving pack has not cleared yet, while it still runs
        self.deferred: list[Job] = []
        #: key names already found valid
        self.keys_ok: set[str] = set()

    def jobs(self, entries: Iterable[DiffEntry]) -> Iterator[Job]:
        run: _RunDir | None = None
        skip: str | None = None  # below a directory already reported
        cleared = self.cleared
        problems, linked, added = self.verdict.problems, self.linked, self.verdict.added
        # the shapes of the common entries, matched at once (anything else: field by field)
        rest = self.fmt.hex_len - 2
        link_path = re.compile(rf"commits/([0-9a-f]{{2}})/(\1[0-9a-f]{{{rest}}})/([0-9a-f]{{2}})/(\3[0-9a-f]{{{rest}}})\Z")
        run_path = re.compile(rf"runs/([0-9a-f]{{2}})/(\1[0-9a-f]{{{rest}}})\Z")
        deferred = self.deferred
        for entry in entries:
            if len(problems) >= MAX_REPORTED:
                return
            if deferred and (cleared.finished or len(deferred) >= _DEFERRED):
                cleared.wait()  # at most _DEFERRED jobs are set aside
                yield from self._undefer()
            status, mode, oid, path = entry
            if run is not None:
                if path.startswith(run.prefix):
                    name = path[len(run.prefix):]
                    if skip is not None and path.startswith(skip):
                        continue
                    if "/" not in name:  # the run directory's own entries: the common case first
                        if status == "D":
                            run.deleted.add(name)
                            continue
                        run.present.add(name)
                        if name == "state" and mode == MODE_BLOB:
                            job = Job(oid, "state", run.id)
                            if cleared is None or self._settle(job) is False:
                                yield job
                            continue
                        if name == "record" and mode == MODE_BLOB and oid in linked and oid == run.id:
                            continue  # read (and its size checked) as its commit's listing
                    elif status == "D":
                        continue
                    found = self._entry(entry, path.split("/"), run)
                    if found is False:
                        skip = path + "/"
                    elif found is not None and found is not True and (cleared is None or self._settle(found) is False):
                        yield found
                    continue
                self._finish(run)
                run = None
            if skip is not None and path.startswith(skip):
                continue
            if status == "D":
                continue  # a deletion adds nothing to validate
            if mode == MODE_BLOB and (match := link_path.match(path)) and oid == match[4]:
                linked.add(oid)  # a run's listing under its commit: its record
                job = Job(oid, "link", (path, match[2], oid))
                if cleared is None or self._settle(job) is False:
                    yield job
                continue
            if mode == MODE_TREE and (match := run_path.match(path)):
                if status == "A":
                    added.append(match[2])
                    self.new.add(match[2])
                run = _RunDir(path + "/", match[2], status == "A")
                continue
            parts = path.split("/")
            if parts[0] == "runs" and len(parts) == 3:
                run = self._run_dir(entry, parts)
                if run is None:
                    skip = path + "/"
                continue
            found = self._entry(entry, parts, None)
            if found is False:
                skip = path + "/"
            elif found is not None and found is not True and (cleared is None or self._settle(found) is False):
                yield found
        if run is not None:
            self._finish(run)
        if self.deferred:
            self.cleared.wait()
            yield from self._undefer()

    def _settle(self, job: Job) -> bool | None:
        """Whether ``job``'s content was checked as it arrived (``arriving.py``), what its
        check does with that content then done here; False: it is to be read; None: the
        reader of the arriving pack still runs and has not cleared it (yet), so the job is
        set aside until the reader is done."""
        found = self.cleared.get(job.oid)
        if found is None:
            if not self.cleared.finished:
                self.deferred.append(job)
                return None
            return False
        return self._use(job, found)

    def _undefer(self) -> Iterator[Job]:
        """The jobs set aside whose blob was not cleared after all (the reader is done)."""
        jobs, self.deferred[:] = list(self.deferred), []
        for job in jobs:
            if self._settle(job) is False:
                yield job

    def _use(self, job: Job, found: tuple[str, str | None]) -> bool:
        """``_settle`` of a blob that was cleared as ``found``."""
        kind, commit = found
        if job.kind in CHUNK_KINDS:
            return kind == job.kind  # a chunk's check is its content's alone
        if job.kind == "state":
            # a state is compared with this clone's own, unless its run is new here
            return kind == "state" and (self.ours is None or job.arg in self.new)
        if kind != "record" or job.kind not in ("record", "link"):
            return False
        if job.kind == "record":
            if commit:
                self.verdict.pinned.add(commit)
        elif commit != job.arg[1]:
            return False  # read again, for _link's words
        else:
            self.verdict.pinned.add(commit)
        return True

    def _finish(self, run: _RunDir) -> None:
        present = run.present
        if "record" not in present or "state" not in present:
            missing = [name for name in ("record", "state")
                       if (name not in present) if run.new or name in run.deleted]
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
            self.new.add(run_id)
        return _RunDir(entry.path + "/", run_id, entry.status == "A")

    def _problem(self, message: str) -> bool:
        self.verdict.add(message)
        return False

    def _blob(self, entry: DiffEntry, where: str, kind: str, arg: Any) -> Job | bool:
        if entry.mode != MODE_BLOB:
            return self._problem(f"{where}: must be a regular file (mode {MODE_BLOB}), has mode {entry.mode}")
        return Job(entry.oid, kind, arg)

    def _tree(self, entry: DiffEntry, where: str) -> bool:
        return True if entry.mode == MODE_TREE else self._problem(f"{where}: must be a directory")

    def _key(self, name: str, where: str) -> bool:
        if name in self.keys_ok:  # the same few keys, in every run
            return True
        try:
            check_key(key_from_name(name))
        except ProvError as exc:
            return self._problem(f"{where}/{name}: {exc}")
        self.keys_ok.add(name)
        return True

    def _entry(self, entry: DiffEntry, parts: list[str], run: _RunDir | None) -> Job | bool | None:
        """A job, True (fine), False (a problem: skip what is below), or None (fine, nothing to read)."""
        path, depth = entry.path, len(parts)
        if path == "format":
            return self._blob(entry, "format", "format", "format")
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
                return self._blob(entry, f"{where}/{name}", name, parts[2])
            if name in ("series", "observations", "artifacts", "summaries"):
                return self._tree(entry, f"{where}/{name}")
            return self._problem(f"{where}: unexpected entry {name!r}")
        if depth == 5:
            if not self._key(parts[4], f"{where}/{name}"):
                return False
            if name == "artifacts":
                return self._blob(entry, f"{where}/artifacts/{parts[4]}", "artifact", f"{where}/artifacts/{parts[4]}")
            return self._tree(entry, f"{where}/{name}/{parts[4]}")
        if depth == 6 and name in ("series", "observations"):
            chunk_path = f"{where}/{name}/{parts[4]}/{parts[5]}"
            if not _CHUNK_NAME.match(parts[5]):
                return self._problem(f"{chunk_path}: not a chunk name (<writer>-<seq>)")
            return self._blob(entry, chunk_path, name, chunk_path)
        if depth == 6 and name == "summaries":
            summary_path = f"{where}/summaries/{parts[4]}/{parts[5]}"
            if not _WRITER.match(parts[5]):
                return self._problem(f"{summary_path}: not a summary name (<writer>)")
            return self._blob(entry, summary_path, "summaries", summary_path)
        return self._problem(f"{where}: unexpected entry {'/'.join(parts[3:])[:120]!r}")

    def _commits(self, entry: DiffEntry, parts: list[str]) -> Job | bool:
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
        return self._blob(entry, path, "link", (path, parts[2], parts[4]))

    # -- content checks (on the thread reading git's answers) --------------------------
    def content(self, job: Job, data: bytes) -> None:
        """Check the content of ``job``'s blob (problems to the verdict)."""
        kind = job.kind
        try:
            if kind == "state":
                self._state(data, job.arg)
            elif kind == "link":
                self._link(data, *job.arg)
            elif kind == "record":
                self._record(data, where_of(job))
            elif kind == "series" or kind == "observations":
                # a metric chunk's columns checked (what decode_metric_chunk refuses, without
                # decoding them: once checked, that cannot fail)
                self._chunk(check_metric_chunk if kind == "series" else decode_observation_chunk, data, job.arg)
            elif kind == "summaries":
                self._chunk(decode_metric_summary, data, job.arg)
            elif kind == "format":
                codec.decode(data, dict, "ledger format marker")
        except ProvError as exc:
            self.verdict.add(str(exc))

    def _record(self, data: bytes, where: str) -> None:
        record = decode_model(data, RunRecord, where)
        self._local_rules(where, "", check_record_values, record)
        if record.code.commit:
            self.verdict.pinned.add(record.code.commit)

    def _local_rules(self, where: str, run_id: str, check, value) -> None:
        """Remote data obeys the limits of the local API calls that make it (``where``
        as in ``decode_model``)."""
        try:
            check(value)
        except ProvError as exc:
            self.verdict.add(f"{where.format(run_id[:12])}: {exc} (refused as a local call would be)")

    def _link(self, data: bytes, path: str, commit: str, run_id: str) -> None:
        record = decode_model(data, RunRecord, "record of run {}", run_id)
        self._local_rules("run {}/record", run_id, check_record_values, record)
        if record.code.commit != commit:
            self.verdict.add(f"{path}: run {run_id[:12]} was made at commit {str(record.code.commit)[:12]}, "
                             f"not {commit[:12]}")
        else:
            self.verdict.pinned.add(commit)

    def _state(self, data: bytes, run_id: str) -> None:
        state = decode_model(data, RunState, "run {}/state", run_id)
        self._local_rules("run {}/state", run_id, check_state_values, state)
        mine = self._our_state(run_id) if run_id not in self.new else None
        if mine is not None:
            for problem in rewrites_of(mine, state):
                self.verdict.add(f"run {run_id[:12]}/state: {problem}")

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
def _note_jobs(repo: GitRepository, entries: Iterable[DiffEntry], verdict: Verdict) -> Iterator[Job]:
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
        yield Job(entry.oid, "note", commit)


def _note_lines(data: bytes, where: str, verdict: Verdict) -> None:
    for i, line in enumerate(split_note(data), 1):
        try:
            codec.decode_note_line(line, f"{where}, line {i}")
        except ProvError as exc:
            verdict.add(str(exc))
