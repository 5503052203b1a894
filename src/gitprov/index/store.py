"""``RunIndex``: a SQLite index of every run in the ledger, under ``.git/prov/``.

Derived data: it records the ledger tip it reflects and, with it, that tip's tree
(the ``runs/<shard>`` tree ids and each run directory's tree id). Before answering it
compares them with the current tip's tree and re-reads only the runs whose directory
tree changed; a missing, corrupt or older-format index is rebuilt from the ledger.
Deleting the file loses nothing.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import DataError, WriteError
from ..model import RunRecord, RunState
from ..store.ledger import Ledger
from ..store.prov_store import ProvStore
from ..store.trees import read_tree

if TYPE_CHECKING:
    import sqlite3

    from .reading import RunBlobs

__all__ = ["INDEX_FILE", "INDEX_VERSION", "RunIndex", "index_of", "sql_value"]

INDEX_FILE = "index.sqlite"
#: bump when the tables change: an older index is rebuilt.
INDEX_VERSION = "4"

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE shards(name TEXT PRIMARY KEY, oid TEXT NOT NULL);
CREATE TABLE runs(id TEXT PRIMARY KEY, tree TEXT NOT NULL, shard TEXT NOT NULL, name TEXT, experiment TEXT,
                  status TEXT, created TEXT, ended TEXT, updated TEXT, commit_id TEXT, parent TEXT,
                  deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX runs_shard ON runs(shard);
CREATE INDEX runs_created ON runs(created);
CREATE TABLE params(run TEXT NOT NULL, key TEXT NOT NULL, value, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE INDEX params_kv ON params(key, value);
CREATE TABLE metrics(run TEXT NOT NULL, key TEXT NOT NULL, value REAL, step INTEGER, timestamp INTEGER,
                     PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE INDEX metrics_kv ON metrics(key, value);
CREATE TABLE tags(run TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE INDEX tags_kv ON tags(key, value);
CREATE TABLE attributes(run TEXT NOT NULL, key TEXT NOT NULL, value, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE INDEX attributes_kv ON attributes(key, value);
CREATE TABLE lineage(run TEXT NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
                     item TEXT NOT NULL);
CREATE INDEX lineage_run ON lineage(run);
CREATE INDEX lineage_target ON lineage(kind, name, item, direction, run);
CREATE TABLE stages(run TEXT NOT NULL, name TEXT NOT NULL, args_hash TEXT, commit_id TEXT, dirty INTEGER,
                    status TEXT, ended TEXT, record TEXT NOT NULL);
CREATE INDEX stages_key ON stages(name, args_hash);
"""

_RUN_TABLES = ("runs", "params", "metrics", "tags", "attributes", "lineage", "stages")
#: attributes holding pipeline stage records (``gitprov.runs.stage``)
_STAGE_PREFIX = "prov.stage/"
#: secondary indexes dropped during a cold build and created once at its end
_SECONDARY_INDEXES = ("runs_shard", "runs_created", "params_kv", "metrics_kv", "tags_kv", "attributes_kv",
                      "lineage_run", "lineage_target", "stages_key")
#: a cold build of at least this many runs builds the indexes after the rows
_BULK_INDEX_MIN = 1000
#: runs decoded between two rounds of inserts
_INSERT_BATCH = 2000


def sql_value(value: Any) -> Any:
    """A JSON value as SQLite stores it: scalars natively (bools as 0/1), the rest as JSON."""
    if value is None or isinstance(value, (str, int, float)):
        return int(value) if isinstance(value, bool) else value
    return codec.encode(value).decode()


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
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise WriteError(f"cannot open the query index {self.path}: {exc}") from exc
        db.execute("PRAGMA synchronous=NORMAL")
        db.create_function("regexp", 2, _regexp, deterministic=True)
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
                for statement in _SCHEMA.split(";"):
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
        """``(run id, run directory tree id)`` at the indexed tip, in the order given."""
        db = self._db if self._db is not None else self.connection()
        if len(run_ids) > 500:
            trees = dict(db.execute("SELECT id, tree FROM runs"))
        else:
            marks = ",".join("?" * len(run_ids))
            trees = dict(db.execute(f"SELECT id, tree FROM runs WHERE id IN ({marks})", run_ids))  # noqa: S608
        return [(run_id, trees[run_id]) for run_id in run_ids]

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
                self._apply_tip(db, tip)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _apply_tip(self, db: sqlite3.Connection, tip: str | None) -> None:
        odb = self.ledger.repo.odb
        new_shards = {name: e.oid for name, e in self.ledger.list_dir("runs", tip).items() if e.is_tree}
        old_shards = dict(db.execute("SELECT name, oid FROM shards"))
        gone: list[str] = []
        todo: list[tuple[str, str]] = []  # (run id, directory tree) to (re)read
        shard_of: dict[str, str] = {}
        shards_read = 0
        for shard in sorted(set(new_shards) | set(old_shards)):
            if new_shards.get(shard) == old_shards.get(shard):
                continue
            shards_read += 1
            new_runs = {n: e.oid for n, e in read_tree(odb, new_shards[shard]).items()} if shard in new_shards else {}
            old_runs = dict(db.execute("SELECT id, tree FROM runs WHERE shard=?", (shard,)))
            gone.extend(run_id for run_id in old_runs if old_runs[run_id] != new_runs.get(run_id))
            for run_id, tree in sorted(new_runs.items()):
                if old_runs.get(run_id) != tree:
                    todo.append((run_id, tree))
                    shard_of[run_id] = shard
        fresh = not old_shards and len(todo) >= _BULK_INDEX_MIN
        if fresh:  # a cold build: fill the tables, then build their indexes once
            for name in _SECONDARY_INDEXES:
                db.execute(f"DROP INDEX IF EXISTS {name}")
        self._delete_runs(db, gone)
        rows = _Rows()
        from .reading import read_run_blobs

        for blobs in read_run_blobs(self.ledger.repo, todo):
            rows.add(blobs, shard_of[blobs.run_id])
            if rows.count >= _INSERT_BATCH:
                rows.insert(db)
        rows.insert(db)
        if fresh:
            for statement in _SCHEMA.split(";"):
                if statement.strip().startswith("CREATE INDEX"):
                    db.execute(statement)
        db.executemany("DELETE FROM shards WHERE name=?", [(s,) for s in old_shards if s not in new_shards])
        db.executemany("INSERT OR REPLACE INTO shards VALUES (?, ?)",
                       [(s, oid) for s, oid in new_shards.items() if old_shards.get(s) != oid])
        db.execute("INSERT OR REPLACE INTO meta VALUES ('tip', ?)", (tip or "",))
        self.last_refresh = {"runs_read": len(todo), "shards_read": shards_read}

    @staticmethod
    def _delete_runs(db: sqlite3.Connection, run_ids: list[str]) -> None:
        pairs = [(run_id,) for run_id in run_ids]
        db.executemany("DELETE FROM runs WHERE id=?", pairs)
        for table in _RUN_TABLES[1:]:
            db.executemany(f"DELETE FROM {table} WHERE run=?", pairs)  # noqa: S608 (fixed names)


class _Rows:
    """Rows of decoded runs waiting to be inserted, table by table (one
    ``executemany`` per table and batch instead of seven per run)."""

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple]] = {t: [] for t in _RUN_TABLES}
        self.count = 0

    def add(self, blobs: RunBlobs, shard: str) -> None:
        run_id = blobs.run_id
        record = codec.decode(blobs.record, RunRecord, f"record of run {run_id[:12]}")
        state = codec.decode(blobs.state, RunState, f"state of run {run_id[:12]}")
        t = self.tables
        t["runs"].append((run_id, blobs.tree, shard, state.name, state.experiment, state.status, record.created,
                          state.ended, state.updated, record.code.commit, record.parent, int(state.deleted)))
        params = {**record.params, **state.params}
        t["params"].extend((run_id, k, sql_value(v)) for k, v in params.items())
        t["metrics"].extend((run_id, k, None if m.value != m.value else m.value, m.step, m.timestamp)
                            for k, m in state.metrics.items())
        t["tags"].extend((run_id, k, v) for k, v in state.tags.items())
        t["attributes"].extend((run_id, k, sql_value(v)) for k, v in state.attributes.items())
        rows = set()
        for direction, side in (("in", state.lineage.inputs), ("out", state.lineage.outputs)):
            for key, items in side.items():
                kind, _, name = key.partition(":")
                rows.update((run_id, direction, kind, name, item) for item in (items or [""]))
        # dataset versions (log_dataset_version, prov run --input/--output) are lineage too
        for key, version in state.datasets.items():
            rows.add((run_id, "out" if key.startswith("output/") else "in", "dataset", key, version.digest))
        t["lineage"].extend(sorted(rows))
        t["stages"].extend(
            (run_id, str(s.get("name")), s.get("args_hash"), s.get("commit"), int(bool(s.get("dirty"))),
             s.get("status"), s.get("ended"), codec.encode(s).decode())
            for k, s in state.attributes.items() if k.startswith(_STAGE_PREFIX) and isinstance(s, dict))
        self.count += 1

    def insert(self, db: sqlite3.Connection) -> None:
        for table, rows in self.tables.items():
            if rows:
                marks = ",".join("?" * len(rows[0]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608 (fixed names)
                rows.clear()
        self.count = 0


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
