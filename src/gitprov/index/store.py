"""``RunIndex``: a SQLite index of every run in the ledger, under ``.git/prov/``.

Derived data: it records the ledger tip it reflects, and before answering brings
itself to the current tip (``refresh.apply_tip``: only the runs changed since are read
again); a missing, corrupt or older-format index is rebuilt from the ledger. Deleting
the file loses nothing. Its tables are ``tables.SCHEMA``.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import DataError, WriteError
from ..store.ledger import Ledger
from ..store.prov_store import ProvStore
from .encoding import epoch_ms, id_bytes, links_json, time_text, unhex
from .tables import CACHE_KIB, SCHEMA, skipped_runs

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator

__all__ = ["INDEX_FILE", "INDEX_VERSION", "RunIndex", "index_of"]

INDEX_FILE = "index.sqlite"
#: bump when the tables change: an older index is rebuilt.
INDEX_VERSION = "10"
#: ids per ``IN (...)``
_CHUNK = 500


class RunIndex:
    """The query index of one ledger, kept at ``path`` (``:memory:`` for none)."""

    def __init__(self, ledger: Ledger, path: str) -> None:
        self.ledger = ledger
        self.path = path
        self._db: sqlite3.Connection | None = None
        #: counters for tests and benchmarks: how the last refresh went
        self.last_refresh: dict[str, int] = {}

    # -- connection ----------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        import sqlite3

        if self.path != ":memory:":
            folder = os.path.dirname(self.path)
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise WriteError(f"cannot create {folder} for the query index: {exc.strerror}; it must be a "
                                 "writable directory (move a file of that name away)") from exc
        try:
            # check_same_thread: a cold build inserts from a thread of its own (rows.RunRows)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise WriteError(f"cannot open the query index {self.path}: {exc}") from exc
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        db.create_function("regexp", 2, _regexp, deterministic=True)
        db.create_function("epoch_ms", 1, epoch_ms, deterministic=True)
        db.create_function("time_text", 1, time_text, deterministic=True)
        db.create_function("links", 1, links_json, deterministic=True)
        return db

    def connection(self) -> sqlite3.Connection:
        """An open connection to an index that reflects the current ledger tip."""
        import sqlite3

        for attempt in (1, 2):
            try:
                if self._db is None:
                    self._db = self._open()
                    self._ensure_schema(self._db)
                self._refresh(self._db)
                return self._db
            except sqlite3.OperationalError as exc:
                if "no such" not in str(exc):  # locked, disk full, I/O: not corruption, keep the file
                    self.close()
                    raise WriteError(f"cannot use the query index {self.path}: {exc}") from exc
                if attempt == 2:
                    raise DataError(f"the query index {self.path} cannot be rebuilt: {exc}") from exc
                self._discard()
            except sqlite3.DatabaseError as exc:
                if attempt == 2:
                    raise DataError(f"the query index {self.path} cannot be rebuilt: {exc}") from exc
                self._discard()  # corrupt: rebuild from the ledger
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _discard(self) -> None:
        self.close()
        if self.path == ":memory:":
            return
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise WriteError(f"cannot remove the corrupt query index {self.path}: {exc.strerror}") from exc

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if row is not None and row[0] == INDEX_VERSION:
                return
            raise _corrupt("index version mismatch")
        if tables:
            raise _corrupt("foreign tables")
        db.execute("BEGIN IMMEDIATE")
        try:
            raced = db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is not None
            if not raced:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO meta VALUES ('version', ?)", (INDEX_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if raced:  # another process created it meanwhile: check what it made
            self._ensure_schema(db)

    # -- keeping up with the ledger ----------------------------------------------------
    def indexed_tip(self) -> str | None:
        db = self._db if self._db is not None else self.connection()
        row = db.execute("SELECT value FROM meta WHERE key='tip'").fetchone()
        return row[0] if row and row[0] else None

    def run_trees(self, run_ids: list[str]) -> list[tuple[str, str]]:
        """``(run id, run directory tree id)`` at the indexed tip, in the order given;
        ids the index does not hold are left out."""
        db = self._db if self._db is not None else self.connection()
        trees: dict[bytes, bytes] = {}
        keys = [id_bytes(run_id) for run_id in run_ids]
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            trees.update(db.execute(f"SELECT id, tree FROM runs WHERE id IN ({marks})", chunk))  # noqa: S608
        return [(run_id, trees[key].hex()) for run_id, key in zip(run_ids, keys, strict=True) if key in trees]

    def live_runs(self) -> list[tuple[str, str, str, str | None]]:
        """``(run id, directory tree id, name, parent run id)`` of every run not deleted,
        oldest first (a parent before the runs cloned from it), at the ledger's tip now."""
        return list(self.iter_live_runs())

    def iter_live_runs(self) -> Iterator[tuple[str, str, str, str | None]]:
        """``live_runs`` row by row, for a caller that keeps them compactly (sync's plan)."""
        db = self.connection()
        for run_id, tree, name, parent in db.execute(
                "SELECT id, tree, name, parent FROM runs WHERE deleted = 0 ORDER BY created, id"):
            yield run_id.hex(), tree.hex(), name or "", unhex(parent) or None

    def run_commits(self) -> list[tuple[str, str]]:
        """``(run id, commit)`` of every run made against a commit."""
        db = self._db if self._db is not None else self.connection()
        return [(run_id.hex(), unhex(commit)) for run_id, commit in
                db.execute("SELECT r.id, c.oid FROM runs r JOIN commits c ON c.cid = r.commit_id WHERE c.oid != ''")]

    def skipped(self) -> dict[str, str]:
        """``{run id: why}`` of the runs the index left out because they could not be
        read (a missing or corrupt object); ``prov runs`` warns of each."""
        return skipped_runs(self._db if self._db is not None else self.connection())

    def _refresh(self, db: sqlite3.Connection) -> None:
        tip = self.ledger.tip()
        row = db.execute("SELECT value FROM meta WHERE key='tip'").fetchone()
        if row is not None and (row[0] or None) == tip:
            self.last_refresh = {"runs_read": 0, "shards_read": 0}
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key='tip'").fetchone()  # another process?
            if row is None or (row[0] or None) != tip:
                from .refresh import apply_tip

                self.last_refresh = apply_tip(self.ledger, db, tip)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

#: ids per ``IN (...)``
_CHUNK = 500


def _corrupt(why: str) -> Exception:
    import sqlite3

    return sqlite3.DatabaseError(why)


def _regexp(pattern: str, value: Any) -> bool:
    import re

    if value is None:
        return False
    return re.search(pattern, value if isinstance(value, str) else str(value)) is not None


#: the index of each open store (one per store object, like its caches)
_OPEN: weakref.WeakKeyDictionary[ProvStore, RunIndex] = weakref.WeakKeyDictionary()


def index_of(store: ProvStore) -> RunIndex:
    """The run index of ``store``: ``.git/prov/index.sqlite``, or one in memory for this
    process when the repository is read-only or in memory (refreshed before each answer)."""
    store = ProvStore.of(store)
    index = _OPEN.get(store)
    if index is None:
        prov_dir = store.prov_dir
        path = os.path.join(prov_dir, INDEX_FILE) if prov_dir else ":memory:"
        if prov_dir and not os.access(prov_dir if os.path.isdir(prov_dir) else os.path.dirname(prov_dir), os.W_OK):
            path = ":memory:"  # a read-only repository: an index for this process only
        index = _OPEN[store] = RunIndex(store.ledger, path)
    return index
