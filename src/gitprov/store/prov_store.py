"""``ProvStore``: the provenance storage of one repository, the handle every layer below
the API takes.

It bundles what the runs, index, exchange, history and hook code use: the git
repository (objects and refs), ``refs/notes/prov``, ``refs/prov/ledger`` and the private
``.git/prov`` directory. ``gitprov.Repository`` owns one and adds the verbs.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import RepositoryError, WriteError
from .ledger import Ledger
from .notes import Notes
from .objects import SHA1, ObjectFormat
from .repo import GitRepository

__all__ = ["ProvStore"]


class ProvStore:
    """Objects, refs, notes and ledger of one git repository (on disk or in memory)."""

    __slots__ = ("git", "ledger", "notes", "_redaction_key", "__weakref__")

    def __init__(self, git: GitRepository) -> None:
        self.git = git
        self.notes = Notes(git)
        self.ledger = Ledger(git)
        self._redaction_key: bytes | None = None

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

    def redaction_key(self) -> bytes:
        """The key of the digests that stand in for secret hyperparameters: git config
        ``prov.redactionKey`` when set (share it to compare digests across clones), else a
        random key kept in ``.git/prov/redaction-key``, never in a git object."""
        if self._redaction_key is None:
            configured = self.git.config.get("prov.redactionkey")
            if configured:
                self._redaction_key = configured.encode()
            else:
                import secrets

                prov_dir = self.git.prov_dir()
                self._redaction_key = secrets.token_bytes(32) if prov_dir is None else _local_key(prov_dir)
        return self._redaction_key

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


def _local_key(prov_dir: str) -> bytes:
    """The clone's own redaction key, made once (0600) by whichever process comes first."""
    import secrets

    path = os.path.join(prov_dir, "redaction-key")
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RepositoryError(f"cannot read {path}: {exc.strerror}; check its permissions") from exc
    key = secrets.token_hex(32).encode()
    try:
        os.makedirs(prov_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
        try:
            os.link(tmp, path)  # never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        with open(path, "rb") as f:
            return f.read().strip()
    except OSError as exc:
        raise WriteError(f"cannot create {path}: {exc.strerror}; check that .git/prov is writable") from exc
