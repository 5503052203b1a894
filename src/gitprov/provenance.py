"""Reading a commit's provenance: its note's records (captures, rewrite links, the
``runs`` line) and the runs the ledger lists under it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from . import codec
from .errors import DataError
from .model import CommitCapture, CommitRuns, RewriteLink, RunLink, RunRecord
from .store.notes import NOTES_REF

if TYPE_CHECKING:
    from .store.prov_store import ProvStore

__all__ = ["BULK_RUNS", "CommitProvenance", "commit_provenance", "history_provenance", "note_records"]

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
                      ledger_tip: str | None = None) -> CommitProvenance:
    """The provenance of the commit id ``commit``."""
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
    if ledger_tip is not None:
        ids = [run_id for made_at in sorted(listed) for run_id in store.ledger.commit_run_ids(made_at, ledger_tip)
               if run_id not in runs]
        runs.update((link.run, link) for link in _run_links(store, list(dict.fromkeys(ids)), ledger_tip, prov.problems))
    prov.runs = sorted(runs.values(), key=lambda link: (link.created, link.run))
    pins = [r.schema.lexicon for r in (*prov.captures, *prov.runs, *prov.rewrites)]
    prov.schema = pins[0] if pins else None
    return prov


def _run_links(store: ProvStore, run_ids: list[str], ledger_tip: str, problems: list[str]) -> list[RunLink]:
    """Listed runs as ``prov show`` reports them, from their records (the ledger's
    entries are the record blobs): read in process for a few, through one ``git
    cat-file`` (index/reading.py) for many (a sweep of thousands at one commit). A run
    whose record cannot be read is described in ``problems`` and left out."""
    from .store.ledger import run_dir

    def link(run_id: str, read: Any) -> RunLink | None:
        try:
            record = codec.decode(read(), RunRecord, f"record of run {run_id[:12]}")
        except DataError as exc:
            problems.append(f"{run_dir(run_id)}: {exc}; left out, run 'prov verify' for the repair")
            return None
        return RunLink(run=run_id, name=record.name, experiment=record.experiment, created=record.created,
                       schema=record.schema)

    if len(run_ids) < BULK_RUNS:
        links = [link(run_id, lambda r=run_id: store.git.odb.read_typed(r, "blob")) for run_id in run_ids]
        return [x for x in links if x is not None]
    from .index.reading import read_run_blobs

    dirs = []
    entries = dict(store.ledger.run_entries(ledger_tip))
    for run_id in run_ids:
        entry = entries.get(run_id)
        if entry is None or not entry.is_tree:
            problems.append(f"{run_dir(run_id)}: listed under its commit but not in the ledger; left out, run "
                            "'prov verify'")
            continue
        dirs.append((run_id, entry.oid))
    links = [link(blobs.run_id, lambda b=blobs: b.record) for blobs in read_run_blobs(store.git, dirs)]
    return [x for x in links if x is not None]


def history_provenance(store: ProvStore, spec: str | None = None, limit: int | None = None) -> list[CommitProvenance]:
    """Provenance of each commit in ``spec`` (``A..B``, a rev; default HEAD), newest first."""
    include, exclude = store.git.resolve_range(spec) if spec else ([store.git.head()], [])
    notes_tip, ledger_tip = store.notes.tip(), store.ledger.tip()
    return [commit_provenance(store, c, notes_tip, ledger_tip) for c in store.git.walk(include, exclude, limit)]
