"""Installing, removing and inspecting the git-prov hooks of a repository.

The hooks directory is git's: ``core.hooksPath`` when set (relative to the work tree),
otherwise ``hooks/`` in the common git directory (shared by every worktree). A foreign
hook is never overwritten: it is renamed to ``<hook>.prov-chained`` (bytes, mode and
symlink-ness untouched) and the shim runs it first; uninstall renames it back.
Installing twice writes nothing the second time.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import msgspec

from ..errors import ConfigError, ProvError, UsageError, WriteError
from ..store import gitbin
from ..store.repo import GitRepository
from . import HOOKS
from .runtime import is_strict, read_failures
from .shims import CHAINED_SUFFIX, interpreter_of, is_shim, render

__all__ = ["HookAction", "HookState", "HooksStatus", "hooks_dir", "install", "status", "uninstall"]


class HookAction(msgspec.Struct, kw_only=True):
    """What install or uninstall did to one hook."""

    hook: str
    path: str
    #: installed, updated, unchanged, chained (installed, foreign hook kept),
    #: removed, restored (shim removed, foreign hook put back), absent, kept (foreign)
    action: str
    detail: str = ""


class HookState(msgspec.Struct, kw_only=True):
    hook: str
    path: str
    #: prov (our shim), foreign (someone else's hook), absent
    state: str
    interpreter: str | None = None
    interpreter_exists: bool | None = None
    up_to_date: bool | None = None
    chained: str | None = None
    chained_executable: bool | None = None


class HooksStatus(msgspec.Struct, kw_only=True):
    hooks_dir: str
    hooks_path_config: str | None
    strict: bool
    rewrite_ref: bool
    hooks: list[HookState]
    failures: list[dict[str, Any]]
    failures_total: int

    @property
    def installed(self) -> bool:
        return all(h.state == "prov" for h in self.hooks)


def _open(repo: GitRepository | str | os.PathLike[str]) -> GitRepository:
    return repo if isinstance(repo, GitRepository) else GitRepository.open(os.fspath(repo))


def _git_config_path(git: GitRepository, key: str) -> str | None:
    """``git config --type=path`` (follows includes, expands ``~``); None when unset."""
    try:
        proc = gitbin.run(["config", "--type=path", "--get", key], git_dir=git.git_dir or ".", text=True)
    except ProvError:  # git cannot be started
        return git.config.get(key)
    value = proc.stdout.strip()
    return value or None if proc.returncode == 0 else None


def hooks_dir(repo: GitRepository | str | os.PathLike[str]) -> tuple[str, str | None]:
    """``(directory git runs hooks from, core.hooksPath as configured or None)``."""
    git = _open(repo)
    configured = _git_config_path(git, "core.hooksPath")
    if configured:
        base = git.work_tree or git.git_dir or "."
        return os.path.normpath(os.path.join(base, configured)), configured
    return os.path.join(git.common_dir or git.git_dir or ".git", "hooks"), None


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as exc:
        raise WriteError(f"cannot read {path}: {exc.strerror}") from exc


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _write_shim(path: str, text: str) -> None:
    tmp = f"{path}.prov-tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise WriteError(f"cannot write hook {path}: {exc.strerror}") from exc


def _check_inside(git: GitRepository, directory: str, configured: str | None) -> None:
    """Hooks go inside this repository only: a ``core.hooksPath`` shared by every
    repository (``~/.githooks``) would make them all run git-prov."""
    from .._util.paths import is_inside

    roots = [r for r in (git.work_tree, git.common_dir, git.git_dir) if r]
    if configured and not any(is_inside(directory, root) for root in roots):
        raise ConfigError(
            f"core.hooksPath is {configured}, outside this repository; git-prov installs hooks only inside it: "
            "set 'git config --local core.hooksPath .git/hooks' for this repository, or call 'prov hooks run "
            "<hook>' from your shared hooks (see docs/hooks.md)"
        )


def install(
    repo: GitRepository | str | os.PathLike[str] = ".",
    *,
    python: str | None = None,
    hooks: tuple[str, ...] = HOOKS,
) -> list[HookAction]:
    """Install the shims running ``python`` (default: this interpreter), chaining foreign hooks."""
    git = _open(repo)
    python = os.path.abspath(python or sys.executable)
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise UsageError(f"{python} is not an executable Python interpreter; the hooks would fail at every commit: "
                         "give one that has git-prov installed (--python)")
    directory, configured = hooks_dir(git)
    _check_inside(git, directory, configured)
    plan = []
    for hook in hooks:
        path = os.path.join(directory, hook)
        chained = path + CHAINED_SUFFIX
        data = _read(path) if _exists(path) and not os.path.islink(path) else None
        foreign = _exists(path) and (data is None or not is_shim(data))
        if foreign and _exists(chained):
            raise ConfigError(
                f"{path} is not git-prov's hook but {chained} already holds a chained one; "
                f"merge them by hand (or remove one), then run 'prov hooks install' again"
            )
        plan.append((hook, path, chained, data, foreign))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create hooks directory {directory}: {exc.strerror}") from exc
    actions = []
    for hook, path, chained, data, foreign in plan:
        text = render(hook, python)
        if foreign:
            try:
                os.rename(path, chained)
            except OSError as exc:
                raise WriteError(f"cannot move {path} aside to {chained}: {exc.strerror}") from exc
            _write_shim(path, text)
            actions.append(HookAction(hook=hook, path=path, action="chained", detail=f"runs {os.path.basename(chained)} first"))
        elif data is None:
            _write_shim(path, text)
            actions.append(HookAction(hook=hook, path=path, action="installed"))
        elif data != text.encode() or not os.access(path, os.X_OK):
            _write_shim(path, text)
            actions.append(HookAction(hook=hook, path=path, action="updated"))
        else:
            actions.append(HookAction(hook=hook, path=path, action="unchanged"))
    return actions


def uninstall(repo: GitRepository | str | os.PathLike[str] = ".", *, hooks: tuple[str, ...] = HOOKS) -> list[HookAction]:
    """Remove the shims and put chained foreign hooks back exactly as they were."""
    git = _open(repo)
    directory, _ = hooks_dir(git)
    actions = []
    for hook in hooks:
        path = os.path.join(directory, hook)
        chained = path + CHAINED_SUFFIX
        data = _read(path) if _exists(path) and not os.path.islink(path) else None
        ours = data is not None and is_shim(data)
        try:
            if _exists(path) and not ours:
                detail = f"{os.path.basename(chained)} left in place" if _exists(chained) else ""
                actions.append(HookAction(hook=hook, path=path, action="kept", detail=detail))
                continue
            if ours:
                os.unlink(path)
            if _exists(chained):
                os.rename(chained, path)
                actions.append(HookAction(hook=hook, path=path, action="restored"))
            else:
                actions.append(HookAction(hook=hook, path=path, action="removed" if ours else "absent"))
        except OSError as exc:
            raise WriteError(f"cannot uninstall {path}: {exc.strerror}") from exc
    return actions


def status(repo: GitRepository | str | os.PathLike[str] = ".", *, failures: int = 10) -> HooksStatus:
    """Which hooks are installed, with which interpreter, what they chain, what failed."""
    git = _open(repo)
    directory, configured = hooks_dir(git)
    states = []
    for hook in HOOKS:
        path = os.path.join(directory, hook)
        chained = path + CHAINED_SUFFIX
        state = HookState(hook=hook, path=path, state="absent")
        data = _read(path) if _exists(path) and not os.path.islink(path) else None
        if data is not None and is_shim(data):
            state.state = "prov"
            state.interpreter = interpreter_of(data.decode("utf-8", "replace"))
            if state.interpreter:
                state.interpreter_exists = os.access(state.interpreter, os.X_OK)
                state.up_to_date = data == render(hook, state.interpreter).encode()
        elif _exists(path):
            state.state = "foreign"
        if _exists(chained):
            state.chained = chained
            state.chained_executable = os.access(chained, os.X_OK)
        states.append(state)

    recent, total = read_failures(git.prov_dir(), failures)
    try:
        rewrite_refs = gitbin.run(["config", "--get-all", "notes.rewriteRef"], git_dir=git.git_dir or ".", text=True).stdout.split()
    except ProvError:  # git cannot be started
        rewrite_refs = []
    return HooksStatus(
        hooks_dir=directory,
        hooks_path_config=configured,
        strict=is_strict(git, git.work_tree),
        rewrite_ref="refs/notes/prov" in rewrite_refs,
        hooks=states,
        failures=recent,
        failures_total=total,
    )
