"""Reading a commit's provenance: its note's records (captures, rewrite links, the
``runs`` line) and the runs the ledger lists under it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from . import codec
from .errors import DataError
from .model import CommitCapture, CommitRuns, RewriteLink, RunLink, RunRecord
from .store.notes import NOTES_REF

if TYPE_CHECKING:
    from .store.prov_store import ProvStore

__all__ = ["BULK_RUNS", "CommitProvenance", "ListedRuns", "commit_provenance", "history_provenance", "note_records"]

#: from this many runs at a commit on, their records are read through git cat-file
#: (``index.reading.BULK_MIN``; that module, which starts threads and git, is imported
#: only then: ``prov show`` of a commit with a few runs stays lean)
BULK_RUNS = 200


class CommitProvenance(msgspec.Struct, kw_only=True):
    """Everything prov knows about one commit (what ``prov show`` prints)."""

    commit: str
    summary: str
    captures: list[CommitCapture] = []
    #: runs made against this commit, and against the commits it replaced whose notes
    #: were copied to it (amend, rebase), oldest first
    runs: list[RunLink] = []
    rewrites: list[RewriteLink] = []
    #: the lexicon manifest hash the records pin (None without records).
    schema: str | None = None
    #: what could not be read and was left out (a foreign note line, a corrupt or
    #: missing run record), each naming the command that shows or repairs it
    problems: list[str] = []

    @property
    def has_provenance(self) -> bool:
        return bool(self.captures or self.runs or self.rewrites)

    def to_json(self) -> dict[str, Any]:
        return codec.to_plain(self)


def note_records(store: ProvStore, commit: str, notes_tip: str | None = None,
                 problems: list[str] | None = None) -> list[Any]:
    """Decoded records of ``commit``'s note (a commit id or any revision), in stored order.

    A line that is not a record (a teammate's ``git notes append -m "reviewed"``) raises
    ``DataError``, or, given ``problems``, is described there and skipped."""
    if not store.git.fmt.is_id(commit):
        commit = store.git.resolve(commit)  # a revision: HEAD, a branch, a short id
    records = []
    for i, line in enumerate(store.notes.read(commit, notes_tip), 1):
        try:
            records.append(codec.decode_note_line(line, f"note of commit {commit[:12]}, line {i}"))
        except DataError as exc:
            message = f"{NOTES_REF}: {exc}; inspect it with 'git notes --ref=prov show {commit[:12]}'"
            if problems is None:
                raise type(exc)(message) from exc
            problems.append(message)
    return records


def commit_provenance(store: ProvStore, commit: str, notes_tip: str | None = None,
                      ledger_tip: str | None = None, *, lazy: bool = False) -> CommitProvenance:
    """The provenance of the commit id ``commit``. ``lazy``: its ``runs`` are a
    ``ListedRuns``, read when first asked for and, when many, sorted on disk, so a
    caller can print the commit before them and never hold them all (``prov show``)."""
    info = store.git.read_commit(commit)
    prov = CommitProvenance(commit=commit, summary=info.summary)
    runs: dict[str, RunLink] = {}
    listed = {commit}  # commits whose runs the ledger lists: this one, and those copied here
    for record in note_records(store, commit, notes_tip, prov.problems):
        if isinstance(record, CommitCapture):
            prov.captures.append(record)
        elif isinstance(record, CommitRuns):
            listed.add(record.commit)
        elif isinstance(record, RunLink):  # format 1: a line per run
            runs.setdefault(record.run, record)
        elif isinstance(record, RewriteLink):
            prov.rewrites.append(record)
    ledger_tip = ledger_tip if ledger_tip is not None else store.ledger.tip()
    pins = [r.schema.lexicon for r in (*prov.captures, *prov.rewrites)]
    prov.schema = pins[0] if pins else None  # a run's pin comes before a rewrite's, once read
    links = ListedRuns(store, prov, sorted(listed), runs, ledger_tip, spill=lazy)
    prov.runs = links if lazy else list(links)  # type: ignore[assignment]
    return prov


class ListedRuns:
    """The runs listed under a commit (and under the commits whose notes were copied to
    it), oldest first, read on first use: their records in process for a few, through
    ``git cat-file`` for many; ``spill``: sorted on disk (``_util.spill``), a run
    decoded at a time as it is iterated. Reading fills the provenance's ``problems``
    and ``schema``."""

    def __init__(self, store: ProvStore, prov: CommitProvenance, listed: list[str], links: dict[str, RunLink],
                 ledger_tip: str | None, *, spill: bool) -> None:
        self._store = store
        self._prov = prov
        self._listed = listed
        self._links = links  # format-1 note lines
        self._tip = ledger_tip
        self._spill = spill
        self._items: Any = None

    def _load(self) -> Any:
        if self._items is not None:
            return self._items
        from itertools import chain, islice

        prov, links = self._prov, self._links
        ids = (run_id for run_id in _listed_ids(self._store, self._listed, self._tip) if run_id not in links)
        read = _run_links(self._store, ids, self._tip, prov.problems) if self._tip is not None else iter(())
        found = chain(links.values(), read)
        head = list(islice(found, BULK_RUNS)) if self._spill else None
        if head is None or len(head) < BULK_RUNS:  # few (or all asked for): sorted in memory
            self._items = sorted(chain(head or (), found), key=lambda link: (link.created, link.run))
            first = self._items[0] if self._items else None
        else:
            from ._util.spill import SortedSpill

            spill = SortedSpill(2)
            encode = msgspec.msgpack.Encoder().encode
            for link in chain(head, found):
                spill.add((link.created, link.run), encode(link))
            del head
            self._items = spill
            first = next(iter(self), None)
        pins = [r.schema.lexicon for r in (*prov.captures, *([first] if first else []), *prov.rewrites)]
        prov.schema = pins[0] if pins else None
        return self._items

    def __len__(self) -> int:
        return len(self._load())

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[RunLink]:
        items = self._load()
        if isinstance(items, list):
            yield from items
            return
        decode = msgspec.msgpack.Decoder(RunLink).decode
        for value in items:
            yield decode(value)

    def close(self) -> None:
        if self._items is not None and not isinstance(self._items, list):
            self._items.close()


def _listed_ids(store: ProvStore, commits: list[str], ledger_tip: str | None) -> Iterator[str]:
    """The ids listed under ``commits``, in id order, each once."""
    if ledger_tip is None:
        return
    from heapq import merge

    last = None
    for run_id in merge(*(store.ledger.iter_commit_run_ids(c, ledger_tip) for c in commits)):
        if run_id != last:
            yield run_id
            last = run_id


def _run_links(store: ProvStore, run_ids: Iterable[str], ledger_tip: str, problems: list[str]) -> Iterator[RunLink]:
    """Listed runs as ``prov show`` reports them, from their records: read in process
    for a few, through one ``git cat-file`` (index/reading.py) for many (a sweep of
    thousands at one commit), where they are (format 3: run directories; format 4: run
    blobs) found by walking the ledger's runs beside the ids (both in id order). A run
    whose record cannot be read is described in ``problems`` and left out."""
    from itertools import chain, islice

    from .store.ledger import run_dir

    def link(run_id: str, read: Any) -> RunLink | None:
        try:
            data = read()
            if data is None:
                raise DataError("listed under its commit but not in the ledger")
            record = codec.decode(data, RunRecord, f"record of run {run_id[:12]}")
        except DataError as exc:
            problems.append(f"{run_dir(run_id)}: {exc}; left out, run 'prov verify' for the repair")
            return None
        return RunLink(run=run_id, name=record.name, experiment=record.experiment, created=record.created,
                       schema=record.schema)

    run_ids = iter(run_ids)
    head = list(islice(run_ids, BULK_RUNS))
    view = store.ledger.log_view(ledger_tip)
    if view is None:  # format 3: the record is the blob the run id names
        def read_record(run_id: str) -> bytes | None:
            return store.git.odb.read_typed(run_id, "blob")
    else:
        def read_record(run_id: str) -> bytes | None:
            return view.run_file(run_id, "record")
    if len(head) < BULK_RUNS:
        for run_id in head:
            found = link(run_id, lambda r=run_id: read_record(r))
            if found is not None:
                yield found
        return
    from .index.reading import read_run_blobs

    as_log = store.ledger.is_log(ledger_tip)

    def dirs() -> Iterator[tuple[str, str]]:
        entries = store.ledger.run_entries(ledger_tip)
        current = next(entries, None)
        for run_id in chain(head, run_ids):
            while current is not None and current[0] < run_id:
                current = next(entries, None)
            if current is None or current[0] != run_id or current[1].is_tree == as_log:
                problems.append(f"{run_dir(run_id)}: listed under its commit but not in the ledger; left out, run "
                                "'prov verify'")
                continue
            yield run_id, current[1].oid

    for blobs in read_run_blobs(store.git, dirs(), log=as_log):
        found = link(blobs.run_id, lambda b=blobs: b.record)
        if found is not None:
            yield found


def history_provenance(store: ProvStore, spec: str | None = None, limit: int | None = None) -> list[CommitProvenance]:
    """Provenance of each commit in ``spec`` (``A..B``, a rev; default HEAD), newest first."""
    include, exclude = store.git.resolve_range(spec) if spec else ([store.git.head()], [])
    notes_tip, ledger_tip = store.notes.tip(), store.ledger.tip()
    return [commit_provenance(store, c, notes_tip, ledger_tip) for c in store.git.walk(include, exclude, limit)]
