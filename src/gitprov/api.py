"""The verbs of git-prov: ``init``, ``capture``, ``show``, ``log``, ``verify``.

``Repository`` wraps one git repository; the module-level functions take a path and
open it for you. Nothing here imports click, pydantic or a tracker.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec

from . import codec
from ._version import __version__
from .clock import utc_timestamp
from .errors import DataError, ReadOnlyRepositoryError, UsageError, WriteError
from .model import FORMAT_VERSION, CommitCapture, Environment, RewriteLink, RunLink
from .store.ledger import Ledger
from .store.notes import NOTES_REF, Notes
from .store.repo import GitRepository

if TYPE_CHECKING:
    from .exchange.remote import ExchangeResult
    from .history import RelinkResult
    from .index import RunIndex
    from .index.edges import IndexEdges
    from .index.graph import LineageGraph
    from .runs.run import Run
    from .runs.stage import CachedStage
    from .verify import VerifyReport

__all__ = [
    "BackfillResult",
    "CaptureResult",
    "InitResult",
    "CommitProvenance",
    "Repository",
    "capture",
    "init",
    "log",
    "show",
    "start_run",
    "utc_timestamp",
]

LEDGER_FORMAT = codec.encode({"format_version": FORMAT_VERSION, "kind": "ledger"})


def _has_journals(folder: str) -> bool:
    """Cheap check (hot path): any run journal or note queue, live or abandoned, in ``folder``."""
    try:
        return any(name.endswith((".wal", ".notes")) for name in os.listdir(folder))
    except OSError:
        return False


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


class CaptureResult(msgspec.Struct, kw_only=True):
    commit: str
    created: bool
    capture: CommitCapture


class BackfillResult(msgspec.Struct, kw_only=True):
    """What ``capture --missing`` did: the commits it captured, and how many had one."""

    range: str
    captured: list[str]
    already: int


class Repository:
    """Provenance of one git repository (found from ``path`` like git does)."""

    def __init__(self, path: str | os.PathLike[str] | GitRepository = ".") -> None:
        self.git = path if isinstance(path, GitRepository) else GitRepository.open(os.fspath(path))
        self.notes = Notes(self.git)
        self.ledger = Ledger(self.git)
        self._index: RunIndex | None = None
        prov_dir = self.git.prov_dir()
        if prov_dir is not None and _has_journals(os.path.join(prov_dir, "journal")):
            self.recover()

    def recover(self) -> list[str]:
        """Fold journals left by dead run writers into the ledger (status ``crashed``)."""
        from .runs.recovery import recover_abandoned

        try:
            return recover_abandoned(self)
        except WriteError as exc:
            import sys

            print(f"prov: warning: cannot recover crashed runs: {exc}", file=sys.stderr)
            return []

    @property
    def work_tree(self) -> str | None:
        return self.git.work_tree

    # -- reading ---------------------------------------------------------------
    def note_records(self, commit: str, notes_tip: str | None = None,
                     pending: dict[str, list[bytes]] | None = None) -> list[Any]:
        """Decoded records of ``commit``'s note (a commit id or any revision), in stored
        order, then the run links still waiting in a process's note queue (``pending``:
        read now when None)."""
        from .store.note_queue import pending_lines

        if not self.git.fmt.is_id(commit):
            commit = self.git.resolve(commit)  # a revision: HEAD, a branch, a short id
        lines = self.notes.read(commit, notes_tip)
        waiting = (pending_lines(self.notes) if pending is None else pending).get(commit)
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

    def show(self, rev: str = "HEAD") -> CommitProvenance:
        """What produced the commit ``rev`` and which runs used it."""
        commit = self.git.resolve(rev)
        return self._provenance(commit)

    def _provenance(self, commit: str, notes_tip: str | None = None,
                    pending: dict[str, list[bytes]] | None = None) -> CommitProvenance:
        info = self.git.read_commit(commit)
        prov = CommitProvenance(commit=commit, summary=info.summary)
        for record in self.note_records(commit, notes_tip, pending):
            if isinstance(record, CommitCapture):
                prov.captures.append(record)
            elif isinstance(record, RunLink):
                prov.runs.append(record)
            elif isinstance(record, RewriteLink):
                prov.rewrites.append(record)
        pins = [r.schema.lexicon for r in (*prov.captures, *prov.runs, *prov.rewrites)]
        prov.schema = pins[0] if pins else None
        return prov

    def log(self, spec: str | None = None, limit: int | None = None) -> list[CommitProvenance]:
        """Provenance of each commit in ``spec`` (``A..B``, a rev; default HEAD), newest first."""
        include, exclude = self.git.resolve_range(spec) if spec else ([self.git.head()], [])
        from .store.note_queue import pending_lines

        tip = self.notes.tip()
        pending = pending_lines(self.notes)
        return [self._provenance(c, tip, pending) for c in self.git.walk(include, exclude, limit)]

    # -- writing ---------------------------------------------------------------
    def build_capture(
        self, commit: str, trigger: str = "cli", *, base_environment: Environment | None = None
    ) -> CommitCapture:
        """The capture record of ``commit`` as it would be written now.

        ``base_environment`` (another capture's) skips re-fingerprinting the
        interpreter when many commits are captured in one process.
        """
        from . import fingerprint
        from .inputs import hash_inputs
        from .schema import current_pin
        from .settings import load_settings
        from .store.trees import read_tree

        info = self.git.read_commit(commit)
        lockfiles = {
            name: entry.oid
            for name, entry in read_tree(self.git.odb, info.tree).items()
            if not entry.is_tree and fingerprint.is_lockfile(name)
        }
        inputs = []
        if self.work_tree is not None and commit == self.git.refs.read("HEAD"):
            settings = load_settings(self.work_tree)
            inputs = hash_inputs(self.work_tree, settings.inputs.paths, self.git.prov_dir())
        return CommitCapture(
            commit=commit,
            tree=info.tree,
            captured_at=utc_timestamp(),
            tool=f"git-prov {__version__}",
            schema=current_pin(),
            environment=fingerprint.environment(lockfiles)
            if base_environment is None
            else msgspec.structs.replace(base_environment, lockfiles=dict(sorted(lockfiles.items()))),
            inputs=inputs,
            ci=fingerprint.ci_identifiers(),
            trigger=trigger,
        )

    def capture(self, rev: str = "HEAD", *, force: bool = False, trigger: str = "cli") -> CaptureResult:
        """Record the provenance of ``rev`` in its note (once, unless ``force``)."""
        commit = self.git.resolve(rev)
        if not force:
            for record in self.note_records(commit):
                # a capture copied from a rewritten commit does not count
                if isinstance(record, CommitCapture) and record.commit == commit:
                    return CaptureResult(commit=commit, created=False, capture=record)
        record = self.build_capture(commit, trigger)
        self.notes.add({commit: [codec.encode(record)]}, f"prov: capture {commit[:12]}")
        return CaptureResult(commit=commit, created=True, capture=record)

    def capture_missing(self, spec: str | None = None, *, trigger: str = "backfill") -> BackfillResult:
        """Capture every commit in ``spec`` (default: HEAD's history) that has no capture of
        its own, in one notes commit."""
        include, exclude = self.git.resolve_range(spec) if spec else ([self.git.head()], [])
        tip = self.notes.tip()
        commits = self.git.walk(include, exclude)
        missing = [
            c
            for c in commits
            if not any(isinstance(r, CommitCapture) and r.commit == c for r in self.note_records(c, tip))
        ]
        lines: dict[str, list[bytes]] = {}
        env = None
        for commit in missing:
            record = self.build_capture(commit, trigger, base_environment=env)
            env = record.environment
            lines[commit] = [codec.encode(record)]
        if lines:
            self.notes.add(lines, f"prov: backfill {len(lines)} capture(s)")
        return BackfillResult(range=spec or "HEAD", captured=missing, already=len(commits) - len(missing))

    def ensure_ledger(self) -> str:
        """Create ``refs/prov/ledger`` (with its format marker) if it does not exist."""
        tip = self.ledger.apply({}, "prov: initialise ledger", LEDGER_FORMAT)
        assert tip is not None
        return tip

    # -- runs ------------------------------------------------------------------
    def start_run(
        self,
        name: str = "",
        experiment: str = "",
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | list[str] | None = None,
        *,
        code: bool = True,
        environment: bool = True,
        command: list[str] | None = None,
        exec_path: str | None = None,
        parent: str | None = None,
        spill_points: int = 100_000,
        spill_seconds: float = 5.0,
        flush_seconds: float = 30.0,
        artifact_threshold: int = 10 << 20,
    ) -> Run:
        """Start a run pinned to HEAD (with uncommitted changes as a patch when ``code``).

        Inside ``prov run``, the wrapping run (``PROV_RUN_ID``) becomes the parent.
        """
        import secrets

        from .keys import check_json_value, check_key
        from .model import RunRecord, RunState
        from .runs.code import code_version, head_code_version
        from .runs.run import Run, RunSettings
        from .schema import current_pin
        from .scrub import scrub_argv
        from .store.journal import Journal

        settings = RunSettings(spill_points, spill_seconds, flush_seconds, artifact_threshold)
        for label, value in (("name", name), ("experiment", experiment)):
            if not isinstance(value, str) or len(value) > 250 or any(ord(c) < 32 for c in value):
                raise UsageError(f"run {label} must be a string of at most 250 printable characters")
        params = dict(params or {})
        for key, value in params.items():
            check_key(key, "hyperparameter key")
            check_json_value(value, f"hyperparameter {key!r}")
        env = None
        if environment:
            from .fingerprint import environment as fingerprint_environment

            env = fingerprint_environment()
        record = RunRecord(
            created=utc_timestamp(),
            nonce=secrets.token_hex(8),
            name=name,
            experiment=experiment,
            code=code_version(self.git, exec_path) if code else head_code_version(self.git, exec_path),
            params=params,
            environment=env,
            command=scrub_argv(list(command)) if command else [],
            parent=parent or os.environ.get("PROV_RUN_ID") or None,
            schema=current_pin(),
        )
        record_bytes = codec.encode(record)
        run_id = self.git.fmt.hash_object("blob", record_bytes)
        journal = None
        prov_dir = self.git.prov_dir()
        if prov_dir is not None:
            journal = Journal.create(os.path.join(prov_dir, "journal"), run_id, {
                "run": run_id, "record": record_bytes, "pid": os.getpid(),
            })
        run = Run(self, run_id, record, RunState(name=name, experiment=experiment),
                  settings=settings, journal=journal, stored=False, active=True)
        if tags:
            run.log_tags(tags)
        return run

    def get_run(self, run_id: str) -> Run:
        """A stored run by id or unique id prefix."""
        from .runs.reading import read_record, read_state, resolve_run_id
        from .runs.run import Run

        full = resolve_run_id(self.ledger, run_id)
        tip = self.ledger.tip()
        return Run(self, full, read_record(self.ledger, full, tip), read_state(self.ledger, full, tip))

    def runs(self, experiment: str | None = None, status: str | None = None,
             include_deleted: bool = False) -> list[Run]:
        """Stored runs, newest first, optionally filtered."""
        from .runs.reading import all_run_entries

        out = [run for run in self._runs_from_trees(all_run_entries(self.ledger, self.ledger.tip()))
               if (experiment is None or run.state.experiment == experiment)
               and (status is None or run.state.status == status) and (include_deleted or not run.state.deleted)]
        out.sort(key=lambda r: r.record.created, reverse=True)
        return out

    # -- queries ---------------------------------------------------------------
    def index(self) -> RunIndex:
        """The SQLite run index under ``.git/prov/`` (refreshed before each answer)."""
        if self._index is None:
            from .index import INDEX_FILE, RunIndex

            prov_dir = self.git.prov_dir()
            path = os.path.join(prov_dir, INDEX_FILE) if prov_dir else ":memory:"
            if prov_dir and not os.access(prov_dir if os.path.isdir(prov_dir) else os.path.dirname(prov_dir), os.W_OK):
                path = ":memory:"  # a read-only repository: an index for this process only
            self._index = RunIndex(self.ledger, path)
        return self._index

    def find_runs(self, query: dict[str, Any] | str | None = None, order_by: str | list[str] | None = None,
                  limit: int | None = None, *, include_deleted: bool = False) -> list[Run]:
        """Runs matching a MongoDB-style ``query`` dict (or an MLflow-style filter
        string), ordered by ``order_by`` (``"metrics.acc desc"``; default newest first)."""
        import sqlite3

        from .index import parse_filter, select_run_ids

        if isinstance(query, str):
            query = parse_filter(query)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise UsageError(f"limit must be a non-negative integer, not {limit!r}")
        index = self.index()
        db = index.connection()
        try:
            ids = select_run_ids(db, query, order_by, limit, include_deleted)
            trees = index.run_trees(ids)
        except sqlite3.Error as exc:
            raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc
        return self._runs_from_trees(trees)

    def _runs_from_trees(self, trees: list[tuple[str, str]]) -> list[Run]:
        """Runs read from their directory trees (known to the index): many at once
        through the index's bulk reader, no path walk from the ledger root."""
        from .index.reading import read_run_blobs
        from .model import RunRecord, RunState
        from .runs.run import Run

        return [Run(self, b.run_id, codec.decode(b.record, RunRecord, f"record of run {b.run_id[:12]}"),
                    codec.decode(b.state, RunState, f"state of run {b.run_id[:12]}"))
                for b in read_run_blobs(self.git, trees)]

    def find_cached(self, stage_name: str, args_hash: str, commit: str | None = None) -> CachedStage | None:
        """The latest finished stage ``stage_name`` with the same ``args_hash`` (and,
        when given, run on the clean commit ``commit``, a revision), or ``None``."""
        from .runs.reading import read_record, read_state
        from .runs.run import Run
        from .runs.stage import CachedStage

        if not isinstance(stage_name, str) or not isinstance(args_hash, str):
            raise UsageError("find_cached takes a stage name and an args hash (strings)")
        sql = ("SELECT s.run, s.record FROM stages s JOIN runs r ON r.id = s.run WHERE s.name = ? "
               "AND s.args_hash = ? AND s.status = 'finished' AND r.deleted = 0")
        args: list[Any] = [stage_name, args_hash]
        if commit is not None:
            sql += " AND s.commit_id = ? AND s.dirty = 0"
            args.append(self.git.resolve(commit))
        index = self.index()
        row = index.connection().execute(sql + " ORDER BY s.ended DESC, s.run LIMIT 1", args).fetchone()
        if row is None:
            return None
        tip = index.indexed_tip()
        run = Run(self, row[0], read_record(self.ledger, row[0], tip), read_state(self.ledger, row[0], tip))
        return CachedStage(msgspec.json.decode(row[1]), run)

    def lineage(self, target: str, direction: str = "both", depth: int | None = None) -> LineageGraph:
        """What fed ``target`` (``upstream``), what it fed (``downstream``), or both.

        ``target`` is a run id or prefix, ``MODEL`` (every version) or ``MODEL@VERSION``,
        or an explicit node id: ``run:<id>``, ``model:<name>[@<version>]``,
        ``dataset:<key>@<digest>``, ``artifact:<run id>/<path>``.
        """
        from .index.edges import IndexEdges
        from .index.graph import traverse

        # read from the index frontier by frontier: the cost follows what is reached
        nodes = IndexEdges(self.index().connection())
        return traverse(nodes, self._lineage_roots(target, nodes), direction, depth)

    def _lineage_roots(self, target: str, nodes: IndexEdges) -> list[str]:
        from .runs.reading import resolve_run_id

        if not isinstance(target, str) or not target.strip():
            raise UsageError("lineage needs a run id, a MODEL[@VERSION] or a node id")
        target = target.strip()
        if target in nodes:
            return [target]
        kind, colon, rest = target.partition(":")
        if colon and kind in ("run", "model", "dataset", "artifact"):
            if kind == "run":
                return [f"run:{resolve_run_id(self.ledger, rest)}"]
            if kind == "artifact" and _artifact_node(rest, nodes):
                return [_artifact_node(rest, nodes)]  # type: ignore[list-item]
            if kind == "model" or kind == "dataset":
                found = [n for n in nodes.with_prefix(f"{kind}:{rest}") if n.startswith(f"{kind}:{rest}@")
                         or n == f"{kind}:{rest}"]
                if found:
                    return sorted(found)
            raise UsageError(f"no {kind} {rest!r} in the lineage of any run")
        artifact = _artifact_node(target, nodes)
        if artifact is not None:
            return [artifact]
        if len(target) >= 4 and all(c in "0123456789abcdef" for c in target.lower()):
            try:
                return [f"run:{resolve_run_id(self.ledger, target)}"]
            except UsageError:
                pass
        found = [n for n in nodes.with_prefix(f"model:{target}")
                 if n == f"model:{target}" or n.startswith(f"model:{target}@")]
        if "@" in target:
            found = [n for n in found if n == f"model:{target}"] or found
        if found:
            return sorted(found)
        raise UsageError(
            f"no run or model {target!r}; give a run id, MODEL[@VERSION], or a node id such as dataset:KEY@DIGEST"
        )

    def flush_links(self) -> None:
        """Write the run links waiting in this process's note queue into the notes now
        (prov does it with the next run a second later, and at exit; see ``runs.md``)."""
        from .store.note_queue import note_queue

        note_queue(self.notes).flush()

    def link_update(self, commit: str, link: RunLink):
        """A ``run`` line in ``commit``'s note (so ``prov show`` lists the run), as a
        ``RefUpdate`` to commit with the run's ledger transaction."""
        return self.notes.update({commit: [codec.encode(link)]}, f"prov: link run {link.run[:12]}")

    def verify(self) -> VerifyReport:
        from .verify import verify_repository

        return verify_repository(self)

    # -- collaboration -----------------------------------------------------------
    def fetch(self, remote: str | None = None) -> ExchangeResult:
        """Copy ``remote``'s prov refs into ``refs/prov-remotes/<remote>/`` (nothing local moves)."""
        from .exchange.remote import fetch

        return fetch(self.git, remote)

    def pull(self, remote: str | None = None) -> ExchangeResult:
        """Fetch ``remote``'s provenance, validate it, and merge it into the local refs."""
        from .exchange.remote import pull

        result = pull(self.git, remote)
        if result.pinned:
            self._keep_quietly(sorted(result.pinned))
        return result

    def push(self, remote: str | None = None) -> ExchangeResult:
        """Push the prov refs to ``remote``, merging first when someone else pushed."""
        from .exchange.remote import default_remote, push, unpushed_runs
        from .runs.reading import read_record

        remote = remote or default_remote(self.git)
        runs = unpushed_runs(self.git, remote)
        # keep the commits of the runs going out (all runs' when never pushed there)
        self._keep_quietly(None if runs is None else [read_record(self.ledger, r).code.commit for r in runs])
        return push(self.git, remote)

    def relink(self, old_range: str | None = None, new: str | None = None, *,
               commit_map: str | None = None, how: str | None = None) -> RelinkResult:
        """Link ``new`` to the provenance of the commits in ``old_range`` (a squash merge),
        or every ``OLD NEW`` pair of a commit map's text (``git filter-repo``, BFG)."""
        from .history import parse_commit_map, range_pairs, relink

        if commit_map is not None:
            if old_range is not None or new is not None:
                raise UsageError("give either OLD_RANGE NEW_COMMIT or --commit-map FILE, not both")
            return relink(self, parse_commit_map(commit_map, self.git.fmt.is_id), how or "filter")
        if not old_range or not new:
            raise UsageError("relink needs OLD_RANGE and NEW_COMMIT (or --commit-map FILE)")
        return relink(self, range_pairs(self, old_range, new), how or "squash")

    def keep(self) -> list[str]:
        """Protect every commit a run pins from ``git gc`` (``refs/prov/keep``); the newly kept."""
        from .history import keep_pinned

        return keep_pinned(self)

    def _keep_quietly(self, commits: list[str] | None = None) -> None:
        from .history import keep_pinned

        try:
            keep_pinned(self, commits)
        except (DataError, WriteError) as exc:
            import sys

            print(f"prov: warning: cannot update refs/prov/keep: {exc}", file=sys.stderr)


def _artifact_node(target: str, nodes: IndexEdges) -> str | None:
    """The node of ``RUN/PATH`` (RUN a run id or unique prefix), if exactly one."""
    run_part, slash, path = target.partition("/")
    if not slash or len(run_part) < 4 or any(c not in "0123456789abcdef" for c in run_part.lower()):
        return None
    found = [n for n in nodes.with_prefix(f"artifact:{run_part.lower()}") if n.split("/", 1)[1] == path]
    return found[0] if len(found) == 1 else None


class InitResult(msgspec.Struct, kw_only=True):
    work_tree: str
    lexicon: str
    lexicon_files_written: list[str]
    config_set: list[str]
    ledger: str
    hooks: list[str] = []


def _git_config_values(git_dir: str, key: str) -> list[str]:
    import subprocess

    proc = subprocess.run(
        ["git", "--git-dir", git_dir, "config", "--local", "--get-all", key],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.split() if proc.returncode == 0 else []


def _git_config_set(git_dir: str, key: str, value: str, *, add: bool = False) -> None:
    import subprocess

    args = ["git", "--git-dir", git_dir, "config", "--local"]
    args += ["--add", key, value] if add else [key, value]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise WriteError(f"cannot run git to set {key}: {exc.strerror}; is git installed?") from exc
    if proc.returncode != 0:
        raise WriteError(f"cannot set git config {key}: {proc.stderr.strip() or 'git config failed'}")


def init(path: str | os.PathLike[str] = ".", *, hooks: bool = True) -> InitResult:
    """Prepare a repository: lexicon, notes-rewrite config, ledger, and hooks."""
    from .schema import LEXICON_DIR, package_lexicon

    git = GitRepository.open(os.fspath(path))
    assert git.work_tree is not None and git.git_dir is not None
    if not os.access(git.common_dir or git.git_dir, os.W_OK):
        raise ReadOnlyRepositoryError(
            f"cannot write to {git.common_dir}: permission denied; run prov as a user who can write the repository"
        )
    repo = Repository(git)
    written = []
    dest = os.path.join(git.work_tree, LEXICON_DIR)
    try:
        os.makedirs(dest, exist_ok=True)
        for name, data in package_lexicon().files.items():
            target = os.path.join(dest, name)
            try:
                with open(target, "rb") as f:
                    if f.read() == data:
                        continue
            except FileNotFoundError:
                pass
            with open(target, "wb") as f:
                f.write(data)
            written.append(os.path.join(LEXICON_DIR, name))
    except PermissionError as exc:
        raise ReadOnlyRepositoryError(f"cannot write {dest}: permission denied") from exc
    config_set = []
    if NOTES_REF not in _git_config_values(git.git_dir, "notes.rewriteRef"):
        _git_config_set(git.git_dir, "notes.rewriteRef", NOTES_REF, add=True)
        config_set.append(f"notes.rewriteRef={NOTES_REF}")
    if _git_config_values(git.git_dir, "notes.rewriteMode") != ["cat_sort_uniq"]:
        _git_config_set(git.git_dir, "notes.rewriteMode", "cat_sort_uniq")
        config_set.append("notes.rewriteMode=cat_sort_uniq")
    prov_dir = git.prov_dir()
    if prov_dir:
        os.makedirs(prov_dir, exist_ok=True)
    ledger = repo.ensure_ledger()
    installed: list[str] = []
    if hooks:
        from .githooks.install import install

        installed = [f"{a.hook}: {a.action}" + (f" ({a.detail})" if a.detail else "") for a in install(git)]
    return InitResult(
        work_tree=git.work_tree,
        lexicon=package_lexicon().hash,
        lexicon_files_written=written,
        config_set=config_set,
        ledger=ledger,
        hooks=installed,
    )


def capture(rev: str = "HEAD", path: str | os.PathLike[str] = ".", *, force: bool = False) -> CaptureResult:
    """Capture the provenance of ``rev`` in the repository at ``path``."""
    return Repository(path).capture(rev, force=force, trigger="api")


def show(rev: str = "HEAD", path: str | os.PathLike[str] = ".") -> CommitProvenance:
    """The provenance of ``rev`` in the repository at ``path``."""
    return Repository(path).show(rev)


def log(spec: str | None = None, path: str | os.PathLike[str] = ".", limit: int | None = None) -> list[CommitProvenance]:
    """Provenance of the commits in ``spec`` (default: the history of HEAD)."""
    return Repository(path).log(spec, limit)



def start_run(name: str = "", experiment: str = "", params: dict[str, Any] | None = None,
              tags: dict[str, str] | list[str] | None = None, *, path: str | os.PathLike[str] = ".",
              **options: Any) -> Run:
    """Start a run in the repository containing ``path`` (default: the cwd).

    Use it with ``with`` (ends as ``finished``, or ``failed`` on an exception) or call
    ``run.end()`` yourself.
    """
    return Repository(path).start_run(name, experiment, params, tags, **options)
