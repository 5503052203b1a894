"""``prov verify``: check every stored record and the schema it pins.

Checks, in order: the prov refs point at commits; every note hangs on an existing
commit and every line decodes (known ``format_version``, the model's shape, a capture
naming its own commit); every record validates against the JSON Schema of the exact
lexicon it pins; the ledger's format marker and run directories are well formed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import msgspec

from . import codec
from .errors import DataError
from .model import CommitCapture, CommitRuns, RewriteLink, RunLink
from .store.prov_store import ProvStore

if TYPE_CHECKING:
    from ._util.idset import SortedIds
    from .schema import Lexicon
    from .store.objects import TreeEntry

__all__ = ["VerifyReport", "verify_repository"]


class VerifyReport(msgspec.Struct, kw_only=True):
    notes: int = 0
    records: int = 0
    runs: int = 0
    lexicons: list[str] = []
    #: runs whose commit no branch, tag or remote branch reaches: ``{run, commit, kept, present}``.
    unreachable: list[dict[str, Any]] = []
    problems: list[str] = []
    warnings: list[str] = []
    #: with ``signatures``: prov's commits by git's verdict (good, unsigned, bad, …)
    signatures: dict[str, int] = {}

    @property
    def ok(self) -> bool:
        return not self.problems


class _Lexicons:
    """Finds the lexicon a pin names: packaged, vendored, or in the pinned commit."""

    def __init__(self, store: ProvStore) -> None:
        from .schema import LEXICON_DIR, Lexicon, package_lexicon

        self.store = store
        self.by_hash: dict[str, Lexicon] = {}
        self._dir = LEXICON_DIR
        self._lexicon_cls = Lexicon
        #: files of any lexicon read (even one sharing a hash) that break its manifest
        self.problems: list[str] = []
        for lex in (package_lexicon(), self._vendored()):
            if lex is not None:
                self._add(lex)

    def _add(self, lex: Lexicon) -> None:
        self.problems.extend(lex.problems())
        self.by_hash.setdefault(lex.hash, lex)

    def _vendored(self) -> Lexicon | None:
        if self.store.work_tree is None:
            return None
        path = os.path.join(self.store.work_tree, self._dir)
        return self._lexicon_cls.from_dir(path) if os.path.isdir(path) else None

    def from_commit(self, commit: str) -> Lexicon | None:
        from .store.trees import read_path, read_tree

        git = self.store.git
        try:
            entry = read_path(git.odb, git.read_commit(commit).tree, self._dir)
        except DataError:
            return None
        if entry is None or not entry.is_tree:
            return None
        files = {
            name: git.odb.read_typed(e.oid, "blob")
            for name, e in read_tree(git.odb, entry.oid).items()
            if not e.is_tree and name.endswith(".json")
        }
        lex = self._lexicon_cls(files, f"{self._dir} in commit {commit[:12]}")
        self._add(lex)
        return lex

    def find(self, pin: str, commit: str | None) -> Lexicon | None:
        if pin not in self.by_hash and commit:
            self.from_commit(commit)
        return self.by_hash.get(pin)


#: git's ``%G?`` letters, as ``prov verify --signatures`` counts them
SIGNATURE_VERDICTS = {"G": "good", "U": "signed by a key that is not an allowed signer", "N": "unsigned", "B": "bad",
                      "X": "good, signature expired", "Y": "good, key expired", "R": "good, key revoked",
                      "E": "cannot be checked"}
#: only a good signature by an allowed signer: for ssh keys git says ``U`` of a key
#: missing from ``gpg.ssh.allowedSignersFile``, for OpenPGP of a key nobody certified
_ACCEPTED = ("G",)


def check_signatures(store: ProvStore, report: VerifyReport) -> None:
    """Every commit of the prov refs checked by git itself (``git log --format=%G?``,
    the rules of ``git verify-commit``: ``gpg.ssh.allowedSignersFile`` for ssh keys):
    anything but a good signature is a problem."""
    from .store import gitbin
    from .store.notes import NOTES_REF

    refs = [ref for ref in (store.ledger.ref, NOTES_REF) if store.git.refs.read(ref)]
    if not refs:
        return
    proc = gitbin.run(["log", "--format=%H %G? %GS", *refs, "--"], git_dir=store.git.git_dir or ".", text=True)
    if proc.returncode != 0:
        report.problems.append(f"git log could not check signatures: {gitbin.failure(proc)}")
        return
    counts: dict[str, int] = {}
    shown = 0
    for line in proc.stdout.splitlines():
        commit, _, rest = line.partition(" ")
        verdict, _, signer = rest.partition(" ")
        name = SIGNATURE_VERDICTS.get(verdict, f"unknown ({verdict})")
        counts[name] = counts.get(name, 0) + 1
        if verdict not in _ACCEPTED:
            shown += 1
            if shown <= 20:
                who = f" by {signer}" if signer else ""
                report.problems.append(f"prov commit {commit[:12]} is {name}{who}; see: git verify-commit {commit[:12]}")
    if shown > 20:
        report.problems.append(f"and {shown - 20} more prov commits not signed by an allowed signer")
    report.signatures = counts


def verify_repository(store: ProvStore, *, signatures: bool = False) -> VerifyReport:
    """Check every stored record; ``signatures``: every prov commit's signature too."""
    report = _verify(store)
    if signatures:
        check_signatures(ProvStore.of(store), report)
    return report


def _verify(store: ProvStore) -> VerifyReport:
    store = ProvStore.of(store)
    from .store.notes import NOTES_REF

    report = VerifyReport()
    git = store.git
    lexicons = _Lexicons(store)

    for ref in (NOTES_REF, store.ledger.ref):
        tip = git.refs.read(ref)
        if tip is None:
            report.warnings.append(f"{ref} does not exist yet")
            continue
        try:
            git.read_commit(tip)
        except DataError as exc:
            report.problems.append(f"{ref}: {exc}")

    try:
        items = list(store.notes.items())
    except DataError as exc:
        report.problems.append(f"{NOTES_REF}: {exc}")
        items = []
    linked: set[str] = set()  # runs a format-1 note line links
    pointed: set[str] = set()  # commits whose note has its runs line
    for commit, blob in items:
        report.notes += 1
        if not git.odb.contains(commit):
            report.warnings.append(f"note for missing commit {commit[:12]} (prune with 'git notes --ref=prov prune')")
        try:
            lines = [ln for ln in git.odb.read_typed(blob, "blob").split(b"\n") if ln.strip()]
        except DataError as exc:
            report.problems.append(f"note of {commit[:12]}: {exc}")
            continue
        decoded = []
        for i, line in enumerate(lines, 1):
            where = f"note of {commit[:12]}, line {i}"
            try:
                decoded.append((where, line, codec.decode_note_line(line, where)))
            except DataError as exc:
                report.problems.append(f"{exc} (prov show and prov log skip it; move it out of prov's notes with "
                                       f"'git notes --ref=prov edit {commit[:12]}')")
        # notes.rewriteRef copies a note to the rewritten commit, next to the link to its old id
        rewritten_from = {r.old for _, _, r in decoded if isinstance(r, RewriteLink)}
        for where, line, record in decoded:
            report.records += 1
            if isinstance(record, RunLink):
                linked.add(record.run)
            elif isinstance(record, CommitRuns) and record.commit == commit:
                pointed.add(commit)
            if isinstance(record, CommitCapture) and record.commit not in (commit, *rewritten_from):
                report.problems.append(f"{where}: capture names commit {record.commit[:12]}, not its own")
            _check_pin(report, lexicons, record, line, where, commit if git.odb.contains(commit) else None)

    try:
        as_log = store.ledger.is_log()  # format 4: its marker is one of the log's, known by its id
        fmt = None if as_log else store.ledger.read_file("format")
        if fmt is not None:
            marker = codec.decode(fmt, dict, "ledger format marker")
            if marker.get("kind", "ledger") != "ledger":
                report.problems.append(f"{store.ledger.ref}: its format marker is of kind {marker.get('kind')!r}, "
                                       "not 'ledger'")
        elif not as_log and store.ledger.tip() is not None and _ledger_has_files(store):
            from .store.ledger import FOREIGN_LEDGER

            report.problems.append(FOREIGN_LEDGER)
            return _finish(report, lexicons, store)
        known = _run_dirs(report, store, as_log)
        listed = _listed_runs(report, store, pointed, as_log)
        unlinked: list[tuple[str, str]] = []
        for run_id, record, state in _run_blobs(report, store, _dirs(store, as_log)):
            report.runs += 1
            listed_at = _listed_at(listed.pop(_key(run_id), ()))
            if record == b"":
                pass  # a run blob that does not decode (reported)
            elif record is None:
                report.problems.append(f"run {run_id[:12]}: no record")
            elif git.fmt.hash_object("blob", record) != run_id:
                report.problems.append(f"run {run_id[:12]}: id does not match its record's content")
            else:
                _check_link(report, run_id, record, listed_at, run_id in linked, unlinked)
            if state is not None:
                _check_lineage(report, run_id, state, known)
        for run_id, commits in sorted((_hex(key), _listed_at(at)) for key, at in listed.items()):
            report.problems.append(f"commits/{commits[0][:12]}…: lists run {run_id[:12]}, which is not in the ledger")
        _report_unlinked(report, unlinked)
        if known:
            _check_reachable(report, store)
    except DataError as exc:
        report.problems.append(f"{store.ledger.ref}: {exc}")
    return _finish(report, lexicons, store)


def _finish(report: VerifyReport, lexicons: _Lexicons, store: ProvStore | None = None) -> VerifyReport:
    if store is not None:
        _report_quarantine(report, store)
    report.problems[:0] = lexicons.problems
    report.lexicons = sorted(lexicons.by_hash)
    return report


def _report_quarantine(report: VerifyReport, store: ProvStore) -> None:
    """Remote provenance a pull refused, still held under its tracking refs."""
    from .store.quarantine import entries

    for remote, entry in sorted(entries(store.git).items()):
        refs = {ref: oid for ref, oid in (entry.get("refs") or {}).items() if store.git.refs.read(ref) == oid}
        if not refs:
            continue
        first = (entry.get("problems") or ["no reason recorded"])[0]
        shown = ", ".join(sorted(refs))
        report.warnings.append(f"provenance from {remote} was refused on pull and is kept unmerged under {shown} "
                               f"({first}); inspect it with: git log -p {sorted(refs)[0]}")


def _ledger_has_files(store: ProvStore) -> bool:
    from .store.trees import read_tree

    tip = store.ledger.tip()
    return bool(tip and read_tree(store.git.odb, store.git.read_commit(tip).tree))


def _key(run_id: str) -> bytes | str:
    """A run id as a compact dict key: its raw bytes (53 bytes, not a 89-byte ``str``)."""
    try:
        raw = bytes.fromhex(run_id)
    except ValueError:
        return run_id
    return raw if raw.hex() == run_id else run_id


def _hex(key: bytes | str) -> str:
    return key.hex() if isinstance(key, bytes) else key


def _listed_at(at: str | list[str] | tuple[()]) -> list[str]:
    """The commits listing a run, from ``_listed_runs``'s compact value."""
    return [at] if isinstance(at, str) else list(at)


def _listed_runs(report: VerifyReport, store: ProvStore, pointed: set[str],
                 as_log: bool) -> dict[bytes | str, str | list[str]]:
    """``{run id: the commit listing it, or a list when several do}`` from the ledger's
    ``commits/`` directory (format 4: its links), keyed compactly (``_key``); an entry
    must name the record blob of the run it is named after, and the commit's note
    should point at the list (its ``runs`` line)."""
    listed: dict[bytes | str, str | list[str]] = {}
    unpointed = []
    for commit, run_ids in _listings(report, store, as_log):
        for run_id in run_ids:
            key = _key(run_id)
            before = listed.setdefault(key, commit)
            if before is not commit:
                listed[key] = [*_listed_at(before), commit]
        if commit not in pointed:
            unpointed.append(commit)
    for commit in unpointed[:5]:
        report.warnings.append(f"the note of commit {commit[:12]} has no runs line, so 'git notes --ref=prov show' "
                               f"does not say where its runs are listed (the next run at it adds the line)")
    if len(unpointed) > 5:
        report.warnings.append(f"... and {len(unpointed) - 5} more commits whose notes have no runs line")
    return listed


def _listings(report: VerifyReport, store: ProvStore, as_log: bool) -> Iterator[tuple[str, Iterable[str]]]:
    """``(commit, the runs listed under it)`` of every commit runs are listed under."""
    if as_log:
        for commit in store.ledger.commits_with_runs():
            yield commit, store.ledger.iter_commit_run_ids(commit)
        return
    from .store.trees import read_tree

    odb = store.git.odb

    def listed(commit: str, runs: TreeEntry) -> Iterator[str]:
        for fan in read_tree(odb, runs.oid, keep=False).values() if runs.is_tree else ():
            for run_id, entry in read_tree(odb, fan.oid, keep=False).items() if fan.is_tree else ():
                if entry.oid != run_id:
                    report.problems.append(f"commits/{commit[:12]}…/{run_id[:12]}: names blob {entry.oid[:12]}, "
                                           "not the record of that run")
                yield run_id

    for shard in store.ledger.list_dir("commits").values():
        for commit, runs in read_tree(odb, shard.oid, keep=False).items() if shard.is_tree else ():
            yield commit, listed(commit, runs)


def _check_link(report: VerifyReport, run_id: str, record: bytes, listed_at: list[str], note_links: bool,
                unlinked: list[tuple[str, str]]) -> None:
    """A run must be listed under its own commit, and only there; a run of format 1 is
    linked by its note line until the ledger's upgrade lists it."""
    try:
        code = msgspec.json.decode(record).get("code") or {}
        commit = code.get("commit") if isinstance(code, dict) else None
    except (msgspec.DecodeError, AttributeError):
        report.problems.append(f"run {run_id[:12]}: record is not a JSON object")
        return
    for other in listed_at:
        if other != commit:
            report.problems.append(f"run {run_id[:12]}: listed under commit {other[:12]}, but made at "
                                   f"{str(commit)[:12]}")
    if commit and commit not in listed_at and not note_links:
        unlinked.append((run_id, commit))


def _report_unlinked(report: VerifyReport, unlinked: list[tuple[str, str]]) -> None:
    why = ("so 'prov show' does not list it (a release older than 0.2 wrote the run, and the next write "
           "of this one lists it; or the ledger was edited by hand)")
    for run_id, commit in unlinked[:5]:
        report.warnings.append(f"run {run_id[:12]}: not listed under its commit {commit[:12]}, {why}")
    if len(unlinked) > 5:
        report.warnings.append(f"... and {len(unlinked) - 5} more runs not listed under their commits")


def _check_reachable(report: VerifyReport, store: ProvStore) -> None:
    """Runs whose commit was rewritten away (squash merge, deleted branch) or never fetched."""
    from .history import KEEP_REF, kept_commits, unreachable_runs

    lost = unreachable_runs(store)
    kept = kept_commits(store) if lost and store.git.refs.read(KEEP_REF) else set()
    for run_id, commit in lost:
        present = store.git.odb.contains(commit)
        report.unreachable.append({"run": run_id, "commit": commit, "kept": commit in kept, "present": present})
        if not present:
            why = "is not in this clone (a shallow clone, or never fetched)"
        elif commit in kept:
            why = f"is reached by no branch or tag; {KEEP_REF} keeps it from git gc"
        else:
            why = "is reached by no branch or tag and git gc may delete it; run 'prov keep'"
        report.warnings.append(f"run {run_id[:12]}: its commit {commit[:12]} {why}")


def _run_dirs(report: VerifyReport, store: ProvStore, as_log: bool) -> SortedIds:
    """The ids of every run directory in the ledger (format 4: every run blob), held
    compactly; what is not a run directory (format 4: an entry of no run) is a problem."""
    from ._util.idset import SortedIds

    if as_log:
        known = SortedIds()
        for run_id in store.ledger.run_ids():
            known.add(run_id)
        for name, why in store.ledger.log_view().stray_names():
            report.problems.append(f"{store.ledger.ref}: entry {name[:60]!r} {why} (prov reads past it)")
        return known
    for shard_name, shard in sorted(store.ledger.list_dir("runs").items()):
        if not shard.is_tree:
            report.problems.append(f"runs/{shard_name}: not a directory")
    known = SortedIds()
    for run_id, entry in store.ledger.run_entries():
        if entry.is_tree:
            known.add(run_id)
        else:
            report.problems.append(f"runs/{run_id[:2]}/{run_id[:12]}: not a run directory")
    return known


def _dirs(store: ProvStore, as_log: bool) -> Iterator[tuple[str, str]]:
    """``(run id, directory tree id)`` of every run directory (format 4: ``(run id, run
    blob id)``), walked again (not held)."""
    return ((run_id, entry.oid) for run_id, entry in store.ledger.run_entries() if entry.is_tree != as_log)


#: run directories read through one ``git cat-file`` at a time: a page is held, not the ledger
_PAGE = 16_384
#: what a reader's error about one run ends with, which this report need not repeat
_RUN_VERIFY = "; run 'prov verify'"


def _run_blobs(report: VerifyReport, store: ProvStore,
               run_dirs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """``(run id, record, state)`` of each run directory (or run blob), read in bulk
    through ``git cat-file`` (index/reading.py) a page at a time; a run it cannot read
    (a missing file, a run blob that does not decode) is read alone, its missing files
    None (a run blob that does not decode: reported, its record ``b""``), and the bulk
    read goes on after it."""
    from .index.reading import read_run_blobs
    from .store.trees import read_tree

    source = iter(run_dirs)
    while page := list(islice(source, _PAGE)):
        remaining = page
        while remaining:
            done = 0
            try:
                for blobs in read_run_blobs(store.git, remaining):
                    done += 1
                    yield blobs.run_id, blobs.record, blobs.state
                break
            except DataError as exc:
                run_id, tree = remaining[done]
                remaining = remaining[done + 1:]
                if store.git.odb.read(tree)[0] == "blob":  # a run blob that does not decode: said once
                    report.problems.append(f"run {run_id[:12]}: {str(exc).removesuffix(_RUN_VERIFY)}")
                    yield run_id, b"", None
                    continue
                entries = read_tree(store.git.odb, tree)
                found = [entries.get(name) for name in ("record", "state")]
                record, state = (store.git.odb.read_typed(e.oid, "blob") if e is not None and not e.is_tree else None
                                 for e in found)
                yield run_id, record, state


def _check_lineage(report: VerifyReport, run_id: str, data: bytes, known: SortedIds) -> None:
    """Lineage naming a run that is not in the ledger is kept (it may arrive with a
    fetch) and reported as a dangling reference."""
    from .model import RunState

    try:
        state = codec.decode(data, RunState, f"state of run {run_id[:12]}")
    except DataError as exc:
        report.problems.append(str(exc))
        return
    for side, refs in (("input", state.lineage.inputs), ("output", state.lineage.outputs)):
        for key in refs:
            if key.startswith("run:") and key[4:] not in known:
                report.warnings.append(
                    f"run {run_id[:12]}: lineage {side} names run {key[4:][:12]}, which is not in the ledger "
                    "(a dangling reference; fetch it or ignore)"
                )


def _check_pin(report: VerifyReport, lexicons: _Lexicons, record, line: bytes, where: str, commit: str | None) -> None:
    pin = record.schema.lexicon
    lex = lexicons.find(pin, commit)
    if lex is None:
        report.problems.append(f"{where}: pinned lexicon {pin} is not available; vendor it with 'prov init'")
        return
    plain = msgspec.json.decode(line)
    kind = plain.get("kind", "")
    for message in lex.validate(plain, kind):
        report.problems.append(f"{where}: {message}")
