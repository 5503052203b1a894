"""``RunIndex``: a SQLite index of every run in the ledger, under ``.git/prov/``.

Derived data: it records the ledger tip it reflects and, with it, that tip's tree
(the ``runs/<shard>`` tree ids and each run directory's tree id). Before answering it
compares them with the current tip's tree and re-reads only the runs whose directory
tree changed; a missing, corrupt or older-format index is rebuilt from the ledger.
Deleting the file loses nothing. A shard entry that is not a run id (lowercase hex,
under the shard its first two characters name) is not a run and is not indexed.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DataError, FormatVersionError, WriteError
from ..store.ledger import Ledger
from ..store.objects import decode_tree
from ..store.prov_store import ProvStore
from .encoding import (
    _HEX,
    KEYED_TABLES,
    NODE_NAMES_SQL,
    RUN_TABLES,
    epoch_ms,
    id_bytes,
    links_json,
    time_text,
    unhex,
    unpack_links,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator

__all__ = ["INDEX_FILE", "INDEX_VERSION", "RunIndex", "index_of"]

INDEX_FILE = "index.sqlite"
#: bump when the tables change: an older index is rebuilt.
INDEX_VERSION = "10"

# Lean by design (docs/design/query-index.md): a run's ids are stored once, in ``runs``,
# as bytes; every other table refers to the run by its integer ``rid``, to keys, lineage
# nodes, commits and experiments by small integers too (a status is one: ``encoding``); a
# run's lineage is one row (``encoding.pack_links``) and a row a link in ``lineage_node``, a node is found by
# the hash of its kind and name (``encoding.node_hash``); only the indexes a query shape needs exist.
_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE shards(name TEXT PRIMARY KEY, oid BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE runs(rid INTEGER PRIMARY KEY, id BLOB NOT NULL, tree BLOB NOT NULL, name TEXT, experiment INTEGER,
                  status, created, ended, updated, commit_id INTEGER, parent,
                  deleted INTEGER NOT NULL DEFAULT 0, user TEXT, raw INTEGER);
CREATE UNIQUE INDEX runs_id ON runs(id);
CREATE INDEX runs_created ON runs(created);
CREATE TABLE commits(cid INTEGER PRIMARY KEY, oid NOT NULL);
CREATE TABLE keys(kid INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, uses INTEGER NOT NULL);
CREATE UNIQUE INDEX keys_name ON keys(kind, name);
CREATE TABLE params(run INTEGER NOT NULL, key INTEGER NOT NULL, value TEXT NOT NULL, num, PRIMARY KEY(run, key))
                     WITHOUT ROWID;
CREATE INDEX params_kv ON params(key, value) WHERE num IS NULL;
CREATE TABLE metrics(run INTEGER NOT NULL, key INTEGER NOT NULL, value REAL, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE INDEX metrics_kv ON metrics(key, value);
CREATE TABLE tags(run INTEGER NOT NULL, key INTEGER NOT NULL, value TEXT, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE attributes(run INTEGER NOT NULL, key INTEGER NOT NULL, value, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE nodes(nid INTEGER PRIMARY KEY, kind NOT NULL, name NOT NULL, item TEXT NOT NULL, hash INTEGER NOT NULL);
CREATE INDEX nodes_hash ON nodes(hash);
CREATE TABLE node_names(kind NOT NULL, name NOT NULL, PRIMARY KEY(kind, name)) WITHOUT ROWID;
CREATE TABLE lineage(run INTEGER PRIMARY KEY, links BLOB NOT NULL);
CREATE TABLE lineage_node(link INTEGER NOT NULL, run INTEGER NOT NULL, PRIMARY KEY(link, run)) WITHOUT ROWID;
CREATE TABLE stages(run INTEGER NOT NULL, key INTEGER NOT NULL, name TEXT NOT NULL, args_hash TEXT, commit_id TEXT,
                    dirty INTEGER, status TEXT, ended TEXT);
CREATE INDEX stages_key ON stages(name, args_hash);
"""

#: secondary indexes dropped during a cold build and created once at its end (``keys_name``,
#: looked up while rows go in, stays; ``nodes_hash`` is a staged table's meanwhile: ``rows.RunRows``)
_SECONDARY_INDEXES = ("runs_id", "runs_created", "params_kv", "metrics_kv", "stages_key", "nodes_hash")
#: a cold build of at least this many runs builds the indexes after the rows
_BULK_INDEX_MIN = 1000
#: runs decoded between two rounds of inserts
_INSERT_BATCH = 2000
#: pages a connection keeps in memory, in KiB: SQLite's default (2 MiB) holds a fifth of a
#: 10,000-run index, so a query and the summaries of its answer evict each other's pages
_CACHE_KIB = 16384
#: KiB of pages a cold build keeps (SQLite's default): its pages are written, not read again,
#: and its peak memory is issue 14's limit
_BUILD_CACHE_KIB = 2000


def _run_id_in(shard: str, name: str) -> bool:
    """A run directory's name: lowercase hex of even length, under its own shard."""
    return len(name) % 2 == 0 and name.startswith(shard) and len(shard) == 2 and _HEX.issuperset(name)


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
        db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
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
        db = self._db if self._db is not None else self.connection()
        return self._skipped(db)

    @staticmethod
    def _skipped(db: sqlite3.Connection) -> dict[str, str]:
        row = db.execute("SELECT value FROM meta WHERE key='skipped'").fetchone()
        try:
            value = json.loads(row[0]) if row and row[0] else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

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

    def _tree_changes(self, db: sqlite3.Connection, tip: str | None, old_shards: dict[str, str],
                      new_shards: dict[str, str]) -> tuple[list[int], list[tuple[str, str]], int]:
        """Format 3: the rids of the indexed runs gone or changed, and the ``(run id,
        directory tree)`` to (re)read, from the shards that changed; and their count."""
        odb = self.ledger.repo.odb
        gone: list[int] = []
        todo: list[tuple[str, str]] = []
        shards_read = 0
        for shard in sorted(set(new_shards) | set(old_shards)):
            if new_shards.get(shard) == old_shards.get(shard):
                continue
            shards_read += 1
            # decoded, not cached (read_tree's cache would hold every run's entry through a cold build)
            new_runs = {n: e.oid for n, e in decode_tree(odb.read_typed(new_shards[shard], "tree"), odb.fmt).items()
                        if _run_id_in(shard, n)} if shard in new_shards else {}
            old_runs = {run_id.hex(): (rid, tree.hex()) for rid, run_id, tree in _shard_rows(db, shard)}
            gone.extend(rid for run_id, (rid, tree) in old_runs.items() if new_runs.get(run_id) != tree)
            todo.extend((run_id, tree) for run_id, tree in sorted(new_runs.items())
                        if old_runs.get(run_id, (0, None))[1] != tree)
        return gone, todo, shards_read

    def _log_changes(self, db: sqlite3.Connection, old_tip: str | None,
                     tip: str) -> tuple[list[int], list[tuple[str, str]], bool, Any]:
        """Format 4: the rids of the indexed runs gone or changed, and the ``(run id, run
        blob)`` to (re)read: from the commits above the indexed tip when the log grew from
        it, else from every run (a first build, an upgrade, a history rewritten); whether
        it was every run; and what stores the fold cache it made, when that is left to
        the caller (``Ledger.run_blobs_apart``), or None."""
        changed = self.ledger.run_blobs_since(old_tip, tip) if old_tip else None
        every = changed is None
        cold = every and old_tip is None  # nothing indexed to compare with
        store_fold = None
        if cold:
            changed, store_fold = self.ledger.run_blobs_apart(tip)
        elif every:
            changed = [(r, e.oid) for r, e in self.ledger.run_entries(tip)]
        gone: list[int] = []
        todo: list[tuple[str, str]] = []
        for run_id, oid in changed:
            row = None if cold else db.execute("SELECT rid, tree FROM runs WHERE id = ?", (id_bytes(run_id),)).fetchone()
            if row is not None and row[1].hex() == oid:
                continue
            if row is not None:
                gone.append(row[0])
            todo.append((run_id, oid))
        if every and old_tip is not None:  # runs no longer in the ledger
            kept = {run_id for run_id, _ in self.ledger.run_entries(tip)}
            gone.extend(rid for rid, run_id in db.execute("SELECT rid, id FROM runs") if run_id.hex() not in kept)
        return gone, todo, every, store_fold

    def _apply_tip(self, db: sqlite3.Connection, tip: str | None) -> None:
        old_shards = {name: oid.hex() for name, oid in db.execute("SELECT name, oid FROM shards")}
        row = db.execute("SELECT value FROM meta WHERE key='tip'").fetchone()
        old_tip = (row[0] or None) if row else None
        log = tip is not None and self.ledger.is_log(tip)  # format 4: each run one run blob, its id known
        if log:
            new_shards: dict[str, str] = {}
            gone, todo, every, store_fold = self._log_changes(db, old_tip, tip)
            shards_read = 0
            fresh = every and old_tip is None and len(todo) >= _BULK_INDEX_MIN
            re_read = {run_id for run_id, _ in todo}
            kept_skipped = {run_id: why for run_id, why in self._skipped(db).items() if not every
                            and run_id not in re_read}
        else:
            store_fold = None
            new_shards = {name: e.oid for name, e in self.ledger.list_dir("runs", tip).items() if e.is_tree}
            gone, todo, shards_read = self._tree_changes(db, tip, old_shards, new_shards)
            fresh = not old_shards and len(todo) >= _BULK_INDEX_MIN
            kept_skipped = {run_id: why for run_id, why in self._skipped(db).items()
                            if new_shards.get(run_id[:2]) == old_shards.get(run_id[:2])}  # shards not re-read keep theirs
        if fresh:  # a cold build: fill the tables, then build their indexes once
            for name in _SECONDARY_INDEXES:
                db.execute(f"DROP INDEX IF EXISTS {name}")
            # appended pages are not read again: SQLite's default cache, not the queries' one
            db.execute(f"PRAGMA cache_size=-{_BUILD_CACHE_KIB}")
        _delete_runs(db, gone)
        from .reading import in_pack_order, read_run_blobs
        from .rows import RunRows

        child = _start_child() if fresh else None  # its interpreter starts while the trees are read
        try:
            todo, blob_ids = in_pack_order(self.ledger.repo, todo)  # as git reads them fastest
        except BaseException:
            _stop_child(child)
            raise

        # the fold cache this build's fold made is stored beside the reading (~1.5 s at 100,000 runs)
        storing = _Beside(store_fold)
        try:
            skipped = kept_skipped
            runs_read = len(todo)
            if fresh and (blob_ids or log) and child is not None \
                    and _rows_from_child(db, self.ledger.repo, todo, blob_ids, child, log=log):
                todo = []  # every run is in: none to read below
            elif not blob_ids:
                _stop_child(child)
            with RunRows(db, batch=_INSERT_BATCH, background=fresh and bool(todo), stage=fresh and bool(todo)) as rows:
                done = 0
                try:
                    for blobs in read_run_blobs(self.ledger.repo, todo, blob_ids=blob_ids):
                        rows.add(blobs)
                        done += 1
                except FormatVersionError:
                    raise  # a newer release wrote it: upgrading is the answer, not leaving runs out
                except DataError:  # one unreadable run: the rest one by one, that one left out
                    from .reading import read_one

                    for run_id, tree in todo[done:]:
                        try:
                            rows.add(read_one(self.ledger.repo, run_id, tree))
                        except FormatVersionError:
                            raise
                        except DataError as exc:
                            skipped[run_id] = str(exc)
        finally:
            storing.join()
        db.execute("INSERT OR REPLACE INTO meta VALUES ('skipped', ?)", (json.dumps(skipped, sort_keys=True),))
        if fresh:
            for statement in _SCHEMA.split(";"):
                name = statement.split(" ON ", 1)[0].split()[-1] if " INDEX " in statement else ""
                if name in _SECONDARY_INDEXES:
                    db.execute(statement)
            db.execute(f"INSERT OR IGNORE INTO node_names {NODE_NAMES_SQL.format(nodes='nodes')}")  # noqa: S608
            db.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        db.executemany("DELETE FROM shards WHERE name=?", [(s,) for s in old_shards if s not in new_shards])
        db.executemany("INSERT OR REPLACE INTO shards VALUES (?, ?)",
                       [(s, id_bytes(oid)) for s, oid in new_shards.items() if old_shards.get(s) != oid])
        db.execute("INSERT OR REPLACE INTO meta VALUES ('tip', ?)", (tip or "",))
        self.last_refresh = {"runs_read": runs_read, "shards_read": shards_read}


class _Beside:
    """A call run in a thread of its own (``join`` waits for it). A fold cache that
    could not be stored is left empty: it is only a cache, folded again when asked."""

    def __init__(self, call: Callable[[], None] | None) -> None:
        self.thread = None
        if call is not None:
            self.thread = threading.Thread(target=self._run, args=(call,), name="prov-fold-cache", daemon=True)
            self.thread.start()

    @staticmethod
    def _run(call: Callable[[], None]) -> None:
        import sqlite3

        with contextlib.suppress(sqlite3.Error, OSError):
            call()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()



def _start_child() -> Any:
    """A cold build's child process (``build_process.start_child``), started ahead; None
    when builds are in-process (``CHILD``). One that cannot start is tried again, and
    reported, by ``_rows_from_child``."""
    from .build_process import CHILD, BuildChildError, start_child

    if not CHILD:
        return None
    try:
        return start_child()
    except BuildChildError:
        return False


def _stop_child(child: Any) -> None:
    if child:
        from .build_process import stop_child

        stop_child(child)


def _rows_from_child(db: sqlite3.Connection, repo: Any, todo: list[tuple[str, str]], blob_ids: bytes,
                     child: Any = None, *, log: bool = False) -> bool:
    """A cold build's runs read and decoded by a child process (``build_process``;
    ``child``: ``_start_child``'s), their rows inserted here; False, with nothing of it
    kept, when the child did not deliver every run (the caller reads them in-process: the
    same rows, or the same errors)."""
    from .build_process import BuildChildError, child_batches
    from .rows import RunRows

    db.execute("SAVEPOINT cold_build")
    try:
        with RunRows(db, batch=_INSERT_BATCH, stage=True, node_ids=True) as rows, contextlib.closing(child_batches(
                repo.common_dir or repo.git_dir, todo, blob_ids, rows.start(), _INSERT_BATCH,
                child or None, log)) as batches:
            for tables in batches:  # an insert that fails ends the child (closing)
                rows.insert(tables)
    except BuildChildError:
        db.execute("ROLLBACK TO cold_build")
        db.execute("RELEASE cold_build")
        return False
    finally:
        if child and child.returncode is None:  # never asked (``child_batches`` waits for it)
            _stop_child(child)
    db.execute("RELEASE cold_build")
    return True


#: ids per ``IN (...)``
_CHUNK = 500


def _shard_rows(db: sqlite3.Connection, shard: str) -> list[tuple[int, bytes, bytes]]:
    """``(rid, id, tree)`` of the indexed runs of ``shard`` (their ids start with it)."""
    if len(shard) != 2 or not _HEX.issuperset(shard):
        return []
    low = bytes.fromhex(shard)
    high = bytes([low[0] + 1]) if low[0] < 255 else b"\xff" * 128
    return db.execute("SELECT rid, id, tree FROM runs WHERE id >= ? AND id < ?", (low, high)).fetchall()


def _delete_runs(db: sqlite3.Connection, rids: list[int]) -> None:
    """Remove runs and their rows; keys and lineage nodes keep count of their users."""
    for start in range(0, len(rids), _CHUNK):
        chunk = rids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for table in KEYED_TABLES:
            db.executemany("UPDATE keys SET uses = uses - ? WHERE kid = ?", [(n, kid) for kid, n in db.execute(
                f"SELECT key, count(*) FROM {table} WHERE run IN ({marks}) GROUP BY key", chunk)])  # noqa: S608
        links = [(link, run) for run, data in db.execute(f"SELECT run, links FROM lineage WHERE run IN ({marks})", chunk)  # noqa: S608
                 for link in unpack_links(data)]
        db.executemany("DELETE FROM lineage_node WHERE link = ? AND run = ?", links)
        nodes = [(nid, 2 * nid, 2 * nid + 1) for nid in sorted({link >> 1 for link, _ in links})]
        for table in ("runs", *RUN_TABLES):
            column = "rid" if table == "runs" else "run"
            db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)  # noqa: S608 (fixed names)
        db.executemany("DELETE FROM nodes WHERE nid = ? AND NOT EXISTS (SELECT 1 FROM lineage_node WHERE link IN (?, ?))",
                       nodes)


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
