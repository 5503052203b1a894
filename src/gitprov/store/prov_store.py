"""``ProvStore``: the provenance storage of one repository, the handle every layer below
the API takes.

It bundles what the runs, index, exchange, history and hook code use: the git
repository (objects and refs), ``refs/notes/prov``, ``refs/prov/ledger`` and the private
``.git/prov`` directory. ``gitprov.Repository`` owns one and adds the verbs.
"""

from __future__ import annotations

import os
from typing import Any

from .ledger import Ledger
from .notes import Notes
from .objects import SHA1, ObjectFormat
from .repo import GitRepository

__all__ = ["ProvStore"]


class ProvStore:
    """Objects, refs, notes and ledger of one git repository (on disk or in memory)."""

    __slots__ = ("git", "ledger", "notes", "__weakref__")

    def __init__(self, git: GitRepository) -> None:
        self.git = git
        self.notes = Notes(git)
        self.ledger = Ledger(git)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".") -> ProvStore:
        """The store of the repository containing ``path`` (found as git finds it)."""
        return cls(GitRepository.open(os.fspath(path)))

    @classmethod
    def memory(cls, fmt: ObjectFormat = SHA1) -> ProvStore:
        """A store over an in-memory repository (tests; nothing touches the disk)."""
        return cls(GitRepository.memory(fmt))

    @classmethod
    def of(cls, handle: Any) -> ProvStore:
        """``handle`` itself when a store, else its ``.store`` (a ``gitprov.Repository``)."""
        if isinstance(handle, ProvStore):
            return handle
        store = getattr(handle, "store", None)
        if isinstance(store, ProvStore):
            return store
        raise TypeError(f"expected a ProvStore or a gitprov.Repository, got {type(handle).__name__}")

    @property
    def work_tree(self) -> str | None:
        return self.git.work_tree

    @property
    def prov_dir(self) -> str | None:
        """``.git/prov`` (in the common dir of a worktree); None in memory."""
        return self.git.prov_dir()

    def journal_dir(self) -> str | None:
        """Where active runs and note queues keep their journals."""
        prov_dir = self.git.prov_dir()
        return None if prov_dir is None else os.path.join(prov_dir, "journal")

    def has_journals(self) -> bool:
        """Cheap check (every open does it): any run journal or note queue, live or
        abandoned. Only then is recovery (``runs/recovery.py``) worth importing."""
        folder = self.journal_dir()
        if folder is None:
            return False
        try:
            return any(name.endswith((".wal", ".notes")) for name in os.listdir(folder))
        except OSError:
            return False

    def __repr__(self) -> str:
        return f"<ProvStore {self.git.git_dir or 'memory'}>"
