"""A git repository: where it is, its object database, refs, config and revisions.

``GitRepository`` opens an on-disk repository found from a path (like git, walking up
to the nearest ``.git``); ``GitRepository.memory()`` builds the in-memory twin.
Revisions resolve in-process for the common forms; anything fancier is handed to
``git rev-parse`` so that every revision git accepts works.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Callable

from ..errors import (
    AmbiguousRevisionError,
    BareRepositoryError,
    DataError,
    EmptyRepositoryError,
    MissingObjectError,
    NotARepositoryError,
    ProvError,
    RepositoryError,
    UnknownRevisionError,
)
from .config import GitConfig
from .durability import Durability
from .objects import SHA1, Commit, ObjectFormat, decode_commit, format_named
from .odb import DiskObjectDatabase, MemoryObjectDatabase, ObjectDatabase
from .refs import DiskRefs, MemoryRefs, Refs, reflog_mode

__all__ = ["GitRepository", "find_git_dir"]

_SUFFIX = re.compile(r"(\^\{commit\}|\^\{\}|\^[0-9]*|~[0-9]*)$")
_HEX = re.compile(r"[0-9a-fA-F]{4,64}")
#: ``~N`` walks at least this long are handed to git (see ``_first_parent_with_git``).
_GIT_WALK_MIN = 1000


_databases: dict[tuple[str, str], tuple[int, DiskObjectDatabase]] = {}


def _object_database(path: str, fmt: ObjectFormat) -> DiskObjectDatabase:
    """This process's object database of ``path``: every ``GitRepository`` opened on the
    same repository shares it, so what it has read of immutable things (pack indexes,
    decoded trees) is read once per process, not once per ``gitprov.start_run``."""
    key = (os.path.realpath(path), fmt.name)
    pid, odb = _databases.get(key, (None, None))
    if odb is None or pid != os.getpid():
        odb = DiskObjectDatabase(path, fmt)
        _databases[key] = (os.getpid(), odb)
    return odb


def _committer_of(config: GitConfig) -> Callable[[], str]:
    """The identity of a repository's reflog entries: the committer of the commits prov
    writes (``identity_line``), from its config (the refs keep no repository alive)."""

    def committer() -> str:
        from .transaction import committer_line  # (transaction imports this module)

        return committer_line(config)

    return committer


def _read_gitfile(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError:
        return None
    if text.startswith("gitdir:"):
        target = text[7:].strip()
        return os.path.normpath(os.path.join(os.path.dirname(path), target))
    return None


def _looks_like_git_dir(path: str) -> bool:
    if not os.path.isfile(os.path.join(path, "HEAD")):
        return False
    if os.path.isfile(os.path.join(path, "commondir")):  # a linked worktree's git dir
        return True
    return os.path.isdir(os.path.join(path, "objects")) and os.path.isdir(os.path.join(path, "refs"))


def find_git_dir(start: str) -> tuple[str, str | None]:
    """``(git_dir, work_tree)`` for the repository containing ``start``.

    ``work_tree`` is None for a bare repository.
    """
    env_dir = os.environ.get("GIT_DIR")
    if env_dir:
        git_dir = os.path.abspath(env_dir)
        if not _looks_like_git_dir(git_dir):
            raise NotARepositoryError(f"GIT_DIR={env_dir} is not a git repository")
        work = os.environ.get("GIT_WORK_TREE")
        if work:
            return git_dir, os.path.abspath(work)
        if os.path.basename(git_dir) == ".git":
            return git_dir, os.path.dirname(git_dir)
        return git_dir, os.getcwd()
    path = os.path.abspath(start)
    if not os.path.exists(path):
        raise NotARepositoryError(f"{start}: no such directory")
    if os.path.isfile(path):
        path = os.path.dirname(path)
    current = path
    while True:
        dotgit = os.path.join(current, ".git")
        if os.path.isdir(dotgit) and _looks_like_git_dir(dotgit):
            return dotgit, current
        if os.path.isfile(dotgit):
            target = _read_gitfile(dotgit)
            if target and _looks_like_git_dir(target):
                return target, current
        if _looks_like_git_dir(current):
            return current, None
        parent = os.path.dirname(current)
        if parent == current:
            raise NotARepositoryError(
                f"not a git repository (or any parent up to /): {path}; run 'git init' first"
            )
        current = parent


def _check_ownership(top: str, git_dir: str) -> None:
    """Refuse, as git does (``safe.directory``), a repository owned by another user: its
    config and hooks would run as you. Costs a stat or two when the owner is you."""
    if not hasattr(os, "geteuid"):
        return
    me = os.geteuid()
    if me == 0 and os.environ.get("SUDO_UID", "").isdigit():
        me = int(os.environ["SUDO_UID"])  # git trusts the sudo caller's repositories
    for path in dict.fromkeys((top, git_dir)):
        try:
            owner = os.stat(path).st_uid
        except OSError:
            continue
        if owner == me or (owner == 0 and os.geteuid() == 0):
            continue
        if _listed_safe(top):
            return
        raise RepositoryError(
            f"detected dubious ownership in repository at '{top}': owned by uid {owner}, you are uid {me}; "
            f"git refuses it too. If you trust it: git config --global --add safe.directory {top}"
        )


def _listed_safe(top: str) -> bool:
    """Does ``safe.directory`` (system, global or command-line config only, as in git)
    list ``top``?"""
    config = GitConfig.for_repository(None)
    allowed: list[str] = []
    for value in config.get_all("safe.directory"):
        if not value:  # an empty value resets the list
            allowed = []
        else:
            allowed.append(value)
    real = os.path.realpath(top)
    for entry in allowed:
        if entry == "*":
            return True
        path = os.path.expanduser(entry)
        if path.endswith("/*"):
            prefix = os.path.realpath(path[:-2])
            if real == prefix or real.startswith(prefix.rstrip("/") + "/"):
                return True
        elif os.path.realpath(path) == real:
            return True
    return False


class GitRepository:
    """Object database + refs + config of one repository (on disk or in memory)."""

    def __init__(
        self,
        odb: ObjectDatabase,
        refs: Refs,
        *,
        git_dir: str | None = None,
        common_dir: str | None = None,
        work_tree: str | None = None,
        config: GitConfig | None = None,
    ) -> None:
        self.odb = odb
        self.refs = refs
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.work_tree = work_tree
        self.config = config or GitConfig({})
        self._shallow: frozenset[str] | None = None
        refs.committer = _committer_of(self.config)

    @property
    def fmt(self) -> ObjectFormat:
        return self.odb.fmt

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, start: str = ".", *, require_work_tree: bool = True) -> GitRepository:
        git_dir, work_tree = find_git_dir(start)
        common_dir = git_dir
        commondir_file = os.path.join(git_dir, "commondir")
        if os.path.isfile(commondir_file):
            with open(commondir_file, encoding="utf-8") as f:
                common_dir = os.path.normpath(os.path.join(git_dir, f.read().strip()))
        _check_ownership(work_tree or git_dir, git_dir)
        config = GitConfig.for_repository(common_dir, git_dir)
        if work_tree is not None and config.get_bool("core.bare") and "GIT_WORK_TREE" not in os.environ:
            work_tree = None
        if work_tree is None and require_work_tree:
            raise BareRepositoryError(
                f"{git_dir} is a bare repository; run prov inside a clone with a work tree"
            )
        if config.get("extensions.refstorage", "files").lower() != "files":
            raise RepositoryError(
                f"{git_dir} uses reftable ref storage, which git-prov does not read yet; "
                "use a repository with the default 'files' ref storage"
            )
        try:
            fmt = format_named(config.get("extensions.objectformat", "sha1") or "sha1")
        except ValueError as exc:
            raise RepositoryError(f"{git_dir}: {exc}") from exc
        durability = Durability.from_config(config)
        odb = _object_database(os.path.join(common_dir, "objects"), fmt)
        odb.durability = durability
        log_updates = config.get("core.logAllRefUpdates")
        # "always" is not a boolean: git checks for it before reading one
        enabled = log_updates is not None and (log_updates.strip().lower() == "always"
                                               or config.get_bool("core.logAllRefUpdates"))
        refs = DiskRefs(git_dir, common_dir, durability=durability,
                        log_updates=reflog_mode(log_updates, enabled, bare=work_tree is None))
        return cls(odb, refs, git_dir=git_dir, common_dir=common_dir, work_tree=work_tree, config=config)

    @classmethod
    def memory(cls, fmt: ObjectFormat = SHA1) -> GitRepository:
        refs = MemoryRefs()
        refs.set_symbolic("HEAD", "refs/heads/main")
        return cls(MemoryObjectDatabase(fmt), refs)

    def prov_dir(self) -> str | None:
        """``.git/prov``: local, unversioned state (journal, caches, logs)."""
        return None if self.common_dir is None else os.path.join(self.common_dir, "prov")

    # -- objects ---------------------------------------------------------------
    @property
    def shallow(self) -> frozenset[str]:
        """Commits whose parents a shallow clone left out (``shallow``), as git reads it."""
        if self._shallow is None:
            try:
                with open(os.path.join(self.common_dir or "", "shallow"), encoding="ascii") as f:
                    self._shallow = frozenset(line.strip() for line in f if line.strip())
            except (OSError, ValueError):
                self._shallow = frozenset()
        return self._shallow

    def read_commit(self, oid: str) -> Commit:
        try:
            commit = decode_commit(self.odb.read_typed(oid, "commit"))
        except ValueError as exc:
            raise DataError(f"commit {oid} cannot be parsed: {exc}") from exc
        if commit.parents and self.common_dir and oid in self.shallow:
            return commit._replace(parents=())
        return commit

    def head(self) -> str:
        oid = self.refs.read("HEAD")
        if oid is None:
            branch = self.refs.symbolic_target("HEAD") or "HEAD"
            raise EmptyRepositoryError(
                f"the repository has no commits yet ({branch} does not exist); make a first commit"
            )
        return oid

    # -- revisions -------------------------------------------------------------
    def _peel_to_commit(self, oid: str, rev: str) -> str:
        for _ in range(20):
            try:
                kind, data = self.odb.read(oid)
            except MissingObjectError:
                raise UnknownRevisionError(f"unknown revision {rev!r}: object {oid} is missing") from None
            if kind == "commit":
                return oid
            if kind != "tag":
                raise UnknownRevisionError(f"revision {rev!r} names a {kind}, not a commit")
            oid = data.split(b"\n", 1)[0].split(b" ", 1)[1].decode("ascii")
        raise DataError(f"tag chain too long at {rev!r}")

    def _resolve_name(self, name: str) -> str | None:
        if name in ("HEAD", "@"):
            return self.head()
        for candidate in (
            f"refs/{name}" if not name.startswith("refs/") else name,
            f"refs/tags/{name}",
            f"refs/heads/{name}",
            f"refs/remotes/{name}",
            f"refs/remotes/{name}/HEAD",
        ):
            oid = self.refs.read(candidate)
            if oid:
                return oid
        if _HEX.fullmatch(name):
            prefix = name.lower()
            if len(prefix) > self.fmt.hex_len:
                return None
            if len(prefix) == self.fmt.hex_len:
                return prefix if self.odb.contains(prefix) else None
            matches = self.odb.ids_with_prefix(prefix)
            commits = matches
            if len(matches) > 1:
                commits = {m for m in matches if self._is_commitish(m)}
            if len(commits) > 1:
                shown = ", ".join(sorted(c[:12] for c in commits)[:5])
                raise AmbiguousRevisionError(
                    f"short id {name!r} is ambiguous (matches {shown}); give more characters"
                )
            if commits:
                return next(iter(commits))
        return None

    def _is_commitish(self, oid: str) -> bool:
        kind, _ = self.odb.read(oid)
        return kind in ("commit", "tag")

    def resolve(self, rev: str) -> str:
        """The full id of the commit ``rev`` names (whatever git accepts)."""
        if not rev or rev.startswith("-") or "\n" in rev:
            raise UnknownRevisionError(f"invalid revision {rev!r}")
        base, steps = rev, []
        while True:
            m = _SUFFIX.search(base)
            if not m or m.start() == 0:
                break
            steps.append(m.group(1))
            base = base[: m.start()]
        if "@{" in base or ":" in base or "{" in base or "^" in base or "~" in base:
            return self._resolve_with_git(rev)
        oid = self._resolve_name(base)
        if oid is None:
            if self.git_dir is not None and not _HEX.fullmatch(base):
                return self._resolve_with_git(rev)
            raise UnknownRevisionError(f"unknown revision {rev!r}; check 'git log' for valid names")
        oid = self._peel_to_commit(oid, rev)
        for step in reversed(steps):
            if step in ("^{commit}", "^{}"):
                continue
            count = int(step[1:]) if len(step) > 1 else 1
            commit = self.read_commit(oid)
            if step[0] == "^":
                if count == 0:
                    continue
                if count > len(commit.parents):
                    raise UnknownRevisionError(f"unknown revision {rev!r}: no parent {count}")
                oid = commit.parents[count - 1]
            else:
                if count >= _GIT_WALK_MIN:
                    walked = self._first_parent_with_git(oid, count)
                    if walked is not None:
                        oid = walked
                        continue
                for _ in range(count):
                    if not commit.parents:
                        raise UnknownRevisionError(f"unknown revision {rev!r}: history is shorter")
                    oid = commit.parents[0]
                    commit = self.read_commit(oid)
        return oid

    def _first_parent_with_git(self, oid: str, count: int) -> str | None:
        """``oid~count`` computed by git (C, commit-graph), or None to walk in-process.

        Only for long walks: starting git costs a few milliseconds, reading a commit
        here ~10-20 us. Replace refs and grafts are switched off so the answer is the
        one the in-process walk gives; on any failure the caller walks itself, so
        errors and their messages are unchanged.
        """
        if self.git_dir is None:
            return None
        args = ["--no-replace-objects", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{oid}~{count}"]
        try:
            from . import gitbin  # a long walk: worth a process, not an import on every open

            status, raw = gitbin.output(args, git_dir=self.git_dir, extra={"GIT_GRAFT_FILE": os.devnull})
        except ProvError:  # git cannot be started
            return None
        out = raw.decode("utf-8", "replace").strip()
        return out if status == 0 and self.fmt.is_id(out) else None

    def _resolve_with_git(self, rev: str) -> str:
        if self.git_dir is None:
            raise UnknownRevisionError(f"unknown revision {rev!r}")
        try:
            from . import gitbin

            proc = gitbin.run(["rev-parse", "--verify", "--quiet", "--end-of-options", rev], git_dir=self.git_dir, text=True)
        except ProvError:  # git cannot be started
            raise UnknownRevisionError(f"unknown revision {rev!r}") from None
        out = proc.stdout.strip()
        if proc.returncode != 0 or not self.fmt.is_id(out):
            if "ambiguous" in proc.stderr:
                raise AmbiguousRevisionError(f"revision {rev!r} is ambiguous; give more characters")
            raise UnknownRevisionError(f"unknown revision {rev!r}; check 'git log' for valid names")
        # peeled here, not with ``^{commit}``: that suffix would become part of ``:/text``
        return self._peel_to_commit(out, rev)

    def walk(self, include: list[str], exclude: list[str] = (), limit: int | None = None) -> list[str]:
        """Commits reachable from ``include`` but not ``exclude``, newest first."""
        hidden: set[str] = set()
        stack = list(exclude)
        while stack:
            oid = stack.pop()
            if oid in hidden:
                continue
            hidden.add(oid)
            stack.extend(self.read_commit(oid).parents)
        heap: list[tuple[int, int, str]] = []
        seen: set[str] = set()
        counter = 0
        for oid in include:
            if oid not in hidden and oid not in seen:
                seen.add(oid)
                heapq.heappush(heap, (-self.read_commit(oid).committer_time, counter, oid))
                counter += 1
        out: list[str] = []
        while heap and (limit is None or len(out) < limit):
            _, _, oid = heapq.heappop(heap)
            out.append(oid)
            for parent in self.read_commit(oid).parents:
                if parent not in hidden and parent not in seen:
                    seen.add(parent)
                    counter += 1
                    heapq.heappush(heap, (-self.read_commit(parent).committer_time, counter, parent))
        return out

    def resolve_range(self, spec: str) -> tuple[list[str], list[str]]:
        """``A..B`` / ``^A B`` / ``B`` -> (include, exclude) commit ids."""
        include: list[str] = []
        exclude: list[str] = []
        for part in spec.split():
            if ".." in part and "..." not in part:
                left, right = part.split("..", 1)
                exclude.append(self.resolve(left or "HEAD"))
                include.append(self.resolve(right or "HEAD"))
            elif part.startswith("^"):
                exclude.append(self.resolve(part[1:]))
            else:
                include.append(self.resolve(part))
        return include, exclude
