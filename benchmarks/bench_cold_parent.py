"""The index-owning process's share of a cold build, replayed without the child running.

    PYTHONPATH=<src> python benchmarks/bench_cold_parent.py <copy of a ledger> [--repeat 3]

A cold build (issue 14) has three processes on two cores: the parent lists the runs and
inserts the rows, the decoding child makes them, a reader forked from it inflates the
blobs. Timed whole, at the load of a shared machine, the parent's part is lost in the
noise of the other two. Here the child's frames for every run are recorded once (through
``build_process.child_batches``, as a build asks for them), then the parent's work on
them is done ``--repeat`` times into a fresh index file with nothing else of the build
running: decoding each frame and inserting it (``RunRows.insert``), copying the staged
tables (``RunRows`` leaving its block), building the secondary indexes. Prints the
process CPU seconds of each part, the least of the repeats, and the file's size. Uses
the private parts of ``index.store`` and ``index.refresh`` a build uses: a probe of ``<src>``, not an API.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import msgspec

import gitprov
from gitprov.index import build_process, reading, refresh
from gitprov.index import store as index_store
from gitprov.index import tables as index_tables
from gitprov.index.encoding import NODE_NAMES_SQL
from gitprov.index.rows import RunRows
from gitprov.store.objects import decode_tree


def _fresh(ledger, path: str):
    for suffix in ("", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    index = index_store.RunIndex(ledger, path)
    db = index._open()
    index._ensure_schema(db)
    return db


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ledger", help="a repository with a ledger (a copy: its index is not touched)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=None, help="scratch index file (default: beside the ledger's)")
    args = p.parse_args()
    ledger = gitprov.Repository(args.ledger).index().ledger
    odb = ledger.repo.odb
    path = args.out or os.path.join(ledger.repo.git_dir, "prov", "bench-cold-parent.sqlite")
    todo = []
    for shard, entry in sorted(ledger.list_dir("runs", None).items()):
        if entry.is_tree:
            todo.extend(sorted((n, e.oid) for n, e in decode_tree(odb.read_typed(entry.oid, "tree"), odb.fmt).items()
                               if refresh.run_id_in(shard, n)))
    todo, blob_ids = reading.in_pack_order(ledger.repo, todo)
    db = _fresh(ledger, path)
    with RunRows(db, batch=refresh.INSERT_BATCH, stage=True, node_ids=True) as rows:
        start = rows.start()
    db.close()
    frames: list[bytes] = []
    decoder = msgspec.msgpack.Decoder

    class Recording:  # child_batches' decoder, keeping each frame as it came
        def __init__(self, *a, **k):
            self.real = decoder(*a, **k)

        def decode(self, data: bytes):
            frames.append(data)
            return self.real.decode(data)

    msgspec.msgpack.Decoder = Recording
    try:
        for _ in build_process.child_batches(ledger.repo.common_dir or ledger.repo.git_dir, todo, blob_ids, start,
                                             refresh.INSERT_BATCH):
            pass
    finally:
        msgspec.msgpack.Decoder = decoder
    decode = decoder(dict[str, list[tuple] | int]).decode
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        db = _fresh(ledger, path)
        db.execute("BEGIN IMMEDIATE")
        for name in index_tables.SECONDARY_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {name}")
        db.execute(f"PRAGMA cache_size=-{index_tables.BUILD_CACHE_KIB}")
        t0 = time.process_time()
        with RunRows(db, batch=refresh.INSERT_BATCH, stage=True, node_ids=True) as rows:
            for data in frames:
                tables = decode(data)
                if "done" in tables:
                    break
                tables.pop("count")
                rows.insert(tables)
            t1 = time.process_time()
        t2 = time.process_time()
        index_tables.create_secondary_indexes(db)
        db.execute(f"INSERT OR IGNORE INTO node_names {NODE_NAMES_SQL.format(nodes='nodes')}")  # noqa: S608
        t3 = time.process_time()
        db.execute("COMMIT")
        db.close()
        for part, seconds in (("insert", t1 - t0), ("copy", t2 - t1), ("indexes", t3 - t2), ("all", t3 - t0)):
            best[part] = min(best.get(part, float("inf")), seconds)
    print(json.dumps({**{k: round(v, 3) for k, v in best.items()}, "runs": len(todo),
                      "index_bytes": os.path.getsize(path)}))
    os.remove(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
