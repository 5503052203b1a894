"""The code version of a run: commit, dirty flag, patch of uncommitted changes."""

from __future__ import annotations

import os
import sys

from ..model import CodeVersion
from ..scrub import scrub_url
from ..store.repo import GitRepository, spawn_output

__all__ = ["code_version", "head_code_version"]


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
    try:  # posix_spawn, not subprocess: no fork of a large training process
        status, out = spawn_output(["git", "--no-optional-locks", "-C", git.work_tree, "diff", "--binary",
                                    "--no-color", "--no-ext-diff", "HEAD"])
    except OSError:
        return base
    if status != 0 or not out:
        return base
    patch = git.odb.write("blob", out)
    return CodeVersion(commit=base.commit, is_dirty=True, patch=patch,
                       exec_path=base.exec_path, repo_url=base.repo_url)
