"""Bringing the index to the ledger's tip: the runs changed since the tip it reflects
(format 3: the shards whose tree changed; format 4: the log's commits above it), read
and put in; a cold build, when it holds none, fills the tables through a child process
(``build_process``) and builds their indexes once at the end."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DataError, FormatVersionError
from ..store.objects import decode_tree
from .encoding import _HEX, KEYED_TABLES, NODE_NAMES_SQL, RUN_TABLES, id_bytes, unpack_links
from .tables import (
    BUILD_CACHE_KIB,
    CACHE_KIB,
    SECONDARY_INDEXES,
    create_secondary_indexes,
    skipped_runs,
)

if TYPE_CHECKING:
    import sqlite3

    from ..store.ledger import Ledger

__all__ = ["BULK_INDEX_MIN", "INSERT_BATCH", "apply_tip", "rows_from_child", "run_id_in"]

#: a cold build of at least this many runs builds the indexes after the rows
BULK_INDEX_MIN = 1000
#: runs decoded between two rounds of inserts
INSERT_BATCH = 2000


def run_id_in(shard: str, name: str) -> bool:
    """A run directory's name: lowercase hex of even length, under its own shard."""
    return len(name) % 2 == 0 and name.startswith(shard) and len(shard) == 2 and _HEX.issuperset(name)


def apply_tip(ledger: Ledger, db: sqlite3.Connection, tip: str | None) -> dict[str, int]:
    """Bring the index in ``db`` (inside a transaction) from the tip it reflects to
    ``tip``: the runs changed since re-read, a cold build when it holds none; how many
    runs and shards were read."""
    old_shards = {name: oid.hex() for name, oid in db.execute("SELECT name, oid FROM shards")}
    row = db.execute("SELECT value FROM meta WHERE key='tip'").fetchone()
    old_tip = (row[0] or None) if row else None
    log = tip is not None and ledger.is_log(tip)  # format 4: each run one run blob, its id known
    if log:
        new_shards: dict[str, str] = {}
        gone, todo, every, store_fold = _log_changes(ledger, db, old_tip, tip)
        shards_read = 0
        fresh = every and old_tip is None and len(todo) >= BULK_INDEX_MIN
        re_read = {run_id for run_id, _ in todo}
        kept_skipped = {run_id: why for run_id, why in skipped_runs(db).items() if not every
                        and run_id not in re_read}
    else:
        store_fold = None
        new_shards = {name: e.oid for name, e in ledger.list_dir("runs", tip).items() if e.is_tree}
        gone, todo, shards_read = _tree_changes(ledger, db, old_shards, new_shards)
        fresh = not old_shards and len(todo) >= BULK_INDEX_MIN
        kept_skipped = {run_id: why for run_id, why in skipped_runs(db).items()
                        if new_shards.get(run_id[:2]) == old_shards.get(run_id[:2])}  # shards not re-read keep theirs
    if fresh:  # a cold build: fill the tables, then build their indexes once
        for name in SECONDARY_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {name}")
        # appended pages are not read again: SQLite's default cache, not the queries' one
        db.execute(f"PRAGMA cache_size=-{BUILD_CACHE_KIB}")
    _delete_runs(db, gone)
    from .reading import in_pack_order, read_run_blobs
    from .rows import RunRows

    child = _start_child() if fresh else None  # its interpreter starts while the trees are read
    try:
        todo, blob_ids = in_pack_order(ledger.repo, todo)  # as git reads them fastest
    except BaseException:
        _stop_child(child)
        raise

    # the fold cache this build's fold made is stored beside the reading (~1.5 s at 100,000 runs)
    storing = _Beside(store_fold)
    try:
        skipped = kept_skipped
        runs_read = len(todo)
        if fresh and (blob_ids or log) and child is not None \
                and rows_from_child(db, ledger.repo, todo, blob_ids, child, log=log):
            todo = []  # every run is in: none to read below
        elif not blob_ids:
            _stop_child(child)
        with RunRows(db, batch=INSERT_BATCH, background=fresh and bool(todo), stage=fresh and bool(todo)) as rows:
            done = 0
            try:
                for blobs in read_run_blobs(ledger.repo, todo, blob_ids=blob_ids):
                    rows.add(blobs)
                    done += 1
            except FormatVersionError:
                raise  # a newer release wrote it: upgrading is the answer, not leaving runs out
            except DataError:  # one unreadable run: the rest one by one, that one left out
                from .reading import read_one

                for run_id, tree in todo[done:]:
                    try:
                        rows.add(read_one(ledger.repo, run_id, tree))
                    except FormatVersionError:
                        raise
                    except DataError as exc:
                        skipped[run_id] = str(exc)
    finally:
        storing.join()
    db.execute("INSERT OR REPLACE INTO meta VALUES ('skipped', ?)", (json.dumps(skipped, sort_keys=True),))
    if fresh:
        create_secondary_indexes(db)
        db.execute(f"INSERT OR IGNORE INTO node_names {NODE_NAMES_SQL.format(nodes='nodes')}")  # noqa: S608
        db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.executemany("DELETE FROM shards WHERE name=?", [(s,) for s in old_shards if s not in new_shards])
    db.executemany("INSERT OR REPLACE INTO shards VALUES (?, ?)",
                   [(s, id_bytes(oid)) for s, oid in new_shards.items() if old_shards.get(s) != oid])
    db.execute("INSERT OR REPLACE INTO meta VALUES ('tip', ?)", (tip or "",))
    return {"runs_read": runs_read, "shards_read": shards_read}


def _tree_changes(ledger: Ledger, db: sqlite3.Connection, old_shards: dict[str, str],
                  new_shards: dict[str, str]) -> tuple[list[int], list[tuple[str, str]], int]:
    """Format 3: the rids of the indexed runs gone or changed, and the ``(run id,
    directory tree)`` to (re)read, from the shards that changed; and their count."""
    odb = ledger.repo.odb
    gone: list[int] = []
    todo: list[tuple[str, str]] = []
    shards_read = 0
    for shard in sorted(set(new_shards) | set(old_shards)):
        if new_shards.get(shard) == old_shards.get(shard):
            continue
        shards_read += 1
        # decoded, not cached (read_tree's cache would hold every run's entry through a cold build)
        new_runs = {n: e.oid for n, e in decode_tree(odb.read_typed(new_shards[shard], "tree"), odb.fmt).items()
                    if run_id_in(shard, n)} if shard in new_shards else {}
        old_runs = {run_id.hex(): (rid, tree.hex()) for rid, run_id, tree in _shard_rows(db, shard)}
        gone.extend(rid for run_id, (rid, tree) in old_runs.items() if new_runs.get(run_id) != tree)
        todo.extend((run_id, tree) for run_id, tree in sorted(new_runs.items())
                    if old_runs.get(run_id, (0, None))[1] != tree)
    return gone, todo, shards_read

def _log_changes(ledger: Ledger, db: sqlite3.Connection, old_tip: str | None,
                 tip: str) -> tuple[list[int], list[tuple[str, str]], bool, Any]:
    """Format 4: the rids of the indexed runs gone or changed, and the ``(run id, run
    blob)`` to (re)read: from the commits above the indexed tip when the log grew from
    it, else from every run (a first build, an upgrade, a history rewritten); whether
    it was every run; and what stores the fold cache it made, when that is left to
    the caller (``Ledger.run_blobs_apart``), or None."""
    changed = ledger.run_blobs_since(old_tip, tip) if old_tip else None
    every = changed is None
    cold = every and old_tip is None  # nothing indexed to compare with
    store_fold = None
    if cold:
        changed, store_fold = ledger.run_blobs_apart(tip)
    elif every:
        changed = [(r, e.oid) for r, e in ledger.run_entries(tip)]
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
        kept = {run_id for run_id, _ in ledger.run_entries(tip)}
        gone.extend(rid for rid, run_id in db.execute("SELECT rid, id FROM runs") if run_id.hex() not in kept)
    return gone, todo, every, store_fold


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
    reported, by ``rows_from_child``."""
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


def rows_from_child(db: sqlite3.Connection, repo: Any, todo: list[tuple[str, str]], blob_ids: bytes,
                     child: Any = None, *, log: bool = False) -> bool:
    """A cold build's runs read and decoded by a child process (``build_process``;
    ``child``: ``_start_child``'s), their rows inserted here; False, with nothing of it
    kept, when the child did not deliver every run (the caller reads them in-process: the
    same rows, or the same errors)."""
    from .build_process import BuildChildError, child_batches
    from .rows import RunRows

    db.execute("SAVEPOINT cold_build")
    try:
        with RunRows(db, batch=INSERT_BATCH, stage=True, node_ids=True) as rows, contextlib.closing(child_batches(
                repo.common_dir or repo.git_dir, todo, blob_ids, rows.start(), INSERT_BATCH,
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
