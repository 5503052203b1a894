"""The code version of a run: commit, dirty flag, patch of uncommitted changes.

The patch is ``git diff --binary HEAD``, one git process (~1.5 ms, most of it starting
the process). A process that starts many runs without touching the work tree gets the
same patch each time, so the last diff is reused when nothing it depends on can have
changed: the same HEAD commit, the same ``stat`` of the index, of the config files git
reads (those it includes too, and HEAD when an ``includeIf onbranch:`` was evaluated:
``GitConfig.files``) and attributes files (``.gitattributes`` in every directory above
a tracked file, tracked or not, ``core.attributesFile``, ``info/attributes``), and of
every tracked file, and the same ``GIT_*``, ``HOME`` and ``XDG_CONFIG_HOME``. As git's
own "racy" rule: a snapshot holding a timestamp too close to the moment it was taken (a
file could still change within the clock's granularity without changing its ``stat``)
is not reused, and neither are repositories with submodules (a submodule's commit
changes without a ``stat`` change above it), a config git cannot read, or more tracked
files than a diff costs to ``stat``. The diff's options make a patch ``git apply``
takes whatever the user's diff settings.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ..errors import ConfigError, ProvError
from ..model import CodeVersion
from ..scrub import scrub_url
from ..store import gitbin
from ..store.config import GitConfig
from ..store.repo import GitRepository

__all__ = ["code_version", "given_code_version", "head_code_version", "lockfiles_at"]

#: tracked files beyond which ``stat``-ing each one costs about what git's diff does
MAX_CACHED_FILES = 2000
#: a stat this close to the snapshot (ns) makes it racy: 0.1 s on filesystems with
#: sub-second timestamps, 2 s where every timestamp is whole seconds (FAT, some NFS)
_RACY_NS = 100_000_000
_RACY_COARSE_NS = 2_000_000_000
#: variables beyond ``GIT_*`` that say which config files git reads
_CONFIG_ENV = ("HOME", "XDG_CONFIG_HOME")
#: a patch ``git apply`` takes whatever the user's diff settings (prefixes, textconv)
_DIFF = ["diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative",
         "--src-prefix=a/", "--dst-prefix=b/", "HEAD"]

StatKey = tuple[int, int, int, int, int, int] | None


def _exec_path(work_tree: str | None) -> str | None:
    main = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m", "-") else None
    if not main:
        return None
    full = os.path.abspath(main)
    if work_tree and full.startswith(os.path.abspath(work_tree) + os.sep):
        return os.path.relpath(full, work_tree).replace(os.sep, "/")
    return os.path.basename(full)


def head_code_version(git: GitRepository, exec_path: str | None = None) -> CodeVersion:
    """Commit, exec path and remote URL only: no subprocess (cheap)."""
    commit = git.refs.read("HEAD")
    url = git.config.get("remote.origin.url")
    return CodeVersion(commit=commit, exec_path=exec_path or _exec_path(git.work_tree),
                       repo_url=scrub_url(url) if url else None)


def code_version(git: GitRepository, exec_path: str | None = None) -> CodeVersion:
    """The full code version: uncommitted changes to tracked files are stored as a
    patch blob (``git diff --binary HEAD``), so ``git apply`` rebuilds the exact code."""
    base = head_code_version(git, exec_path)
    if git.work_tree is None or base.commit is None:
        return base
    out = _diff_head(git, base.commit)
    if not out:
        return base
    patch = git.odb.write("blob", out)
    return CodeVersion(commit=base.commit, is_dirty=True, patch=patch,
                       exec_path=base.exec_path, repo_url=base.repo_url)


def given_code_version(git: GitRepository, exec_path: str | os.PathLike[str] | None, repo_url: str | None,
                       commit_hash: str | None, is_dirty: bool | None, autocapture: bool) -> CodeVersion:
    """The code version of Verta's ``log_code`` arguments: what is found here (with
    ``autocapture``) with each given value in its place. A commit other than HEAD
    carries no patch (the work tree's changes are against HEAD); a given commit must
    name a commit of this repository."""
    from ..errors import UsageError

    rel_exec = None
    if exec_path is not None:
        path = os.path.expanduser(os.fspath(exec_path))
        if not os.path.isfile(path):
            raise UsageError(f"exec_path {os.fspath(exec_path)!r} is not a file; pass the script or notebook that ran")
        full = os.path.abspath(path)
        work = os.path.abspath(git.work_tree) if git.work_tree else None
        rel_exec = (os.path.relpath(full, work).replace(os.sep, "/") if work and full.startswith(work + os.sep)
                    else full)
    commit = git.resolve(commit_hash) if commit_hash is not None else None
    url = scrub_url(repo_url) if repo_url else None
    if not autocapture:
        return CodeVersion(commit=commit, is_dirty=bool(is_dirty), exec_path=rel_exec, repo_url=url)
    found = code_version(git, rel_exec)
    same = commit is None or commit == found.commit
    dirty = found.is_dirty if same and is_dirty is None else bool(is_dirty)
    return CodeVersion(commit=commit or found.commit, is_dirty=dirty, patch=found.patch if same and dirty else None,
                       exec_path=found.exec_path, repo_url=url or found.repo_url)


def _stat(path: str) -> StatKey:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class _Snapshot:
    """What one ``git diff`` depended on, and what it printed."""

    __slots__ = ("key", "listing", "paths", "stats", "out", "config_files")

    def __init__(self, key: tuple, listing: tuple, paths: list[str] | None,
                 stats: list[StatKey] | None, out: bytes, config_files: tuple[str, ...]) -> None:
        self.key, self.listing, self.paths, self.stats, self.out = key, listing, paths, stats, out
        self.config_files = config_files


_snapshots: dict[str, _Snapshot] = {}
_snapshots_lock = threading.Lock()


def _config(git: GitRepository) -> GitConfig | None:
    """The config as it is now, not when the repository was opened; None when git
    cannot read it (git's diff says what is wrong; nothing is reused meanwhile)."""
    try:
        return GitConfig.for_repository(git.common_dir, git.git_dir)
    except ConfigError:
        return None


def _key(git: GitRepository, commit: str, config_files: tuple[str, ...]) -> tuple[tuple, tuple]:
    """``(everything but the watched files that git's diff reads, the part of it the
    list of watched files depends on: the stat of the index, of the config files (as
    the config last read named them: while none of them changes, the config and so
    the list are the same) and of the attributes files)``."""
    git_dir = git.git_dir or ""
    common = git.common_dir or git_dir
    index = _stat(os.environ.get("GIT_INDEX_FILE") or os.path.join(git_dir, "index"))
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = (*config_files, os.path.join(common, "info", "attributes"), os.path.join(xdg, "git", "attributes"))
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_") or k in _CONFIG_ENV))
    listing = (index, tuple((f, _stat(f)) for f in files))
    return (commit, git.work_tree, *listing, env), listing


def _watched(git: GitRepository, config: GitConfig | None) -> list[str] | None:
    """The files whose ``stat`` a reused diff depends on beyond the key: every tracked
    file, the ``.gitattributes`` (tracked or not) of every directory above one, and
    ``core.attributesFile``; None when the diff is not to be reused (submodules, too
    many files, an unreadable config, git failed)."""
    work_tree = git.work_tree or ""
    if config is None:
        return None
    try:
        status, out = gitbin.output(["--no-optional-locks", "-C", work_tree, "ls-files", "-z", "--stage"])
    except ProvError:  # git cannot be started
        return None
    if status != 0:
        return None
    paths = []
    folders = {""}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        if meta.startswith(b"160000") or len(paths) >= MAX_CACHED_FILES:
            return None
        rel = os.fsdecode(name)
        paths.append(os.path.join(work_tree, rel))
        while "/" in rel:
            rel = rel.rsplit("/", 1)[0]
            if rel in folders:
                break
            folders.add(rel)
    attributes = {os.path.join(work_tree, folder, ".gitattributes") for folder in folders}
    extra = config.get("core.attributesFile")
    if extra:
        attributes.add(os.path.join(work_tree, os.path.expanduser(extra)))
    return paths + sorted(attributes - set(paths))


def _racy(stats: list[StatKey], started_ns: int) -> bool:
    stamps = [t for st in stats if st is not None for t in (st[2], st[3])]
    coarse = bool(stamps) and all(t % 1_000_000_000 == 0 for t in stamps)
    limit = started_ns - (_RACY_COARSE_NS if coarse else _RACY_NS)
    return any(t >= limit for t in stamps)


def _diff_head(git: GitRepository, commit: str) -> bytes | None:
    """``git diff --binary HEAD`` in the work tree (None when git cannot run), reused
    from this process's last diff of the same work tree when nothing it read changed."""
    work_tree = git.work_tree or ""
    started = time.time_ns()
    with _snapshots_lock:
        last = _snapshots.get(work_tree)
    if last is not None and last.paths is not None and _key(git, commit, last.config_files)[0] == last.key \
            and [_stat(p) for p in last.paths] == last.stats:
        return last.out
    config = _config(git)
    config_files = config.files if config is not None else ()
    key, listing = _key(git, commit, config_files)
    if last is not None and last.listing == listing and listing[0] is not None and config is not None:
        paths = last.paths
    else:
        paths = _watched(git, config)
    stats = [_stat(p) for p in paths] if paths is not None else None
    try:  # posix_spawn, not subprocess: no fork of a large training process
        status, out = gitbin.output(["--no-optional-locks", "-C", work_tree, *_DIFF])
    except ProvError:  # git cannot be started
        return None
    if status != 0:
        return None
    read = [*stats, listing[0], *(st for _, st in listing[1])] if stats is not None else []
    reusable = stats is not None and not _racy(read, started) and _key(git, commit, config_files)[0] == key
    with _snapshots_lock:
        _snapshots[work_tree] = _Snapshot(key, listing, paths, stats if reusable else None, out, config_files)
    return out


def lockfiles_at(git: GitRepository, commit: str | None) -> dict[str, bytes]:
    """The lock and requirement files (``requirements*.txt``, ``pyproject.toml``,
    ``uv.lock`` …) at the root of ``commit``, by name: what that code required. Empty
    when there is no commit or this clone lacks it."""
    from ..fingerprint import is_lockfile
    from ..store.trees import read_tree

    if not commit:
        return {}
    try:
        entries = read_tree(git.odb, git.read_commit(commit).tree)
        return {name: git.odb.read_typed(e.oid, "blob") for name, e in sorted(entries.items())
                if not e.is_tree and is_lockfile(name)}
    except (ProvError, KeyError, ValueError):
        return {}

