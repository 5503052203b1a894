"""Local sync state: what each target already holds, per run and per series.

One sqlite file per target under ``.git/prov/sync/<target-key>.sqlite`` (never pushed):
a row per run, read and written one run at a time, so a sync of 100,000 runs holds
none of them in memory, and a run synced writes its own row, not the whole state
again. It is a cache: losing it costs a search of the tracker by the ``prov.run_id``
tag, never a duplicate. A lock file next to it keeps two ``prov sync`` processes off
the same target.

Format 1 was one JSON file, ``<target-key>.json``, holding every run; the first
``SyncState`` of that target to open it copies it into a new sqlite file (written
aside, then linked into place only if none is there yet) and deletes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from .._util.pidlock import take
from ..errors import DataError, SyncError, WriteError

__all__ = ["STATE_FORMAT", "RunEntry", "SyncState", "state_keys", "target_key"]

#: 2: a sqlite file; 1 was the JSON file (migrated when met)
STATE_FORMAT = 2
_SCHEMA = ("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
           "CREATE TABLE IF NOT EXISTS runs(run TEXT PRIMARY KEY, entry TEXT NOT NULL) WITHOUT ROWID;")


def target_key(kind: str, address: str) -> str:
    """A file-name-safe key for one target: ``mlflow-<host or file>-<hash>``."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", address.split("://", 1)[-1])[-40:].strip("_.")
    digest = hashlib.sha256(f"{kind}\0{address}".encode()).hexdigest()[:12]
    return f"{kind}-{readable}-{digest}" if readable else f"{kind}-{digest}"


def state_keys(directory: str | None) -> list[str]:
    """The keys of the targets with local state in ``directory`` (either format)."""
    if not directory or not os.path.isdir(directory):
        return []
    return sorted({name.rsplit(".", 1)[0] for name in os.listdir(directory)
                   if name.endswith((".sqlite", ".json")) and not name.startswith(".")})


class RunEntry(dict):
    """What a target holds of one run (plain JSON).

    ``version``: run directory tree id last synced completely (None while pending);
    ``external_id``; ``series``: key -> points sent; ``params``/``tags``: key -> value
    digest sent; ``artifacts``: key -> sha256; ``datasets``: key -> digest; ``status``:
    remote status sent; ``parent``: the parent link was written; ``error``: last failure.
    """


def value_digest(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class SyncState:
    """The state of one target; thread-safe. Entries written are committed at most a
    second apart and by ``save()``; nothing is created until the first ``put``."""

    def __init__(self, directory: str | None, key: str, description: str) -> None:
        self.key = key
        self.description = description
        self.path = os.path.join(directory, f"{key}.sqlite") if directory else None
        #: the format-1 file this state is migrated from, if it is there
        self.legacy_path = os.path.join(directory, f"{key}.json") if directory else None
        self._lock = threading.Lock()
        self._opening = threading.Lock()
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._dirty = False
        self._last_save = 0.0
        self._memory: dict[str, str] = {}  # without a directory (an in-memory repository)
        if self.path and (os.path.exists(self.path) or os.path.exists(self.legacy_path or "")):
            self._open()

    # -- the file ----------------------------------------------------------------
    def _open(self, create: bool = False) -> sqlite3.Connection | None:
        if self._db is not None or not self.path:
            return self._db
        with self._opening:  # worker threads putting their first entries at once: one connection
            return self._db if self._db is not None else self._connect(create)

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        assert self.path
        assert self.legacy_path
        if not os.path.exists(self.path):
            if os.path.exists(self.legacy_path):
                self._migrate()
            elif not create:
                return None
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
            if row is None:
                db.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?), ('target', ?)",
                           (str(STATE_FORMAT), self.description))
            elif row[0] != str(STATE_FORMAT):
                db.close()
                raise DataError(f"sync state {self.path} has format {row[0]!r}; delete it to rebuild it from the "
                                "tracker")
        except sqlite3.Error as exc:
            raise DataError(f"sync state {self.path} cannot be read ({exc}); delete it to rebuild it from the "
                            "tracker") from exc
        self._db = db
        return db

    def _migrate(self) -> None:
        """Copy the format-1 JSON file into a new sqlite file, then delete it."""
        assert self.path and self.legacy_path
        try:
            with open(self.legacy_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise DataError(f"sync state {self.legacy_path} cannot be read ({exc}); delete it to rebuild it from "
                            "the tracker") from exc
        if not isinstance(data, dict) or data.get("format_version") != 1:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise DataError(f"sync state {self.legacy_path} has format {version!r}; delete it to rebuild it from "
                            "the tracker")
        tmp = f"{self.path}.tmp-{os.getpid()}-{threading.get_ident()}"
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.executescript(_SCHEMA)
                db.execute("BEGIN")
                db.execute("INSERT INTO meta VALUES ('format_version', ?), ('target', ?)",
                           (str(STATE_FORMAT), str(data.get("target") or self.description)))
                db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?)",
                               ((run_id, _encode(entry)) for run_id, entry in (data.get("runs") or {}).items()))
                db.execute("COMMIT")
            finally:
                db.close()
            del data
            with contextlib.suppress(FileExistsError):  # another process migrated it first: keep theirs
                os.link(tmp, self.path)
            os.unlink(self.legacy_path)
        except (OSError, sqlite3.Error) as exc:
            raise WriteError(f"cannot write sync state {self.path}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    @property
    def target(self) -> str:
        """The target this state was written for (``kind address``), as recorded."""
        db = self._open()
        with self._lock:
            row = db.execute("SELECT value FROM meta WHERE key='target'").fetchone() if db is not None else None
        return row[0] if row else self.description

    # -- locking ---------------------------------------------------------------
    def acquire(self, wait: float = 0.0) -> None:
        """Take the target's lock file (one sync per target at a time), waiting up to
        ``wait`` seconds for another sync to release it."""
        if not self.path:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        lock = self.path[: -len(".sqlite")] + ".lock"
        deadline = time.monotonic() + wait
        while True:
            fd = take(lock)
            if fd is not None:
                self._lock_fd = fd
                return
            if time.monotonic() >= deadline:
                raise SyncError(f"another prov sync to {self.description} is running (lock {lock}); "
                                "wait for it, or delete the lock if no sync is running")
            time.sleep(0.2)

    def release(self) -> None:
        if self._lock_fd is not None and self.path:
            os.close(self._lock_fd)
            self._lock_fd = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path[: -len(".sqlite")] + ".lock")

    # -- entries ---------------------------------------------------------------
    def get(self, run_id: str) -> dict[str, Any] | None:
        """A fresh copy of what the target holds of ``run_id``, or None."""
        db = self._open()
        with self._lock:
            if db is None:
                text = self._memory.get(run_id)
            else:
                row = db.execute("SELECT entry FROM runs WHERE run = ?", (run_id,)).fetchone()
                text = row[0] if row else None
        return json.loads(text) if text is not None else None

    def put(self, run_id: str, entry: dict[str, Any]) -> None:
        db = self._open(create=True)
        text = _encode(entry)
        with self._lock:
            if db is None:
                self._memory[run_id] = text
                return
            if not self._dirty:
                db.execute("BEGIN IMMEDIATE")
                self._dirty = True
            db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?)", (run_id, text))
        if time.monotonic() - self._last_save > 1.0:
            self.save()

    def run_ids(self) -> Iterator[str]:
        """Every run the state has an entry for, in id order."""
        db = self._open()
        if db is None:
            yield from sorted(self._memory)
            return
        last = ""
        while True:  # a page at a time: no read held open between them
            with self._lock:
                page = [r for (r,) in db.execute("SELECT run FROM runs WHERE run > ? ORDER BY run LIMIT 1000",
                                                 (last,))]
            yield from page
            if len(page) < 1000:
                return
            last = page[-1]

    def save(self, force: bool = False) -> None:
        """Commit what was put since the last save (``force``: create the file even
        with nothing put)."""
        db = self._open(create=force)
        if db is None:
            return
        with self._lock:
            self._last_save = time.monotonic()
            if not self._dirty:
                return
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise WriteError(f"cannot write sync state {self.path}: {exc}") from exc
            self._dirty = False

    def close(self) -> None:
        self.save()
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _encode(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))
