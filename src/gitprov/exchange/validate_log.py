"""Checking a format-4 ledger (``store/ledger_log.py``) fetched from a remote before it
is merged (DESIGN.md §8): what the remote's commits above the common history wrote,
as the fold reads it (the newest version of each entry), under the rules format 3's
entries obey (``validate.py``): names, sizes, run ids that match their records, runs
linked to the commit their record names, values under the limits of the local calls,
and no rewrite of what a finished local run recorded. Two rules are the log's own: the
tip must be a commit of the log, and a checkpoint must hold every entry of the commits
below it (the fold reads nothing below a checkpoint, so one that left a run out would
hide it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .. import codec
from ..errors import ProvError
from ..model import RunRecord, RunState
from ..store import ledger_log as log
from ..store.repo import GitRepository
from .blob_content import decode_model
from .blobs import MAX_REPORTED, Job, Verdict, check_blobs
from .remote_values import check_record_values
from .validate import _CHUNK_NAME, _DEFERRED, _WRITER, _LedgerCheck

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .arriving import Cleared
    from .progress import Progress

__all__ = ["validate_log"]

_FOLDER_KIND = {"series": "series", "observations": "observations", "summaries": "summaries"}


def validate_log(repo: GitRepository, ours: str | None, theirs: str, progress: Progress | None = None,
                 cleared: Cleared | None = None) -> Verdict:
    """Check what the log at commit ``theirs`` adds to the local ledger at commit
    ``ours`` (None: none; a format-3 ledger is compared as a whole). ``cleared``: the
    blobs whose content was checked as the pull's pack arrived (``arriving.py``), not
    read again."""
    from ..store.ledger import Ledger

    verdict = Verdict()
    ledger = Ledger(repo)
    if not ledger.is_log(theirs):
        verdict.add(f"{theirs[:12]} is not a commit of format 4's log, but has one below it (a ledger of "
                    "format 3 written on top of format 4: refused)")
        return verdict
    ours_log = ours is not None and ledger.is_log(ours)
    bases = log.merge_bases(repo, ours, theirs) if ours_log else []
    checkpoints: list[tuple[str, list[str]]] = []
    try:
        changed = log.fold_since(repo, theirs, bases, checkpoints)
    except ProvError as exc:
        verdict.add(str(exc))
        return verdict
    mine = ledger.log_view(ours) if ours_log else None
    ours_tree = repo.read_commit(ours).tree if ours is not None and not ours_log else None  # format 3's
    verdict.fold = (bases, changed)
    check = _LogCheck(repo, verdict, progress, mine, ours_tree, cleared)
    check_blobs(repo, check.jobs(changed), verdict, check.content)
    check.finish()
    for commit, parents in checkpoints[:MAX_REPORTED]:
        _check_checkpoint(repo, commit, parents, verdict)
    if progress is not None:
        progress.done("checking runs", verdict.checked)
    return verdict


def _check_checkpoint(repo: GitRepository, commit: str, parents: list[str], verdict: Verdict) -> None:
    """A checkpoint holds every entry of the ledger below it (of format 3: every run).
    A run blob is counted by its run: its name's commit is checked against its record
    where the run blob is read (``_LogCheck.finish``)."""
    from ..store.ledger import Ledger

    held = set(log.fold_since(repo, commit, parents))
    held_runs = {run for name in held if (run := log.is_run_blob(name)) is not None}
    for parent in parents:
        if Ledger(repo).is_log(parent):
            below = log.fold_since(repo, parent, None)
            missing = sorted(name for name in below if name not in held and log.is_run_blob(name) not in held_runs)
        else:  # format 3: names from its trees, no record read
            runs, names = log.checkpoint_names(repo, repo.read_commit(parent).tree)
            missing = sorted(runs - held_runs) + sorted(names - held)
        if missing:
            verdict.add(f"checkpoint {commit[:12]} leaves out {len(missing)} entr{'y' if len(missing) == 1 else 'ies'} "
                        f"of the ledger below it (e.g. {missing[0][:60]!r}): it would hide them")


class _LogCheck(_LedgerCheck):
    """The checks of ``validate._LedgerCheck`` on the entries of a log."""

    def __init__(self, repo: GitRepository, verdict: Verdict, progress: Progress | None, mine, ours_tree: str | None,
                 cleared: Cleared | None = None):
        super().__init__(repo, verdict, progress, ours_tree, cleared)
        self.mine = mine  # the local log's view (None: no local log)
        self.records: dict[str, str | None] = {}  # run id -> the commit its arriving record names
        self.links: list[tuple[str, str]] = []  # (run id, the commit its blob's name says)
        self.touched: set[str] = set()  # runs whose files arrive
        self.mine_runs: set[str] | None = None  # the local log's runs, when listing them is cheaper

    def jobs(self, changed: dict[str, str]) -> Iterator[Job]:  # type: ignore[override]
        """Each entry's job, but for the blobs cleared as they arrived; a job whose blob
        the reader of the arriving pack has not reached yet waits (``_settle``)."""
        cleared, deferred = self.cleared, self.deferred
        if self.mine is not None:
            self.mine_runs = self.mine.run_ids(at_most=len(changed))
        for job in self._entry_jobs(changed):
            if deferred and (cleared.finished or len(deferred) >= _DEFERRED):  # type: ignore[union-attr]
                cleared.wait()  # type: ignore[union-attr]
                yield from self._undefer()
            if cleared is None or self._settle(job) is False:
                yield job
        if deferred:
            cleared.wait()  # type: ignore[union-attr]
            yield from self._undefer()

    def _use(self, job: Job, found: tuple[str, str | None]) -> bool:
        """A run blob cleared as it arrived: its record is the run's its name says, and
        the run is new here (else its state is compared with this clone's: read)."""
        if job.kind != "run":
            return super()._use(job, found)
        kind, said = found
        record_id, _, commit = (said or "").partition(" ")
        if kind != "run" or record_id != job.arg or job.arg not in self.new:
            return False
        self.records[job.arg] = commit or None
        if commit:
            self.verdict.pinned.add(commit)
        return True

    def _entry_jobs(self, changed: dict[str, str]) -> Iterator[Job]:
        fmt = self.fmt
        # the two common shapes, matched at once (anything else: part by part, below)
        run_blob = re.compile(rf"([0-9a-f]{{{fmt.hex_len}}})(?:\^([0-9a-f]{{{fmt.hex_len}}}))?\Z")
        metric_chunk = re.compile(rf"([0-9a-f]{{{fmt.hex_len}}})=([^=/]+)=({_CHUNK_NAME.pattern})")
        for name, oid in sorted(changed.items()):
            if self.verdict.full():
                return
            if match := run_blob.match(name):
                yield self._run_blob_job(match[1], match[2], oid)
                continue
            if match := metric_chunk.match(name):
                run_id, key = match[1], match[2]
                self.touched.add(run_id)
                if self._key(key, f"run {run_id[:12]}/series"):
                    yield Job(oid, "series", f"run {run_id[:12]}/series/{key}/{match[3]}")
                continue
            run_id = log.run_of(name)
            if run_id is None or not fmt.is_id(run_id):
                self.verdict.add(f"ledger entry {name[:80]!r}: not a run's entry of this repository's hash ({fmt.name})")
                continue
            if log.is_run_blob(name) == run_id:
                link = log.link_of(name)
                if link is not None and not fmt.is_id(link[1]):
                    self.verdict.add(f"run {run_id[:12]}: its blob names {link[1][:40]!r}, not a commit of this "
                                     f"repository's hash ({fmt.name})")
                    continue
                yield self._run_blob_job(run_id, None if link is None else link[1], oid)
                continue
            where = log.file_of(name)
            if where is None:
                self.verdict.add(f"run {run_id[:12]}: unexpected ledger entry {name[len(run_id):][:80]!r}")
                continue
            self.touched.add(run_id)
            job = self._file(run_id, where[1], oid)
            if job is not None:
                yield job

    def _run_blob_job(self, run_id: str, commit: str | None, oid: str) -> Job:
        if commit is not None:
            self.links.append((run_id, commit))
        if not self._known(run_id):
            self.verdict.added.append(run_id)
            self.new.add(run_id)
        self.verdict.checked += 1
        if self.progress is not None:
            self.progress.update("checking runs", self.verdict.checked)
        return Job(oid, "run", run_id)

    def _known(self, run_id: str) -> bool:
        if self.mine is not None:
            return run_id in self.mine_runs if self.mine_runs is not None else self.mine.has_run(run_id)
        if self.ours is not None:
            from ..store.trees import read_path

            return read_path(self.odb, self.ours, f"runs/{run_id[:2]}/{run_id}") is not None
        return False

    def _file(self, run_id: str, path: str, oid: str) -> Job | None:
        where = f"run {run_id[:12]}/{path}"
        if path == "code.patch":
            return Job(oid, "code.patch", run_id)
        folder, _, rest = path.partition("/")
        key, _, leaf = rest.partition("/")
        if not self._key(key, f"run {run_id[:12]}/{folder}"):
            return None
        if folder == "artifacts":
            return Job(oid, "artifact", where)
        pattern = _WRITER if folder == "summaries" else _CHUNK_NAME
        if not pattern.match(leaf):
            self.verdict.add(f"{where}: not a {'summary' if folder == 'summaries' else 'chunk'} name")
            return None
        return Job(oid, _FOLDER_KIND[folder], where)

    def content(self, job: Job, data: bytes) -> None:
        if job.kind != "run":
            super().content(job, data)
            return
        run_id = job.arg
        try:
            record_bytes, state_bytes, kept = log.run_blob_parts(data, run_id, self.fmt.hash_object)
        except ValueError as exc:
            self.verdict.add(str(exc))
            return
        for key in kept:
            self._key(key, f"run {run_id[:12]}/artifacts")
        try:
            record = decode_model(record_bytes, RunRecord, "record of run {}", run_id)
            self._local_rules("run {}/record", run_id, check_record_values, record)
            self.records[run_id] = record.code.commit
            if record.code.commit:
                self.verdict.pinned.add(record.code.commit)
            self._state(state_bytes, run_id)
        except ProvError as exc:
            self.verdict.add(str(exc))

    def _our_state(self, run_id: str) -> RunState | None:
        if self.mine is None:
            return super()._our_state(run_id)
        try:
            parts = self.mine.run_parts(run_id)
            return None if parts is None else codec.decode(parts[1], RunState, "state")
        except ProvError:
            return None

    def finish(self) -> None:
        """What needs every run read: each run blob's name says the commit its record
        does, and every run whose files arrive is in the ledger."""
        for run_id in sorted(self.touched | {run for run, _ in self.links}):
            if run_id not in self.records and not self._known(run_id):
                self.verdict.add(f"run {run_id[:12]}: missing record")
        for run_id, commit in self.links:
            made_at = self.records[run_id] if run_id in self.records else self._our_commit(run_id)
            if made_at != commit:
                self.verdict.add(f"run {run_id[:12]}: linked to commit {commit[:12]}, but made at {str(made_at)[:12]}")

    def _our_commit(self, run_id: str) -> str | None:
        parts = self.mine.run_parts(run_id) if self.mine is not None else None
        if parts is None:
            return None
        try:
            return codec.decode(parts[0], RunRecord, "record").code.commit
        except ProvError:
            return None

