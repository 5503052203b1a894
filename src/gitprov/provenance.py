"""Reading a commit's provenance: its note's records (captures, run links, rewrite
links) and the run links still waiting in a process's note queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from . import codec
from .errors import DataError
from .model import CommitCapture, RewriteLink, RunLink
from .store.note_queue import pending_lines
from .store.notes import NOTES_REF

if TYPE_CHECKING:
    from .store.prov_store import ProvStore

__all__ = ["CommitProvenance", "commit_provenance", "history_provenance", "note_records"]


class CommitProvenance(msgspec.Struct, kw_only=True):
    """Everything prov knows about one commit (what ``prov show`` prints)."""

    commit: str
    summary: str
    captures: list[CommitCapture] = []
    runs: list[RunLink] = []
    rewrites: list[RewriteLink] = []
    #: the lexicon manifest hash the records pin (None without records).
    schema: str | None = None

    @property
    def has_provenance(self) -> bool:
        return bool(self.captures or self.runs or self.rewrites)

    def to_json(self) -> dict[str, Any]:
        return codec.to_plain(self)


def note_records(store: ProvStore, commit: str, notes_tip: str | None = None,
                 pending: dict[str, list[bytes]] | None = None) -> list[Any]:
    """Decoded records of ``commit``'s note (a commit id or any revision), in stored
    order, then the run links still waiting in a process's note queue (``pending``:
    read now when None)."""
    if not store.git.fmt.is_id(commit):
        commit = store.git.resolve(commit)  # a revision: HEAD, a branch, a short id
    lines = store.notes.read(commit, notes_tip)
    waiting = (pending_lines(store.notes) if pending is None else pending).get(commit)
    if waiting:
        stored = set(lines)
        lines += sorted({line for line in waiting if line not in stored})
    records = []
    for i, line in enumerate(lines, 1):
        try:
            records.append(codec.decode_note_line(line, f"note of commit {commit[:12]}, line {i}"))
        except DataError as exc:
            raise type(exc)(
                f"{NOTES_REF}: {exc}; inspect it with 'git notes --ref=prov show {commit[:12]}'"
            ) from exc
    return records


def commit_provenance(store: ProvStore, commit: str, notes_tip: str | None = None,
                      pending: dict[str, list[bytes]] | None = None) -> CommitProvenance:
    """The provenance of the commit id ``commit``."""
    info = store.git.read_commit(commit)
    prov = CommitProvenance(commit=commit, summary=info.summary)
    for record in note_records(store, commit, notes_tip, pending):
        if isinstance(record, CommitCapture):
            prov.captures.append(record)
        elif isinstance(record, RunLink):
            prov.runs.append(record)
        elif isinstance(record, RewriteLink):
            prov.rewrites.append(record)
    pins = [r.schema.lexicon for r in (*prov.captures, *prov.runs, *prov.rewrites)]
    prov.schema = pins[0] if pins else None
    return prov


def history_provenance(store: ProvStore, spec: str | None = None, limit: int | None = None) -> list[CommitProvenance]:
    """Provenance of each commit in ``spec`` (``A..B``, a rev; default HEAD), newest first."""
    include, exclude = store.git.resolve_range(spec) if spec else ([store.git.head()], [])
    tip = store.notes.tip()
    pending = pending_lines(store.notes)
    return [commit_provenance(store, c, tip, pending) for c in store.git.walk(include, exclude, limit)]
