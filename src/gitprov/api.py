"""The verbs of git-prov: ``init``, ``capture``, ``show``, ``log``, ``start_run`` and
the rest, on ``Repository``.

``Repository`` is the facade: it owns a ``ProvStore`` (the storage every lower layer
takes) and each verb delegates to the module that does the work; the module-level
functions take a path and open it for you. Nothing here imports click, pydantic or a
tracker, and the modules behind the verbs load on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import msgspec

from .errors import ConfigError, ReadOnlyRepositoryError, UsageError, WriteError
from .provenance import CommitProvenance
from .store.ledger import LEDGER_FORMAT, Ledger
from .store.notes import NOTES_REF, Notes
from .store.prov_store import ProvStore
from .store.repo import GitRepository

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._util.clock import utc_timestamp
    from .captures import BackfillResult, CaptureResult
    from .exchange.remote import ExchangeResult
    from .history import RelinkResult
    from .index import RunIndex
    from .index.graph import LineageGraph
    from .model import CommitCapture, Environment
    from .runs.run import Run
    from .runs.stage import CachedStage
    from .status import ProvStatus
    from .verify import VerifyReport

__all__ = [
    "BackfillResult",
    "CaptureResult",
    "InitResult",
    "CommitProvenance",
    "LEDGER_FORMAT",
    "Repository",
    "capture",
    "export",
    "init",
    "log",
    "show",
    "start_run",
    "utc_timestamp",
]


def __getattr__(name: str) -> Any:
    """Names that load on first use (``prov show`` needs none of them)."""
    if name in ("BackfillResult", "CaptureResult"):
        from . import captures

        return getattr(captures, name)
    if name == "utc_timestamp":
        from ._util.clock import utc_timestamp

        return utc_timestamp
    raise AttributeError(f"module 'gitprov.api' has no attribute {name!r}")


class Repository:
    """Provenance of one git repository (found from ``path`` like git does)."""

    def __init__(self, path: str | os.PathLike[str] | GitRepository | ProvStore = ".") -> None:
        if isinstance(path, ProvStore):
            self.store = path
        else:
            self.store = ProvStore(path if isinstance(path, GitRepository) else GitRepository.open(os.fspath(path)))
        if self.store.has_journals():  # the recovery code loads only when needed
            from .runs.recovery import recover_quietly

            recover_quietly(self.store)

    @property
    def git(self) -> GitRepository:
        return self.store.git

    @property
    def notes(self) -> Notes:
        return self.store.notes

    @property
    def ledger(self) -> Ledger:
        return self.store.ledger

    @property
    def work_tree(self) -> str | None:
        return self.store.work_tree

    def recover(self) -> list[str]:
        """Fold journals left by dead run writers into the ledger (status ``crashed``)."""
        from .runs.recovery import recover_quietly

        return recover_quietly(self.store)

    # -- reading ---------------------------------------------------------------
    def note_records(self, commit: str, notes_tip: str | None = None) -> list[Any]:
        """Decoded records of ``commit``'s note (a commit id or any revision), in stored order."""
        from .provenance import note_records

        return note_records(self.store, commit, notes_tip)

    def show(self, rev: str = "HEAD", *, lazy: bool = False) -> CommitProvenance:
        """What produced the commit ``rev`` and which runs used it. ``lazy``: ``runs`` is
        a ``provenance.ListedRuns`` (iterable, sized), read when first used and, when
        many, sorted on disk rather than held (``prov show`` of a 100,000-run sweep)."""
        from .provenance import commit_provenance

        if isinstance(rev, str) and (".." in rev or rev.startswith("^")):
            raise UsageError(f"show takes one revision, not a range ({rev!r}); for every commit of a range use: "
                             f"prov log {rev}")
        return commit_provenance(self.store, self.git.resolve(rev), lazy=lazy)

    def log(self, spec: str | None = None, limit: int | None = None) -> list[CommitProvenance]:
        """Provenance of each commit in ``spec`` (``A..B``, a rev; default HEAD), newest first."""
        from .provenance import history_provenance

        return history_provenance(self.store, spec, limit)

    # -- writing ---------------------------------------------------------------
    def build_capture(self, commit: str, trigger: str = "cli", *,
                      base_environment: Environment | None = None) -> CommitCapture:
        """The capture record of ``commit`` as it would be written now."""
        from .captures import build_capture

        return build_capture(self.store, commit, trigger, base_environment=base_environment)

    def capture(self, rev: str = "HEAD", *, force: bool = False, trigger: str = "cli") -> CaptureResult:
        """Record the provenance of ``rev`` in its note (once, unless ``force``)."""
        from .captures import capture

        return capture(self.store, rev, force=force, trigger=trigger)

    def capture_missing(self, spec: str | None = None, *, trigger: str = "backfill") -> BackfillResult:
        """Capture every commit in ``spec`` (default: HEAD's history) that has no capture of
        its own, in one notes commit."""
        from .captures import capture_missing

        return capture_missing(self.store, spec, trigger=trigger)

    def ensure_ledger(self) -> str:
        """Create ``refs/prov/ledger`` (with its format marker) if it does not exist."""
        tip = self.ledger.apply({}, "prov: initialise ledger")
        assert tip is not None
        return tip

    # -- runs ------------------------------------------------------------------
    def start_run(self, name: str = "", experiment: str = "", params: dict[str, Any] | None = None,
                  tags: dict[str, str] | list[str] | None = None, **options: Any) -> Run:
        """Start a run pinned to HEAD (with uncommitted changes as a patch unless
        ``code=False``); options: see ``gitprov.runs.start.start_run``.

        Inside ``prov run``, the wrapping run (``PROV_RUN_ID``) becomes the parent.
        """
        from .runs.start import start_run

        return start_run(self.store, name, experiment, params, tags, **options)

    def rerun(self, run_id: str, **options: Any) -> dict[str, Any]:
        """Execute run ``run_id`` again from its record and compare the results (the
        report of ``prov rerun``); options: see ``gitprov.runs.rerun.rerun``."""
        from .runs.rerun import rerun

        return rerun(self.store, run_id, **options)

    def get_run(self, run_id: str) -> Run:
        """A stored run by id or unique id prefix."""
        from .runs.reading import resolve_run_id
        from .runs.run import Run

        return Run.load(self.store, resolve_run_id(self.ledger, run_id))

    def runs(self, experiment: str | None = None, status: str | None = None,
             include_deleted: bool = False) -> list[Run]:
        """Stored runs, newest first, optionally filtered."""
        from .index.search import load_runs
        from .runs.reading import all_run_entries

        out = [run for run in load_runs(self.store, all_run_entries(self.ledger, self.ledger.tip()))
               if (experiment is None or run.state.experiment == experiment)
               and (status is None or run.state.status == status) and (include_deleted or not run.state.deleted)]
        out.sort(key=lambda r: r.record.created, reverse=True)
        return out

    # -- queries ---------------------------------------------------------------
    def index(self) -> RunIndex:
        """The SQLite run index under ``.git/prov/`` (refreshed before each answer)."""
        from .index import index_of

        return index_of(self.store)

    def find_runs(self, query: dict[str, Any] | str | None = None, order_by: str | list[str] | None = None,
                  limit: int | None = None, *, include_deleted: bool = False) -> list[Run]:
        """Runs matching a MongoDB-style ``query`` dict (or an MLflow-style filter
        string), ordered by ``order_by`` (``"metrics.acc desc"``; default newest first)."""
        from .index.search import find_runs

        return find_runs(self.store, query, order_by, limit, include_deleted=include_deleted)

    def iter_runs(self, query: dict[str, Any] | str | None = None, order_by: str | list[str] | None = None,
                  limit: int | None = None, *, include_deleted: bool = False) -> Iterator[Run]:
        """The runs of ``find_runs``, yielded as they are read, a page at a time: a
        listing of any length in bounded memory, its first runs at once."""
        from .index.search import iter_runs

        return iter_runs(self.store, query, order_by, limit, include_deleted=include_deleted)

    def find_cached(self, stage_name: str | Any, args_hash: str | None = None, commit: str | None = None, *,
                    inputs: Any = None, code: bool = False, data: dict[str, Any] | None = None) -> CachedStage | None:
        """The latest finished stage whose whole cache key matches: given a ``Stage``
        (``repo.find_cached(stage)``), its own key; given a stage name and
        ``args_hash``, the key of those arguments, these ``inputs`` (as ``run.stage``
        takes them; none: a stage without inputs) and, when asked, the code now
        (``code=True``) and ``data`` (dataset key -> path or digest). With ``commit``
        (a revision): only a stage run on that commit without uncommitted changes."""
        from .index.stages import find_cached

        key = getattr(stage_name, "cache_key", None)
        if key is not None:
            return find_cached(self.store, stage_name.name, stage_name.args_hash, commit, key=key)
        if args_hash is None:
            raise UsageError("find_cached takes a Stage, or a stage name and its args_hash")
        return find_cached(self.store, stage_name, args_hash, commit, inputs=inputs, code=code, data=data)

    def lineage(self, target: str, direction: str = "both", depth: int | None = None) -> LineageGraph:
        """What fed ``target`` (``upstream``), what it fed (``downstream``), or both.

        ``target`` is a run id or prefix, ``MODEL`` (every version) or ``MODEL@VERSION``,
        or an explicit node id: ``run:<id>``, ``model:<name>[@<version>]``,
        ``dataset:<key>@<digest>``, ``artifact:<run id>/<path>``.
        """
        from .index.lineage import lineage

        return lineage(self.store, target, direction, depth)

    def export(self, format: str, targets: str | list[str] | tuple[str, ...] = (),
               where: dict[str, Any] | str | None = None, *, upstream: bool = False, sign: bool = False,
               url: str | None = None, namespace: str | None = None, output: BinaryIO | None = None) -> bytes:
        """The provenance of the selected runs in a standard's format: ``prov-json``,
        ``prov-n``, ``prov-o`` (W3C PROV), ``openlineage`` (RunEvents, JSON Lines) or
        ``in-toto`` (SLSA provenance statements, JSON Lines).

        ``targets``: run ids or prefixes, models, datasets or artifacts (the runs that
        produced them; ``upstream``: and everything upstream); none: every run matching
        ``where`` (a filter string or query dict). ``sign``: in-toto statements in DSSE
        envelopes signed with your ssh key; ``url``: also send the OpenLineage events there;
        ``namespace``: of the OpenLineage jobs and datasets (default ``git-prov``);
        ``output``: a binary stream to write to instead of returning the bytes (then
        ``b""`` is returned), OpenLineage and in-toto a run at a time.
        """
        from .exports import check_format, export_bytes, export_to, select_runs

        check_format(format, sign=sign, url=url, namespace=namespace)
        runs = select_runs(self.store, [targets] if isinstance(targets, str) else targets, where,
                           upstream=upstream)
        if output is not None:
            export_to(self.store, format, runs, output, sign=sign, url=url, namespace=namespace)
            return b""
        return export_bytes(self.store, format, runs, sign=sign, url=url, namespace=namespace)

    def flush_links(self) -> None:
        """Deprecated, does nothing: since format 2 a run's link to its commit is written
        with the run's first ledger transaction, so no link ever waits."""
        import warnings

        warnings.warn("Repository.flush_links() is no longer needed: run links are written with the run",
                      DeprecationWarning, stacklevel=2)

    def verify(self, *, signatures: bool = False) -> VerifyReport:
        """Check every stored record; ``signatures``: also every prov commit's signature,
        by git's own verification."""
        from .verify import verify_repository

        return verify_repository(self.store, signatures=signatures)

    # -- collaboration -----------------------------------------------------------
    def fetch(self, remote: str | None = None, *, progress: TextIO | None = None) -> ExchangeResult:
        """Copy ``remote``'s prov refs into ``refs/prov-remotes/<remote>/`` (nothing local moves).
        ``progress``: a terminal to show git's transfer progress on."""
        from .exchange.progress import Progress
        from .exchange.remote import fetch

        return fetch(self.git, remote, progress=Progress(progress) if progress is not None else None)

    def pull(self, remote: str | None = None, *, progress: TextIO | None = None,
             require_signed: bool | None = None) -> ExchangeResult:
        """Fetch ``remote``'s provenance, validate it, and merge it into the local refs.
        ``progress``: a terminal to show the transfer, validation and merge on;
        ``require_signed`` (default: git config ``prov.pull.requireSigned``): refuse
        provenance not signed by an allowed signer."""
        from .exchange.progress import Progress
        from .exchange.remote import pull
        from .history import keep_quietly

        result = pull(self.git, remote, Progress(progress) if progress is not None else None,
                      require_signed=require_signed)
        if result.pinned:
            keep_quietly(self.store, sorted(result.pinned))
        return result

    def push(self, remote: str | None = None) -> ExchangeResult:
        """Push the prov refs to ``remote``, merging first when someone else pushed."""
        from .exchange.push import push
        from .exchange.remote import default_remote, unpushed_runs
        from .history import keep_quietly
        from .runs.reading import read_record

        remote = remote or default_remote(self.git)
        runs = unpushed_runs(self.git, remote)
        # keep the commits of the runs going out (all runs' when never pushed there)
        keep_quietly(self.store, None if runs is None else [read_record(self.ledger, r).code.commit for r in runs])
        return push(self.git, remote)

    def relink(self, old_range: str | None = None, new: str | None = None, *,
               commit_map: str | None = None, how: str | None = None) -> RelinkResult:
        """Link ``new`` to the provenance of the commits in ``old_range`` (a squash merge),
        or every ``OLD NEW`` pair of a commit map's text (``git filter-repo``, BFG)."""
        from .history import parse_commit_map, range_pairs, relink

        if commit_map is not None:
            if old_range is not None or new is not None:
                raise UsageError("give either OLD_RANGE NEW_COMMIT or --commit-map FILE, not both")
            return relink(self.store, parse_commit_map(commit_map, self.git.fmt.is_id), how or "filter")
        if not old_range or not new:
            raise UsageError("relink needs OLD_RANGE and NEW_COMMIT (or --commit-map FILE)")
        return relink(self.store, range_pairs(self.store, old_range, new), how or "squash")

    def keep(self) -> list[str]:
        """Protect every commit a run pins from ``git gc`` (``refs/prov/keep``); the newly kept."""
        from .history import keep_pinned

        return keep_pinned(self.store)

    def status(self) -> ProvStatus:
        """What is not delivered yet: runs and notes each remote lacks (as last seen), pushes
        waiting in the outbox, runs not synced per tracker, commits awaiting ``relink``."""
        from .status import prov_status

        return prov_status(self.store)


class InitResult(msgspec.Struct, kw_only=True):
    work_tree: str
    lexicon: str
    lexicon_files_written: list[str]
    config_set: list[str]
    ledger: str
    hooks: list[str] = []


def init(path: str | os.PathLike[str] = ".", *, hooks: bool = True) -> InitResult:
    """Prepare a repository: lexicon, notes-rewrite config, ledger, and hooks."""
    from .schema import LEXICON_DIR, package_lexicon
    from .store.config import local_config_values, set_local_config

    git = GitRepository.open(os.fspath(path))
    assert git.work_tree is not None and git.git_dir is not None
    if not os.access(git.common_dir or git.git_dir, os.W_OK):
        where = git.common_dir or git.git_dir
        if hasattr(os, "statvfs") and os.statvfs(where).f_flag & getattr(os, "ST_RDONLY", 1):
            raise ReadOnlyRepositoryError(f"cannot write to {where}: it is on a read-only file system; run prov "
                                          "where the repository can be written (or on a writable clone)")
        raise ReadOnlyRepositoryError(
            f"cannot write to {where}: permission denied; run prov as a user who can write the repository"
        )
    repo = Repository(git)
    written = _write_lexicon(git.work_tree, LEXICON_DIR, package_lexicon().files)
    config_set = []
    if NOTES_REF not in local_config_values(git.git_dir, "notes.rewriteRef"):
        set_local_config(git.git_dir, "notes.rewriteRef", NOTES_REF, add=True)
        config_set.append(f"notes.rewriteRef={NOTES_REF}")
    if local_config_values(git.git_dir, "notes.rewriteMode") != ["cat_sort_uniq"]:
        set_local_config(git.git_dir, "notes.rewriteMode", "cat_sort_uniq")
        config_set.append("notes.rewriteMode=cat_sort_uniq")
    prov_dir = git.prov_dir()
    if prov_dir:
        if os.path.lexists(prov_dir) and (os.path.islink(prov_dir) or not os.path.isdir(prov_dir)):
            raise ConfigError(f"{prov_dir} exists and is not a directory; move it away, then run prov init again")
        os.makedirs(prov_dir, exist_ok=True)
    for ref in (repo.ledger.ref, NOTES_REF):  # reflogs git appends to as well, if core.logAllRefUpdates has them
        git.refs.ensure_reflog(ref)
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


def _write_lexicon(work_tree: str, folder: str, files: dict[str, bytes]) -> list[str]:
    """Write the lexicon's files into ``work_tree/folder``, never through a symlink; the
    names of the files that changed."""
    from ._util.paths import replace_file

    dest = os.path.join(work_tree, folder)
    if os.path.islink(dest):
        raise ConfigError(f"{folder} is a symbolic link and git-prov never writes through one; remove it "
                          "(git rm, or rm) and run prov init again")
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise ConfigError(f"{folder} exists and is not a directory; remove or rename it, then run prov init again")
    written = []
    try:
        os.makedirs(dest, exist_ok=True)
        for name, data in files.items():
            target = os.path.join(dest, name)
            if os.path.islink(target) or (os.path.lexists(target) and not os.path.isfile(target)):
                raise ConfigError(f"{folder}/{name} is a symbolic link or not a file, and git-prov never writes "
                                  "through one; remove it and run prov init again")
            try:
                with open(target, "rb") as f:
                    if f.read() == data:
                        continue
            except FileNotFoundError:
                pass
            replace_file(target, data)
            written.append(f"{folder}/{name}")
    except PermissionError as exc:
        raise ReadOnlyRepositoryError(f"cannot write {dest}: permission denied; run prov as a user who can "
                                      "write the work tree") from exc
    except OSError as exc:
        raise WriteError(f"cannot write {dest}: {exc.strerror}") from exc
    return written


def capture(rev: str = "HEAD", path: str | os.PathLike[str] = ".", *, force: bool = False) -> CaptureResult:
    """Capture the provenance of ``rev`` in the repository at ``path``."""
    return Repository(path).capture(rev, force=force, trigger="api")


def show(rev: str = "HEAD", path: str | os.PathLike[str] = ".") -> CommitProvenance:
    """The provenance of ``rev`` in the repository at ``path``."""
    return Repository(path).show(rev)


def log(spec: str | None = None, path: str | os.PathLike[str] = ".", limit: int | None = None) -> list[CommitProvenance]:
    """Provenance of the commits in ``spec`` (default: the history of HEAD)."""
    return Repository(path).log(spec, limit)



def export(format: str, targets: str | list[str] | tuple[str, ...] = (), where: dict[str, Any] | str | None = None,
           *, path: str | os.PathLike[str] = ".", **options: Any) -> bytes:
    """The provenance of the runs in the repository at ``path`` in a standard's format
    (see ``Repository.export``)."""
    return Repository(path).export(format, targets, where, **options)


def start_run(name: str = "", experiment: str = "", params: dict[str, Any] | None = None,
              tags: dict[str, str] | list[str] | None = None, *, path: str | os.PathLike[str] = ".",
              **options: Any) -> Run:
    """Start a run in the repository containing ``path`` (default: the cwd).

    Use it with ``with`` (ends as ``finished``, or ``failed`` on an exception) or call
    ``run.end()`` yourself.
    """
    return Repository(path).start_run(name, experiment, params, tags, **options)
