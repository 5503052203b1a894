"""The SQLite run index: built on demand, updated by tree diff, rebuilt when lost."""

from __future__ import annotations

import os
import sqlite3

import pytest

import gitprov
import gitprov.lineage as lineage
from gitprov.errors import UnknownFieldError
from gitprov.index import INDEX_FILE
from gitprov.index.store import INDEX_VERSION
from tests.conftest import run_git


def start(repo, name, **kw):
    return repo.start_run(name=name, environment=False, **kw)


@pytest.fixture
def prov(repo):
    gitprov.init(repo.path, hooks=False)
    return gitprov.Repository(repo.path)


def index_path(repo) -> str:
    return os.path.join(repo.git.prov_dir(), INDEX_FILE)


def test_index_is_built_on_demand_and_keyed_by_the_ledger_tip(prov):
    with start(prov, "a", params={"lr": 0.1}) as run:
        run.log_metric("acc", 0.5)
    assert not os.path.exists(index_path(prov))
    assert [r.name for r in prov.find_runs({"params.lr": 0.1})] == ["a"]
    assert os.path.exists(index_path(prov))
    assert prov.index().indexed_tip() == prov.ledger.tip()
    with sqlite3.connect(index_path(prov)) as db:
        assert db.execute("SELECT name, status FROM runs").fetchall() == [("a", 1)]  # encoding.status_value
        assert db.execute("SELECT k.name, m.value FROM metrics m JOIN keys k ON k.kid = m.key").fetchall() == [("acc", 0.5)]


def test_only_changed_runs_are_re_read(prov):
    for i in range(4):
        with start(prov, f"r{i}"):
            pass
    assert len(prov.find_runs()) == 4
    prov.find_runs()
    assert prov.index().last_refresh["runs_read"] == 0
    with start(prov, "new") as new:
        pass
    assert len(prov.find_runs()) == 5
    assert prov.index().last_refresh["runs_read"] == 1
    stored = prov.get_run(new.id)
    stored.log_tags({"best": "yes"})
    assert [r.name for r in prov.find_runs({"tags.best": "yes"})] == ["new"]
    assert prov.index().last_refresh["runs_read"] == 1


def test_stale_index_refreshed_across_processes_and_handles(prov):
    with start(prov, "a"):
        pass
    assert len(prov.find_runs()) == 1
    other = gitprov.Repository(prov.work_tree)  # another writer
    with start(other, "b") as b:
        pass
    lineage.of(other.get_run(b.id)).with_input_model("bert", "v3").register()
    assert [r.name for r in prov.find_runs({"inputs.models.bert": "v3"})] == ["b"]


def test_ledger_moving_backwards_drops_runs(prov):
    with start(prov, "a"):
        pass
    before = prov.ledger.tip()
    with start(prov, "b"):
        pass
    assert len(prov.find_runs()) == 2
    run_git(prov.work_tree, "update-ref", "refs/prov/ledger", before)  # e.g. a reset or a forced fetch
    assert [r.name for r in prov.find_runs()] == ["a"]


@pytest.mark.parametrize("damage", ["delete", "garbage", "old-version", "truncate"])
def test_missing_or_corrupt_index_is_rebuilt(prov, damage):
    with start(prov, "a", params={"lr": 1}):
        pass
    prov.find_runs()
    prov.index().close()
    path = index_path(prov)
    if damage == "delete":
        os.remove(path)
    elif damage == "garbage":
        with open(path, "wb") as f:
            f.write(b"this is not a database" * 100)
    elif damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(1000)
    else:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value='0' WHERE key='version'")
    fresh = gitprov.Repository(prov.work_tree)
    assert [r.name for r in fresh.find_runs({"params.lr": 1})] == ["a"]
    assert fresh.index().indexed_tip() == fresh.ledger.tip()


def test_import_gitprov_does_not_load_sqlite():
    import subprocess
    import sys

    code = "import sys, gitprov, gitprov.api, gitprov.lineage; print('sqlite3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_processes_building_the_index_at_once_agree(prov):
    import subprocess
    import sys

    for i in range(3):
        with start(prov, f"r{i}", params={"i": i}):
            pass
    code = ("import gitprov, sys; r = gitprov.Repository(sys.argv[1]); "
            "print(len(r.find_runs({'params.i': {'$gte': 0}})))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(prov.work_tree)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [out.strip() for out, _ in results] == ["3"] * 4, results


def test_dataset_versions_are_indexed_as_lineage(prov, tmp_path):
    (tmp_path / "train.csv").write_text("x\n1\n")
    with start(prov, "a") as run:
        version = run.log_dataset_version("train", str(tmp_path / "train.csv"))
        run.log_dataset_version("output/model.bin", "sha256:feed")
    assert [r.name for r in prov.find_runs({"inputs.datasets.train": version.digest})] == ["a"]
    assert [r.name for r in prov.find_runs({"outputs.datasets": "output/model.bin"})] == ["a"]
    graph = prov.lineage(f"dataset:train@{version.digest}", "downstream")
    assert f"run:{run.id}" in graph.nodes and "dataset:output/model.bin@sha256:feed" in graph.nodes


def test_read_only_repository_gets_an_in_memory_index(prov, monkeypatch):
    with start(prov, "a"):
        pass
    prov_dir = prov.git.prov_dir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == prov_dir else real_access(p, mode))
    fresh = gitprov.Repository(prov.work_tree)
    assert [r.name for r in fresh.find_runs()] == ["a"] and fresh.index().path == ":memory:"
    assert not os.path.exists(index_path(fresh))


#: the tables of index format 4 (the release before the lean layout), as it made them
V4_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE shards(name TEXT PRIMARY KEY, oid TEXT NOT NULL);
CREATE TABLE runs(id TEXT PRIMARY KEY, tree TEXT NOT NULL, shard TEXT NOT NULL, name TEXT, experiment TEXT,
                  status TEXT, created TEXT, ended TEXT, updated TEXT, commit_id TEXT, parent TEXT,
                  deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE params(run TEXT NOT NULL, key TEXT NOT NULL, value, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE metrics(run TEXT NOT NULL, key TEXT NOT NULL, value REAL, step INTEGER, timestamp INTEGER,
                     PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE tags(run TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE attributes(run TEXT NOT NULL, key TEXT NOT NULL, value, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE lineage(run TEXT NOT NULL, direction TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
                     item TEXT NOT NULL);
CREATE TABLE stages(run TEXT NOT NULL, name TEXT NOT NULL, args_hash TEXT, commit_id TEXT, dirty INTEGER,
                    status TEXT, ended TEXT, record TEXT NOT NULL);
"""


def test_an_index_of_the_previous_format_is_rebuilt(prov):
    with start(prov, "a", params={"lr": 1}) as run:
        run.log_metric("acc", 0.5)
    os.makedirs(os.path.dirname(index_path(prov)), exist_ok=True)
    with sqlite3.connect(index_path(prov)) as db:  # what format 4 left for this very ledger tip
        db.executescript(V4_SCHEMA)
        db.execute("INSERT INTO meta VALUES ('version', '4'), ('tip', ?)", (prov.ledger.tip(),))
        db.execute("INSERT INTO runs(id, tree, shard, name) VALUES (?, 'x', ?, 'stale')", (run.id, run.id[:2]))
    db.close()
    fresh = gitprov.Repository(prov.work_tree)
    assert [(r.id, r.name) for r in fresh.find_runs({"params.lr": 1, "metrics.acc": 0.5})] == [(run.id, "a")]
    with sqlite3.connect(index_path(prov)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] == INDEX_VERSION != "4"
        assert db.execute("SELECT id, name FROM runs").fetchall() == [(bytes.fromhex(run.id), "a")]
    db.close()


#: the tables of index format 9 (the release before this layout), as it made them
V9_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE shards(name TEXT PRIMARY KEY, oid BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE runs(rid INTEGER PRIMARY KEY, id BLOB NOT NULL, tree BLOB NOT NULL, name TEXT, experiment TEXT,
                  status TEXT, created, ended, updated, commit_id INTEGER, parent,
                  deleted INTEGER NOT NULL DEFAULT 0, user TEXT, raw INTEGER);
CREATE TABLE commits(cid INTEGER PRIMARY KEY, oid NOT NULL);
CREATE TABLE keys(kid INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, uses INTEGER NOT NULL);
CREATE TABLE params(run INTEGER NOT NULL, key INTEGER NOT NULL, value TEXT NOT NULL, num, PRIMARY KEY(run, key))
                     WITHOUT ROWID;
CREATE TABLE metrics(run INTEGER NOT NULL, key INTEGER NOT NULL, value REAL, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE tags(run INTEGER NOT NULL, key INTEGER NOT NULL, value TEXT, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE attributes(run INTEGER NOT NULL, key INTEGER NOT NULL, value, PRIMARY KEY(run, key)) WITHOUT ROWID;
CREATE TABLE nodes(nid INTEGER PRIMARY KEY, kind NOT NULL, name NOT NULL, item TEXT NOT NULL);
CREATE UNIQUE INDEX nodes_key ON nodes(kind, name, item);
CREATE TABLE lineage(run INTEGER NOT NULL, direction INTEGER NOT NULL, node INTEGER NOT NULL,
                     PRIMARY KEY(run, direction, node)) WITHOUT ROWID;
CREATE INDEX lineage_node ON lineage(node, direction);
CREATE TABLE stages(run INTEGER NOT NULL, key INTEGER NOT NULL, name TEXT NOT NULL, args_hash TEXT, commit_id TEXT,
                    dirty INTEGER, status TEXT, ended TEXT);
"""


def test_an_index_of_format_9_is_rebuilt(prov):
    with start(prov, "a", params={"lr": 1}) as run:
        run.log_metric("acc", 0.5)
    with start(prov, "b") as other:
        lineage.of(other).with_input_artifact(run.id, "model.pt").with_input_model("bert", "v1").register()
    os.makedirs(os.path.dirname(index_path(prov)), exist_ok=True)
    with sqlite3.connect(index_path(prov)) as db:  # what format 9 left for this very ledger tip, one run stale
        db.executescript(V9_SCHEMA)
        db.execute("INSERT INTO meta VALUES ('version', '9'), ('tip', ?)", (prov.ledger.tip(),))
        db.execute("INSERT INTO runs(rid, id, tree, name, experiment, status) VALUES (1, ?, x'00', 'stale', '', "
                   "'finished')", (bytes.fromhex(run.id),))
        db.execute("INSERT INTO nodes VALUES (1, 1, 'bert', 'v1')")
        db.execute("INSERT INTO lineage VALUES (1, 0, 1)")
    db.close()
    fresh = gitprov.Repository(prov.work_tree)
    assert [(r.name, r.status) for r in fresh.find_runs({"params.lr": 1, "metrics.acc": 0.5})] == [("a", "finished")]
    assert [r.name for r in fresh.find_runs({"inputs.models.bert": "v1"})] == ["b"]
    assert "model:bert@v1" in fresh.lineage(f"run:{other.id}", "upstream").nodes
    with sqlite3.connect(index_path(prov)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] == INDEX_VERSION != "9"
        assert db.execute("SELECT count(*) FROM lineage_node").fetchone()[0] == 2  # b consumed bert and a's model.pt
    db.close()


def test_a_run_id_is_stored_once(prov):
    with start(prov, "a", params={"p": 1}, tags={"t": "x"}) as run:
        run.log_metrics({"m": 1.0, "n": 2.0})
    with start(prov, "b") as other:
        lineage.of(other).with_input_artifact(run.id, "model.pt").register()
    prov.find_runs()
    prov.index().close()
    with open(index_path(prov), "rb") as f:
        data = f.read()
    assert run.id.encode() not in data  # never as text
    # runs row and runs_id, the artifact node 'b' consumed (``nodes_hash`` holds its hash): every other table says a number
    assert data.count(bytes.fromhex(run.id)) == 3


@pytest.mark.format3  # entries in format 3's shard trees (a log refuses them: tests/store/test_ledger_log.py)
def test_shard_entries_that_are_not_run_ids_are_not_indexed(prov):
    from gitprov.api import LEDGER_FORMAT

    with start(prov, "real"):
        pass
    prov.ledger.apply({"runs/ab/not-a-run/record": b"{}", "runs/ab/cd" + "0" * 38 + "/record": b"{}",
                       "runs/zz/zz00/record": b"{}"}, "test: foreign entries", LEDGER_FORMAT)
    assert [r.name for r in prov.find_runs()] == ["real"]
    assert [r.name for r in prov.iter_runs()] == ["real"]


def test_keys_and_lineage_nodes_go_with_the_last_run_that_had_them(prov):
    with start(prov, "base", params={"common": 1}):
        pass
    before = prov.ledger.tip()
    with start(prov, "extra", params={"common": 2, "rare": 3}) as extra:
        extra.log_metric("only_here", 1.0)
    lineage.of(prov.get_run(extra.id)).with_input_model("bert", "v1").register()
    assert [r.name for r in prov.find_runs({"params.rare": 3, "inputs.models.bert": "v1"})] == ["extra"]
    assert "model:bert@v1" in prov.lineage("bert").nodes
    run_git(prov.work_tree, "update-ref", "refs/prov/ledger", before)
    with pytest.raises(UnknownFieldError, match="rare"):
        prov.find_runs({"params.rare": 3})
    with pytest.raises(UnknownFieldError, match="only_here"):
        prov.find_runs({"metrics.only_here": {"$gt": 0}})
    with pytest.raises(gitprov.UsageError, match="bert"):
        prov.lineage("bert")
    assert [r.name for r in prov.find_runs({"params.common": 1})] == ["base"]
    with sqlite3.connect(index_path(prov)) as db:
        assert [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("nodes", "lineage", "lineage_node")] \
            == [0, 0, 0]
    db.close()


def table_rows(path) -> dict[str, list]:
    with sqlite3.connect(path) as db:
        rows = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)  # noqa: S608
                for t in ("runs", "params", "metrics", "tags", "attributes", "keys", "nodes", "lineage", "lineage_node",
                          "stages")}
    db.close()
    return rows


def test_lean_decoding_makes_the_rows_the_full_model_makes(prov, tmp_path, monkeypatch):
    from gitprov.index import rows
    from gitprov.index.store import RunIndex

    with start(prov, "odd", params={"nested": {"a": [1, None]}, "flag": True, "big": 2**40, "none": None},
               tags={"t": "x"}) as run:
        run.log_metrics({"nan": float("nan"), "inf": float("inf"), "plain": 0.25})
        run.log_attributes({"prov.stage/fit": {"name": "fit", "args_hash": "sha256:ab", "status": "finished",
                                               "dirty": False, "commit": None, "ended": "2026-01-01T00:00:00Z"}})
        run.log_dataset_version("output/model.bin", "sha256:feed")
    with start(prov, "plain", params={"lr": 0.1}) as plain:
        plain.log_metric("acc", 0.5)
    lineage.of(prov.get_run(plain.id)).with_input_artifact(run.id, "model.pt").with_output_model("m", 1).register()
    lean = RunIndex(prov.ledger, str(tmp_path / "lean.sqlite"))
    lean.connection()
    lean.close()
    full_only = []  # every record and state through codec.decode into the full model
    monkeypatch.setattr(rows, "decode_part", lambda data, lean, model, what: full_only.append(model)
                        or rows.codec.decode(data, model, what))
    full = RunIndex(prov.ledger, str(tmp_path / "full.sqlite"))
    full.connection()
    full.close()
    assert len(full_only) == 4
    assert table_rows(tmp_path / "lean.sqlite") == table_rows(tmp_path / "full.sqlite")


def test_a_state_of_a_newer_format_is_refused_by_the_index_too(prov):
    import msgspec

    from gitprov.errors import FormatVersionError

    with start(prov, "a") as run:
        pass
    path = f"runs/{run.id[:2]}/{run.id}/state"
    state = msgspec.json.decode(prov.ledger.run_file(run.id, "state"))
    state["format_version"] = 99
    prov.ledger.apply({path: msgspec.json.encode(state)}, "test: a state from the future")
    with pytest.raises(FormatVersionError, match="format version 99"):
        prov.find_runs()


def test_a_failed_insert_in_a_cold_build_reaches_the_caller_and_leaves_no_half_index(prov, monkeypatch):
    import sqlite3 as sqlite

    from gitprov.errors import WriteError
    from gitprov.index import refresh, rows

    for i in range(5):
        with start(prov, f"r{i}", params={"i": i}):
            pass
    monkeypatch.setattr(refresh, "BULK_INDEX_MIN", 1)  # a cold build: rows go in from a thread of their own
    monkeypatch.setattr(refresh, "INSERT_BATCH", 2)
    real, calls = rows.RunRows._insert, []

    def failing(self, tables):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite.OperationalError("disk I/O error")
        real(self, tables)

    monkeypatch.setattr(rows.RunRows, "_insert", failing)
    with pytest.raises(WriteError, match="disk I/O error"):
        prov.find_runs()
    monkeypatch.setattr(rows.RunRows, "_insert", real)
    assert sorted(r.name for r in prov.find_runs({"params.i": {"$gte": 0}})) == [f"r{i}" for i in range(5)]
