"""``RunWriter``: the persistence buffer of one run.

Logged points collect in memory; every ``spill_points`` points or ``spill_seconds``
they become series chunk blobs (one pack, journaled, so a SIGKILL loses at most the
points since the last spill), and the ledger gets one transaction per ``flush()``,
every ``flush_seconds``, and at the end of the run. ``Run`` is the user-facing side;
this class is everything it buffers and how that reaches the ledger.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import codec
from .._util.clock import utc_timestamp
from .._util.logfile import trim
from ..errors import UsageError, WriteError
from ..keys import key_to_name
from ..model import CommitRuns, MetricSummary, RunRecord, RunState
from ..store.journal import Journal
from ..store.ledger import LEDGER_REF, run_dir, run_link_path
from ..store.notes import split_note
from ..store.transaction import RefUpdate, commit_on_refs
from .series import encode_metric_chunk, encode_observation_chunk, pack_values
from .summary import SeriesSummary

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["RunSettings", "RunWriter", "SeriesBuffer", "commit_link"]

#: artifacts up to this size are written with the run's next pack, not at once
DEFER_BYTES = 1 << 20


class RunSettings:
    """Buffering knobs: points are journaled every ``spill_points`` points or
    ``spill_seconds`` seconds, and the ledger written every ``flush_seconds``;
    artifacts above ``artifact_threshold`` bytes go to the local cache."""

    def __init__(self, spill_points: int = 100_000, spill_seconds: float = 5.0,
                 flush_seconds: float = 30.0, artifact_threshold: int = 10 << 20) -> None:
        if spill_points < 1 or spill_seconds <= 0 or flush_seconds <= 0 or artifact_threshold < 0:
            raise UsageError("spill_points, spill_seconds and flush_seconds must be positive")
        self.spill_points = spill_points
        self.spill_seconds = spill_seconds
        self.flush_seconds = flush_seconds
        self.artifact_threshold = artifact_threshold


class SeriesBuffer:
    """Points of one metric not yet in a chunk, and the step that comes next."""

    __slots__ = ("steps", "stamps", "values", "next_step")

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.stamps: list[int] = []
        self.values: list[float] = []
        self.next_step = 0


class RunWriter:
    """What one run has logged but not yet written, and the writes that store it."""

    def __init__(self, store: ProvStore, run_id: str, record: RunRecord, state: RunState, *,
                 settings: RunSettings | None = None, journal: Journal | None = None, stored: bool = True) -> None:
        self.store = store
        self.run_id = run_id
        self.record = record
        self.state = state
        self.settings = settings = settings or RunSettings()
        self.journal = journal
        #: names this writer's chunks and orders its state writes (lamport, then writer)
        self.writer_id = secrets.token_hex(4)
        self.stored = stored  # record already in the ledger
        self.series: dict[str, SeriesBuffer] = {}
        self.observations: dict[str, list[tuple[int, int, Any]]] = {}
        #: what this writer keeps of each metric it spilled, for the summary of a long
        #: series written when the run ends (``runs/summary.py``)
        self.summaries: dict[str, SeriesSummary] = {}
        #: points in ``series`` since the last spill
        self.buffered = 0
        #: tree edits (paths relative to the run) not yet in the ledger
        self.pending: dict[str, bytes | str | None] = {}
        #: chunk blobs of each metric written since the last ledger transaction
        self.pending_chunks: dict[str, list[str]] = {}
        #: small artifact blobs not written yet: they go into the next spill's or the
        #: ledger transaction's pack, like metric points (``DEFER_BYTES``)
        self.deferred: dict[str, bytes] = {}
        #: edits staged but not yet journaled (they name deferred blobs)
        self.unjournaled: dict[str, str | None] = {}
        self.seq = 0
        self.last_flush = time.time()
        #: copied from settings: Run.log_metric reads it on every point
        self.spill_points = settings.spill_points
        self.spill_due = self.last_flush + settings.spill_seconds
        self.dirty = not stored
        #: the last write the logging path could not make (kept points wait for the next)
        self.write_failure: WriteError | None = None
        self._undo: tuple | None = None  # what _all_or_nothing restores, while it runs
        if not stored and record.code.patch:  # keep the start-time patch reachable
            self.pending["code.patch"] = record.code.patch

    # -- buffering -------------------------------------------------------------------
    def defer_blob(self, data: bytes) -> str | None:
        """Keep a small blob for the next pack this run writes; its id, or None to
        have it written now (large)."""
        if len(data) > DEFER_BYTES:
            return None
        oid = self.store.git.fmt.hash_object("blob", data)
        self.deferred[oid] = data
        return oid

    def stage_edits(self, edits: dict[str, str | None], journal: bool = True) -> None:
        """Add tree edits (paths relative to the run, blobs already written or
        deferred) and journal them with the current state."""
        self.pending.update(edits)
        self.dirty = True
        if not journal:
            self.unjournaled.update(edits)
        elif self.journal is not None:
            if self.unjournaled:
                edits = {**self.unjournaled, **edits}
                self.unjournaled = {}
            self.journal.append({"e": "edit", "changes": edits, "state": codec.encode(self.state)})

    def on_interval(self, now: float) -> None:
        """Called by the logging hot path when points or time call for a spill. A spill
        or flush that cannot write (a full disk) keeps every point buffered and is tried
        again at the next interval; ``flush()`` and ``end()`` raise it."""
        self.spill_due = now + self.settings.spill_seconds
        try:
            self.spill()
            if now - self.last_flush >= self.settings.flush_seconds:
                self.write_ledger()
        except WriteError as exc:
            self.write_failure = exc
            self.buffered = 0  # the next try waits for another interval, not the next point

    def spill(self, journal: bool = True) -> None:
        """Turn buffered points into chunk blobs (one pack), journaled (survives
        SIGKILL). Not journaled when a ledger transaction follows at once: the journal
        names only objects that are already durable. All or nothing: if the pack cannot
        be written, every point stays buffered."""
        odb = self.store.git.odb
        edits: dict[str, str | None] = {}
        with self._all_or_nothing(), odb.batch():
            if journal:  # else the transaction that follows takes them, as content (format 4 keeps small ones in the run blob)
                for data in self.deferred.values():
                    odb.write("blob", data)
            self._encode_buffers(odb, edits)
        if journal:
            self.deferred = {}
        self.observations = {}
        self.buffered = 0
        if edits or (journal and self.unjournaled):
            self.stage_edits(edits, journal=journal)

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """Undo what encoding buffers did to this writer when the block raises (its
        objects never became durable): the points go back into their buffers."""
        if self._undo is not None:  # an outer block (flush, finish) undoes it all
            yield
            return
        buffers = {key: (b.steps, b.stamps, b.values, b.next_step) for key, b in self.series.items()}
        chunks = {key: list(blobs) for key, blobs in self.pending_chunks.items()}
        status = (self.state.status, self.state.ended, self.state.exit_code)
        summaries = {key: s.copy() for key, s in self.summaries.items() if s.chunks}
        spilled = {key: s.spilled for key, s in self.summaries.items()}
        undo = self._undo = (buffers, chunks, dict(self.state.metrics), self.seq, status, self.dirty)
        try:
            yield
        except BaseException:
            for key, (steps, stamps, values, next_step) in buffers.items():
                b = self.series[key]
                if b.steps is not steps:  # encoded: the points go back in front of any newer
                    b.steps, b.stamps, b.values = steps + b.steps, stamps + b.stamps, values + b.values
                b.next_step = max(b.next_step, next_step)
            self.pending_chunks = chunks
            self.state.metrics.clear()
            self.state.metrics.update(undo[2])
            self.seq = undo[3]
            self.state.status, self.state.ended, self.state.exit_code = status
            self.dirty = undo[5]
            for key, summary in list(self.summaries.items()):  # what the failed spill added, out again
                if key in summaries:
                    self.summaries[key] = summaries[key]
                else:
                    summary.spilled = spilled.get(key, 0)
                    summary.buckets, summary.chunks, summary.count, summary.nan, summary.inf = [], [], 0, 0, 0
                    summary.width = 1
            raise
        finally:
            self._undo = None

    def _chunk_name(self) -> str:
        name = f"{self.writer_id}-{self.seq:08d}"
        self.seq += 1
        return name

    def _encode_buffers(self, odb: Any, edits: dict[str, str | None]) -> None:
        for key, series in self.series.items():
            if not series.values:
                continue
            packed = pack_values(series.values)
            blob = odb.write("blob", encode_metric_chunk(series.steps, series.stamps, series.values, packed))
            name = self._chunk_name()
            edits[f"series/{key_to_name(key)}/{name}"] = blob
            summary = self.summaries.get(key)
            if summary is None:
                summary = self.summaries[key] = SeriesSummary()
            summary.add(name, blob, series.steps, series.stamps, series.values, packed)
            self.pending_chunks.setdefault(key, []).append(blob)
            self.state.metrics[key] = MetricSummary(value=series.values[-1], step=series.steps[-1],
                                                    timestamp=series.stamps[-1])
            series.steps, series.stamps, series.values = [], [], []
        for key, items in self.observations.items():
            if not items:
                continue
            epochs, stamps, values = zip(*items, strict=True)
            blob = odb.write("blob", encode_observation_chunk(list(epochs), list(stamps), list(values)))
            edits[f"observations/{key_to_name(key)}/{self._chunk_name()}"] = blob

    # -- ledger transactions -----------------------------------------------------------
    def flush(self) -> None:
        """Everything buffered into the ledger: chunks and the transaction in one pack.
        All or nothing: on a failure every point stays buffered for the next try."""
        with self._all_or_nothing(), self.store.git.odb.batch():
            self.spill(journal=False)
            self.write_ledger()
        self.write_failure = None

    def finish(self, status: str, exit_code: int | None) -> None:
        """The last transaction of an active run, then its journal is removed. On a
        failure the run stays active with every point, and ``finish`` can be tried again."""
        with self._all_or_nothing(), self.store.git.odb.batch():  # chunks and the transaction: one pack
            self.spill(journal=False)
            self.state.status = status
            self.state.ended = utc_timestamp()
            self.state.exit_code = exit_code
            self.dirty = True
            self._stage_summaries()
            self.write_ledger()
        if self.journal is not None:
            self.journal.close(remove=True)
            self.journal = None

    def _stage_summaries(self) -> None:
        """The summary of each long series this writer spilled, with the run's last
        transaction (``summaries/<key>/<writer>``; none for short series)."""
        for key, summary in self.summaries.items():
            blob = summary.encode()
            if blob is not None:
                self.pending[f"summaries/{key_to_name(key)}/{self.writer_id}"] = blob

    def state_bytes(self) -> bytes:
        """The state as the next write stores it (lamport clock advanced)."""
        state = self.state
        state.lamport += 1
        state.writer = self.writer_id
        state.updated = utc_timestamp()
        return codec.encode(state)

    def write_ledger(self) -> None:
        if not self.dirty:
            return
        store, run_id = self.store, self.run_id
        base = run_dir(run_id)
        changes: dict[str, bytes | str | None] = {}
        for path, value in self.pending.items():
            if value is not None:  # a blob not written yet goes in as its content
                changes[f"{base}/{path}"] = self.deferred.get(value, value) if isinstance(value, str) else value
        if not self.stored:
            changes[f"{base}/record"] = codec.encode(self.record)
        changes[f"{base}/state"] = self.state_bytes()
        pointer = None
        if not self.stored:
            # the link to the commit goes in this same ledger transaction
            links, pointer = commit_link(store, run_id, self.record)
            changes.update(links)
        updates = [store.ledger.update(changes, f"prov: run {run_id[:12]} {self.state.status}")]
        commit_on_refs(store.git, updates if pointer is None else [*updates, pointer])
        self.deferred = {}
        self.stored = True
        self.pending = {}
        self.pending_chunks = {}
        self.unjournaled = {}
        self.dirty = False
        self.last_flush = time.time()
        if self.journal is not None:
            self.journal.mark_flushed()

    def write_state_now(self) -> None:
        """A metadata edit of a stored run (tags, name, lineage): its state, now."""
        self.store.ledger.apply({f"{run_dir(self.run_id)}/state": self.state_bytes()},
                                f"prov: update run {self.run_id[:12]}")
        self.dirty = False


def commit_link(store: ProvStore, run_id: str, record: RunRecord) -> tuple[dict[str, str], RefUpdate | None]:
    """What links a run to its commit: the ledger entry ``commits/…/<run id>`` (to go
    with the run's first transaction) and, when the commit's note does not point at its
    runs yet, the notes update adding the ``runs`` line (once per commit: a run never
    rewrites a note that grows with the commit's runs)."""
    commit = record.code.commit
    if not commit:
        return {}, None
    links = {run_link_path(commit, run_id): run_id}
    known = (store.git.common_dir, commit)
    if known in _pointed or _note_points(store, commit):
        _pointed.add(known)
        return links, None
    line = codec.encode(CommitRuns(commit=commit, ref=LEDGER_REF, path=store.ledger.runs_path(commit),
                                  schema=record.schema))
    return links, store.notes.update({commit: [line]}, f"prov: list the runs of {commit[:12]} in {LEDGER_REF}")


#: (git dir, commit) whose note this process has seen with its ``runs`` line
_pointed: set[tuple[str | None, str]] = set()
#: the local record of note blobs seen holding their commit's ``runs`` line
#: (``.git/prov/``; never in a git object), and the size it is kept under
POINTING_NOTES = "notes-with-runs"
_POINTING_MAX = 1 << 16


def _note_points(store: ProvStore, commit: str) -> bool:
    """Whether ``commit``'s note holds its ``runs`` line. Once seen, the pair of the
    commit and its note's blob id is recorded, so that the next run on that commit, in
    another process, compares ids and reads no note: git's repacks store the note as a
    delta in a chain that deepens as they repeat (5,000 runs on one commit: 8 deltas
    applied to read it at the 300th run, 29 at the 4,900th; 0.47 -> 1.56 ms a run).
    A blob id names its content, so a recorded pair stays true; a note rewritten since
    has another id and is read again."""
    blob = store.notes.blob_of(commit)
    if blob is None:
        return False
    record = os.path.join(store.prov_dir, POINTING_NOTES) if store.prov_dir else None
    pair = f"{commit} {blob}\n".encode()
    if record is not None:
        with contextlib.suppress(OSError), open(record, "rb") as f:
            if b"\n" + pair in b"\n" + f.read(_POINTING_MAX):
                return True
    if not has_runs_line(split_note(store.git.odb.read_typed(blob, "blob")), commit):
        return False
    if record is not None:
        _remember_pair(record, pair)
    return True


def _remember_pair(record: str, pair: bytes) -> None:
    """``pair`` appended to the record, which past half its size keeps its newest
    quarter (``logfile.trim``). Only a shortcut: a pair lost to a race is read from the
    note next time."""
    with contextlib.suppress(OSError):
        trim(record, _POINTING_MAX // 2, _POINTING_MAX // 4 // len(pair))
        with open(record, "ab") as f:
            f.write(pair)


def has_runs_line(lines: list[bytes], commit: str) -> bool:
    """Whether a note's lines hold the ``runs`` line of ``commit`` (any release's)."""
    head = b'{"commit":"%s",' % commit.encode()
    return any(line.startswith(head) and b'"kind":"runs"' in line for line in lines)
