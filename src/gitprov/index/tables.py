"""The index's tables (``SCHEMA``), how much of them SQLite keeps in memory, and the
runs its ``meta`` table says were left out."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BUILD_CACHE_KIB", "CACHE_KIB", "SCHEMA", "SECONDARY_INDEXES", "create_secondary_indexes", "skipped_runs"]

# Lean by design (docs/design/query-index.md): a run's ids are stored once, in ``runs``,
# as bytes; every other table refers to the run by its integer ``rid``, to keys, lineage
# nodes, commits and experiments by small integers too (a status is one: ``encoding``); a
# run's lineage is one row (``encoding.pack_links``) and a row a link in ``lineage_node``, a node is found by
# the hash of its kind and name (``encoding.node_hash``); only the indexes a query shape needs exist.
SCHEMA = """
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
SECONDARY_INDEXES = ("runs_id", "runs_created", "params_kv", "metrics_kv", "stages_key", "nodes_hash")
#: pages a connection keeps in memory, in KiB: SQLite's default (2 MiB) holds a fifth of a
#: 10,000-run index, so a query and the summaries of its answer evict each other's pages
CACHE_KIB = 16384
#: KiB of pages a cold build keeps (SQLite's default): its pages are written, not read again,
#: and its peak memory is issue 14's limit
BUILD_CACHE_KIB = 2000


def create_secondary_indexes(db: Any) -> None:
    """The indexes a cold build dropped (``SECONDARY_INDEXES``), made once its rows are in."""
    for statement in SCHEMA.split(";"):
        name = statement.split(" ON ", 1)[0].split()[-1] if " INDEX " in statement else ""
        if name in SECONDARY_INDEXES:
            db.execute(statement)


def skipped_runs(db: Any) -> dict[str, str]:
    """``{run id: why}`` of the runs left out of the index (``meta``'s ``skipped``)."""
    row = db.execute("SELECT value FROM meta WHERE key='skipped'").fetchone()
    try:
        value = json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
