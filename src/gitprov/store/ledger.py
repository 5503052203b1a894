"""``refs/prov/ledger``: a commit chain whose tree holds every run, sharded, and the
runs made against each commit.

Each ledger commit is one write transaction. The tree layout (see
``docs/design/data-model.md``)::

    format                                   {"format_version": 3, "kind": "ledger", ...}
    runs/<id[:2]>/<id>/record                immutable run header
    runs/<id[:2]>/<id>/state                 mutable scalars
    runs/<id[:2]>/<id>/...                   series chunks, artifacts, lineage
    commits/<c[:2]>/<c>/<id[:2]>/<id>        the run's record blob: run <id> was made at commit <c>

A ledger of an older format is upgraded by the first transaction that meets it
(``upgrade_changes``): a format-1 ledger gets the ``commits/`` entries of every run, in
that same transaction, so a write never leaves a half-upgraded ledger; a format-2 ledger
gets its new marker (format 3 encodes new metric chunks as byte planes; the old ones read
as they are).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from .._version import FORMAT_RELEASES, FORMAT_VERSION, upgrade_command
from ..errors import DataError, FormatVersionError, UsageError
from .objects import MODE_BLOB, TreeEntry
from .odb import ObjectDatabase
from .repo import GitRepository
from .transaction import RefUpdate, commit_on_ref
from .trees import edit_tree, read_path, read_tree

__all__ = ["LEDGER_FORMAT", "LEDGER_REF", "LINKS_FROM", "TREE_FORMAT", "Ledger", "commit_runs_dir", "links_complete", "marker_version",
           "run_dir", "run_link_path", "upgrade_changes"]

LEDGER_REF = "refs/prov/ledger"
#: the format of the ledger kept as a tree of every run (format 4 keeps it as a log)
TREE_FORMAT = 3
#: the ``format`` blob at the root of a format-3 ledger: canonical JSON (what ``codec.encode``
#: gives); ``requires`` names the release that reads it, for the message of an older reader
LEDGER_FORMAT = b'{"format_version":%d,"kind":"ledger","requires":"git-prov>=%s"}' % (
    TREE_FORMAT, FORMAT_RELEASES[TREE_FORMAT].encode())
#: the first format whose ledger lists every run under its commit (``commits/``): an
#: older ledger is upgraded by adding every run's entry, a newer one by its marker alone
LINKS_FROM = 2
#: the layout ``Ledger`` writes an empty ledger or one of format 3 in (``Ledger.write_layout``):
#: format 4's log; ``GIT_PROV_LEDGER_LAYOUT=tree`` keeps format 3's tree (to compare the two,
#: and for tests of format 3)
WRITE_LAYOUT = "log"


def run_dir(run_id: str) -> str:
    """The directory of a run inside the ledger tree (two-character fan-out)."""
    return f"runs/{run_id[:2]}/{run_id}"


def commit_runs_dir(commit: str) -> str:
    """The directory listing the runs made against ``commit``."""
    return f"commits/{commit[:2]}/{commit}"


def run_link_path(commit: str, run_id: str) -> str:
    """The entry that says run ``run_id`` was made at ``commit``; it names the run's
    record blob, whose id is the run id. Fanned out by run id, so adding a run to a
    commit with thousands rewrites a small tree, not one that grows with them."""
    return f"{commit_runs_dir(commit)}/{run_id[:2]}/{run_id}"


class Ledger:
    """Read and transact on the ledger of one repository, in either layout: format 3's
    tree of every run, or format 4's log (``store/ledger_log.py``), as its tip's
    ``format`` marker says. Readers ask about one run, one commit or every run, and
    writers give changes named as format 3 names them; only this class knows which
    layout holds them."""

    def __init__(self, repo: GitRepository, ref: str = LEDGER_REF, *, layout: str | None = None) -> None:
        self.repo = repo
        self.ref = ref
        #: what a write makes of an empty ledger or one of format 3: ``tree`` keeps format
        #: 3, ``log`` makes format 4 (on format 3, a checkpoint of every run first)
        self.write_layout = layout or os.environ.get("GIT_PROV_LEDGER_LAYOUT") or WRITE_LAYOUT
        if self.write_layout not in ("tree", "log"):
            raise UsageError(f"GIT_PROV_LEDGER_LAYOUT is {self.write_layout!r}; it is 'tree' (format 3) or 'log' "
                             "(format 4), or unset")
        self._fold_cache: Any = None
        self._view: Any = None  # the log view of the last tip asked about

    def tip(self) -> str | None:
        return self.repo.refs.read(self.ref)

    def tree(self, tip: str | None = None) -> str | None:
        tip = tip if tip is not None else self.tip()
        return self.repo.read_commit(tip).tree if tip else None

    def read_file(self, path: str, tip: str | None = None) -> bytes | None:
        entry = read_path(self.repo.odb, self.tree(tip), path)
        if entry is None or entry.is_tree:
            return None
        return self.repo.odb.read_typed(entry.oid, "blob")

    def list_dir(self, path: str, tip: str | None = None) -> dict[str, TreeEntry]:
        root = self.tree(tip)
        if not path:
            return read_tree(self.repo.odb, root)
        entry = read_path(self.repo.odb, root, path)
        if entry is None or not entry.is_tree:
            return {}
        return read_tree(self.repo.odb, entry.oid)

    # -- the layout ------------------------------------------------------------------

    def is_log(self, tip: str | None = None) -> bool:
        """Whether the ledger at ``tip`` (default: now) is format 4's log."""
        return _is_log_tree(self.repo, self.tree(tip))

    def fold_cache(self) -> Any:
        """This ledger's ``ledger_log.FoldCache``, opened when first asked for."""
        if self._fold_cache is None:
            from .ledger_log import FoldCache

            self._fold_cache = FoldCache(self.repo)
        return self._fold_cache

    def run_blobs_apart(self, tip: str) -> tuple[list[tuple[str, str]], Any]:
        """A log's ``(run id, run blob id)`` at ``tip`` (the ledger's), in id order, and the
        callable storing the fold cache that made them, to run beside other work, or None
        (``FoldCache.fold_apart``); nothing may read this ledger until it has run."""
        self._view = None
        return self.fold_cache().fold_apart(tip)

    def runs_path(self, commit: str) -> str:
        """Where plain git finds the runs made at ``commit`` once the next write is in
        (the ``path`` of a note's ``runs`` line): format 3's directory of them, or the
        log's pathspec of their run blobs (``git log --name-only <ref> -- '*^<commit>'``)."""
        if self.write_layout == "log" or self.is_log():
            return f"*^{commit}"
        return commit_runs_dir(commit)

    def log_view(self, tip: str | None = None) -> Any:
        """``ledger_log.LogView`` of the ledger at ``tip`` when it is a log, else None."""
        current = self.tip()
        tip = tip if tip is not None else current
        if tip is None or not self.is_log(tip):
            return None
        from .ledger_log import LogView

        if tip != current:  # another tip (a remote's, an older one): folded once, the cache left at the ledger's
            return LogView(self.repo, tip)
        if self._view is not None and self._view.tip == tip:  # the same tip: its answers, read once
            return self._view
        self._view = LogView(self.repo, tip, self.fold_cache)  # opened when a question needs it (a write does not)
        return self._view

    # -- one run, one commit: where the format lays them out is known here only --------

    def run_file(self, run_id: str, name: str, tip: str | None = None) -> bytes | None:
        """The content of one of a run's files (``record``, ``state``, ``code.patch``,
        ``artifacts/<key>``, …), None when the run or the file is not there."""
        if (view := self.log_view(tip)) is not None:
            return view.run_file(run_id, name)
        return self.read_file(f"{run_dir(run_id)}/{name}", tip)

    def run_folder(self, run_id: str, name: str, tip: str | None = None) -> dict[str, TreeEntry]:
        """The entries of one of a run's folders (``series/<key>``, ``artifacts``, …)."""
        if (view := self.log_view(tip)) is not None:
            return view.run_folder(run_id, name)
        return self.list_dir(f"{run_dir(run_id)}/{name}", tip)

    def run_version(self, run_id: str, tip: str | None = None) -> str | None:
        """An id that changes whenever anything stored for the run does (format 3: the
        tree id of its directory), None when the ledger has no such run."""
        if (view := self.log_view(tip)) is not None:
            return view.run_version(run_id)
        entry = read_path(self.repo.odb, self.tree(tip), run_dir(run_id))
        return entry.oid if entry is not None and entry.is_tree else None

    def run_ids_with_prefix(self, prefix: str, tip: str | None = None) -> list[str]:
        """The ids of the runs that start with ``prefix`` (at least two characters)."""
        if (view := self.log_view(tip)) is not None:
            return view.run_ids_with_prefix(prefix)
        return sorted(name for name in self.list_dir(f"runs/{prefix[:2]}", tip) if name.startswith(prefix))

    def has_runs_at(self, commit: str, tip: str | None = None) -> bool:
        """Whether any run was made at ``commit`` (one directory read, not its runs)."""
        if (view := self.log_view(tip)) is not None:
            return bool(view.run_ids_at(commit))
        return bool(self.list_dir(commit_runs_dir(commit), tip))

    def run_entries(self, tip: str | None = None) -> Iterator[tuple[str, TreeEntry]]:
        """``(run id, its entry)`` of every run, in id order: in format 3 the run's
        directory under every shard of ``runs/``, shard by shard (an entry that is not a
        directory is for ``prov verify`` to name); in format 4 its run blob (record and
        state)."""
        if (view := self.log_view(tip)) is not None:
            for run_id, oid in view.run_blobs():
                yield run_id, TreeEntry(MODE_BLOB, run_id, oid)
            return
        for _, shard in sorted(self.list_dir("runs", tip).items()):
            if shard.is_tree:
                yield from sorted(read_tree(self.repo.odb, shard.oid, keep=False).items())

    def run_blobs_since(self, since: str, tip: str) -> list[tuple[str, str]] | None:
        """Format 4: ``(run id, run blob id)`` of the runs the commits above ``since``
        wrote, in id order; None when the ledger did not grow from ``since`` (not a log
        there, or not an ancestor of ``tip``), and every run must be looked at."""
        if not self.is_log(since) or not self.is_log(tip):
            return None
        from .ledger_log import run_blobs_since

        return run_blobs_since(self.repo, tip, since)

    def run_ids(self, tip: str | None = None) -> Iterator[str]:
        return (run_id for run_id, _ in self.run_entries(tip))

    def commit_run_ids(self, commit: str, tip: str | None = None) -> list[str]:
        """The ids of the runs made against ``commit`` (format 2's ``commits/``)."""
        return sorted(self.iter_commit_run_ids(commit, tip))

    def iter_commit_run_ids(self, commit: str, tip: str | None = None) -> Iterator[str]:
        """The same ids, in id order, a fan-out directory at a time (not all held)."""
        if (view := self.log_view(tip)) is not None:
            yield from view.run_ids_at(commit)
            return
        for _, shard in sorted(self.list_dir(commit_runs_dir(commit), tip).items()):
            if shard.is_tree:
                yield from sorted(name for name, e in read_tree(self.repo.odb, shard.oid, keep=False).items()
                                  if not e.is_tree)

    def lists_run_commits(self, tip: str | None = None) -> bool:
        """Whether every run is listed under its commit (format 2 on; format 1 did not)."""
        return self.is_log(tip) or links_complete(self.read_file("format", tip))

    def commits_with_runs(self, tip: str | None = None) -> list[str]:
        """The commits runs are listed under, sorted."""
        if (view := self.log_view(tip)) is not None:
            return view.commits_with_runs()
        return sorted(commit for shard in self.list_dir("commits", tip).values() if shard.is_tree
                      for commit in read_tree(self.repo.odb, shard.oid, keep=False))

    def apply(self, changes: dict[str, bytes | str | None], message: str,
              format_blob: bytes = LEDGER_FORMAT) -> str | None:
        """Write ``{path: bytes | blob id | None}`` as one transaction; retries lost races."""
        return commit_on_ref(self.repo, *self.update(changes, message, format_blob))

    def update(self, changes: dict[str, bytes | str | None], message: str,
               format_blob: bytes = LEDGER_FORMAT) -> RefUpdate:
        """The same change as a ``RefUpdate``, for ``commit_on_refs`` with other refs.
        ``changes`` are named as format 3 names them; on a log they become its entries
        (``ledger_log.log_entries``)."""
        changes = dict(changes)
        odb = self.repo.odb
        to_log = self.write_layout == "log" and format_blob == LEDGER_FORMAT

        def build(tree: str | None, tip: str | None) -> str | None:
            if tree is None and to_log or _is_log_tree(self.repo, tree):  # a new log, or one to add to
                return self._log_transaction(tip, changes)
            if to_log:
                return self._checkpoint(tree, changes)
            upgrade = upgrade_changes(odb, tree) if format_blob == LEDGER_FORMAT else {}
            return edit_tree(odb, tree, {**upgrade, "format": format_blob, **changes})

        return self.ref, build, message

    def _log_transaction(self, tip: str | None, changes: dict[str, bytes | str | None]) -> str | None:
        from . import ledger_log as log

        views: list[Any] = []  # the view of ``tip``, made when first needed (a run this process wrote needs none)

        def current(run_id: str, part: str) -> Any:
            if part == "record" and run_id in _records:  # immutable: this process has seen it
                return _records[run_id]
            if part == "artifacts" and run_id in _inline:  # as this process last wrote them
                return _inline[run_id]
            if tip is None:  # the log's first commit
                return None
            if not views:
                views.append(self.log_view(tip))
            parts = views[0].run_blob(run_id)
            return None if parts is None else parts[("record", "state", "artifacts").index(part)]

        kept: dict[str, dict[str, bytes]] = {}
        entries = log.log_entries(changes, current, self._read_blob, kept)
        _remember(changes, kept)
        if not entries and tip is not None:
            return None  # nothing to add: no commit
        return log.log_tree(self.repo, entries)  # (a new ledger's first commit, even with no run: ``prov init``)

    def _checkpoint(self, tree: str | None, changes: dict[str, bytes | str | None]) -> str:
        """The first commit of a log on a format-3 ledger: every run of its ``tree`` and
        ``changes``, as a checkpoint."""
        from . import ledger_log as log

        if tree is not None:
            marker = read_path(self.repo.odb, tree, "format")
            if marker is None and read_tree(self.repo.odb, tree):
                raise DataError(FOREIGN_LEDGER)
            if marker is not None and not marker.is_tree:
                _refuse_newer(self.repo.odb.read_typed(marker.oid, "blob"))
        # every run's new blob stored as it is made: the upgrade of a big ledger holds
        # its names and ids, and the run blobs of the runs ``changes`` write
        touched = {segments[2] for path in changes if len(segments := path.split("/")) > 3 and segments[0] == "runs"}
        base, blobs = log.stored_checkpoint(self.repo, tree, touched)
        hash_blob = self.repo.fmt.hash_object

        def current(run_id: str, part: str) -> Any:
            data = blobs.get(run_id)
            if data is None:
                return None
            return log.run_blob_parts(data, run_id, hash_blob)[("record", "state", "artifacts").index(part)]

        kept: dict[str, dict[str, bytes]] = {}
        entries = log.log_entries(changes, current, self._read_blob, kept)
        _remember(changes, kept)
        return log.checkpoint_tree(self.repo, {**base, **entries})

    def _read_blob(self, oid: str) -> bytes:
        return self.repo.odb.read_typed(oid, "blob")


#: run id -> its record's bytes, as this process wrote them (a record never changes: a
#: run's later transactions in a log need it without reading the ledger)
_records: dict[str, bytes] = {}
#: run id -> the artifacts its blob holds, as this process last wrote it
_inline: dict[str, dict[str, bytes]] = {}


def _remember(changes: dict[str, bytes | str | None], kept: dict[str, dict[str, bytes]]) -> None:
    """What this process wrote of its runs that their next transactions need: their
    records, and the artifacts their blobs hold."""
    if len(_records) > 4096:
        _records.clear()
        _inline.clear()
    for path, value in changes.items():
        if path.endswith("/record") and path.startswith("runs/") and isinstance(value, bytes):
            _records[path.split("/")[2]] = value
    _inline.update(kept)


def _is_log_tree(repo: GitRepository, tree: str | None) -> bool:
    """Whether a ledger tree's ``format`` marker is format 4's (a transaction, merge or
    checkpoint of the log)."""
    if tree is None:
        return False
    marker = read_tree(repo.odb, tree).get("format")
    if marker is None or marker.is_tree:
        return False
    markers = _log_markers.get(repo.fmt.name)
    if markers is None:
        from .ledger_log import CHECKPOINT_MARKER, LOG_MARKER

        markers = _log_markers[repo.fmt.name] = frozenset(
            repo.fmt.hash_object("blob", m) for m in (LOG_MARKER, CHECKPOINT_MARKER))
    return marker.oid in markers


_log_markers: dict[str, frozenset[str]] = {}


#: what a ledger ref that points at something else (a code commit) is told
FOREIGN_LEDGER = (f"{LEDGER_REF} does not point at a git-prov ledger (its tree has no format marker; was the ref "
                  f"moved?); find its last good commit with 'git reflog {LEDGER_REF}' and restore it with "
                  f"'git update-ref {LEDGER_REF} <commit>'")

_current_marker: dict[str, str] = {}  # object format name -> blob id of LEDGER_FORMAT


def upgrade_changes(odb: ObjectDatabase, tree: str | None) -> dict[str, bytes | str | None]:
    """The edits that bring ``tree`` to the current layout, made with the transaction's
    own (one tree written, none left dangling): none when its ``format`` marker is the
    current one (one tree read), else every run's ``commits/`` entry and the marker (a
    ledger of format 1, or one merged with a clone that runs an older release). A
    marker of a newer format is refused: an older release never rewrites what it
    cannot read. A ledger of format 2 (every run already listed) needs its marker alone:
    format 3 changed how metric chunks are encoded, and old chunks read as they are."""
    if tree is None:
        return {}
    marker = read_path(odb, tree, "format")
    current = _current_marker.get(odb.fmt.name)
    if current is None:
        current = _current_marker[odb.fmt.name] = odb.fmt.hash_object("blob", LEDGER_FORMAT)
    if marker is not None and marker.oid == current:
        return {}
    if marker is None and read_tree(odb, tree):  # every release writes the marker with every transaction
        raise DataError(FOREIGN_LEDGER)
    if marker is not None and not marker.is_tree:
        version = _refuse_newer(odb.read_typed(marker.oid, "blob"))
        if version is not None and version >= LINKS_FROM:
            return {"format": LEDGER_FORMAT}  # every run is listed already: the marker alone
    from .ledger_log import record_commit  # msgspec loads here: not on the commit hook's path

    links: dict[str, bytes | str | None] = {}
    runs = read_path(odb, tree, "runs")
    for shard in (read_tree(odb, runs.oid) if runs is not None and runs.is_tree else {}).values():
        if not shard.is_tree:
            continue
        for run_id, run in read_tree(odb, shard.oid).items():
            record = read_path(odb, run.oid, "record") if run.is_tree else None
            if record is None or record.is_tree:
                continue
            try:
                commit = record_commit(odb.read_typed(record.oid, "blob"))
            except DataError:
                continue  # not a record prov can read: verify names it; nothing to link
            if commit and odb.fmt.is_id(commit) and record.oid == run_id:
                links[run_link_path(commit, run_id)] = run_id
    links["format"] = LEDGER_FORMAT
    return links


def marker_version(data: bytes | None) -> int | None:
    """The format version a ledger ``format`` marker names; None when it names none."""
    if data is None:
        return None
    import msgspec

    try:
        marker = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None  # not JSON: verify reports it; the write puts the current marker back
    version = marker.get("format_version") if isinstance(marker, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def links_complete(data: bytes | None) -> bool:
    """Whether a ledger with this ``format`` marker lists every run under its commit
    (format 2 on)."""
    version = marker_version(data)
    return version is not None and LINKS_FROM <= version <= FORMAT_VERSION


def _refuse_newer(data: bytes) -> int | None:
    """The marker's version, unless it is newer than this git-prov: then the one-line
    error naming the release to install."""
    version = marker_version(data)
    if version is not None and version > FORMAT_VERSION:
        import msgspec

        requires = msgspec.json.decode(data).get("requires")
        raise FormatVersionError(
            f"the ledger ({LEDGER_REF}) uses format version {version}, newer than this git-prov "
            f"writes ({FORMAT_VERSION}); upgrade with: {upgrade_command(requires)}")
    return version
