"""The index's bulk reader: one ``git cat-file --batch`` for many runs gives the same
bytes as the object layer, falls back without git, and names missing objects."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from synthetic_ledger import build_ledger  # noqa: E402

import gitprov
from gitprov.errors import DataError, MissingObjectError
from gitprov.index import reading
from gitprov.index.encoding import unpack_links
from gitprov.index.reading import in_pack_order, read_run_blobs
from gitprov.runs.reading import all_run_entries
from tests.conftest import run_git, unpack_all


@pytest.fixture
def ledger_repo(repo):
    build_ledger(str(repo.path), 40, seed=3, series_fraction=0.2)
    return gitprov.Repository(repo.path)


def entries(prov):
    return all_run_entries(prov.ledger, prov.ledger.tip())


def test_bulk_and_per_run_reads_give_the_same_bytes(ledger_repo):
    runs = entries(ledger_repo)
    bulk = list(read_run_blobs(ledger_repo.git, runs, bulk=True))
    one_by_one = list(read_run_blobs(ledger_repo.git, runs, bulk=False))
    assert bulk == one_by_one
    assert [b.run_id for b in bulk] == [r for r, _ in runs]
    tip = ledger_repo.ledger.tip()
    for blobs in bulk[:5]:
        assert blobs.record == ledger_repo.ledger.read_file(f"runs/{blobs.run_id[:2]}/{blobs.run_id}/record", tip)


def test_runs_in_pack_order_read_the_same_bytes(ledger_repo, monkeypatch):
    """A cold build asks for the blobs by id, in the order they lie in the pack."""
    monkeypatch.setattr(reading, "BULK_MIN", 1)
    runs = entries(ledger_repo)
    ordered, ids = in_pack_order(ledger_repo.git, runs)
    tip, odb = ledger_repo.ledger.tip(), ledger_repo.git.odb
    size = odb.fmt.raw_len
    assert sorted(ordered) == sorted(runs) and len(ids) == 2 * size * len(runs)
    for k, (run_id, _) in enumerate(ordered):
        files = ledger_repo.ledger.list_dir(f"runs/{run_id[:2]}/{run_id}", tip)
        assert ids[2 * size * k:2 * size * (k + 1)] == bytes.fromhex(files["record"].oid + files["state"].oid)
    where = odb.pack_positions([ids[at:at + size] for at in range(0, len(ids), 2 * size)])
    assert list(where) == sorted(where) and min(where) >= 0
    blobs = list(read_run_blobs(ledger_repo.git, ordered, bulk=True, blob_ids=ids))
    assert blobs == list(read_run_blobs(ledger_repo.git, ordered, bulk=False))


@pytest.mark.format3  # a run's directory in format 3's tree, altered
def test_pack_order_asks_for_odd_run_directories_by_path(repo, monkeypatch):
    """A run directory whose record is not a plain file, or that has no state, is asked
    for by path: the same answer, or the same error, as without the ordering."""
    monkeypatch.setattr(reading, "BULK_MIN", 1)
    prov, run_id, files = run_with_loose_objects(repo)
    record, state = files["record"].oid, files["state"].oid
    executable = run_git(repo.path, "mktree", input=f"100755 blob {record}\trecord\n100644 blob {state}\tstate\n").strip()
    extra = run_git(repo.path, "mktree", input=f"100644 blob {record}\tnotes\n100644 blob {record}\trecord\n"
                                                f"100644 blob {state}\tstate\n").strip()
    runs = [(run_id, executable), ("ab" * 20, extra)]
    ordered, ids = in_pack_order(prov.git, runs)
    pair = 2 * prov.git.odb.fmt.raw_len
    assert ordered == runs  # loose objects: in the order given
    assert ids[:pair] == bytes(pair) and ids[pair:] == bytes.fromhex(record + state)
    assert list(read_run_blobs(prov.git, ordered, bulk=True, blob_ids=ids)) == list(
        read_run_blobs(prov.git, ordered, bulk=False))
    no_state = run_git(repo.path, "mktree", input=f"100644 blob {record}\trecord\n").strip()
    ordered, ids = in_pack_order(prov.git, [(run_id, no_state)])
    assert ids == bytes(pair)
    with pytest.raises(DataError, match="no record or state"):
        list(read_run_blobs(prov.git, ordered, bulk=True, blob_ids=ids))


def test_bulk_path_really_starts_git(ledger_repo, monkeypatch):
    started = []
    real = reading._start_cat_file
    monkeypatch.setattr(reading, "_start_cat_file", lambda repo: started.append(1) or real(repo))
    list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=True))
    assert started == [1]
    started.clear()
    list(read_run_blobs(ledger_repo.git, entries(ledger_repo)[:3]))  # fewer than BULK_MIN: in-process
    assert started == []


def table_rows(path):
    """Every row, the runs, keys and lineage nodes named by what they are, not by the
    integers a build gave them (a cold build reads the runs in pack order)."""
    named = {
        "runs": "SELECT id, tree, name, (SELECT name FROM keys WHERE kid = experiment), status, created, ended, updated,"
                " commit_id, parent, deleted, user, raw FROM runs",
        **{t: f"SELECT r.id, k.kind, k.name, k.uses, x.value{', x.num' if t == 'params' else ''} FROM {t} x "  # noqa: S608
              "JOIN runs r ON r.rid = x.run JOIN keys k ON k.kid = x.key" for t in ("params", "metrics", "tags", "attributes")},
        "lineage": "SELECT r.id, l.link % 2, n.kind, n.name, n.item, n.hash FROM lineage_node l JOIN runs r ON r.rid = l.run"
                   " JOIN nodes n ON n.nid = l.link >> 1",
        "stages": "SELECT r.id, k.name, s.name, s.args_hash, s.commit_id, s.dirty, s.status, s.ended FROM stages s"
                  " JOIN runs r ON r.rid = s.run JOIN keys k ON k.kid = s.key",
        "counts": "SELECT (SELECT count(*) FROM keys), (SELECT count(*) FROM nodes)",
        "shards": "SELECT * FROM shards"}
    with sqlite3.connect(path) as db:
        rows = {t: sorted(db.execute(sql).fetchall()) for t, sql in named.items()}
        # a run's links (one row a run) name the same rows as ``lineage_node`` (a row a link)
        nodes = {nid: (kind, name, item, code) for nid, kind, name, item, code in db.execute("SELECT * FROM nodes")}
        ids = dict(db.execute("SELECT rid, id FROM runs"))
        assert sorted((ids[run], link % 2, *nodes[link >> 1]) for run, data in db.execute("SELECT run, links FROM lineage")
                      for link in unpack_links(data)) == rows["lineage"]
        return rows


def test_index_built_in_bulk_equals_index_built_run_by_run(ledger_repo, monkeypatch, tmp_path):
    from gitprov.index import RunIndex, refresh, tables

    monkeypatch.setattr(reading, "BULK_MIN", 1)
    monkeypatch.setattr(refresh, "BULK_INDEX_MIN", 1)  # the cold-build path that drops and recreates indexes
    monkeypatch.setattr(refresh, "INSERT_BATCH", 7)  # lineage nodes met again in later batches keep their ids
    ordered = []
    real = reading.in_pack_order
    monkeypatch.setattr(reading, "in_pack_order", lambda *a: ordered.append(real(*a)) or ordered[-1])
    bulk = RunIndex(ledger_repo.ledger, str(tmp_path / "bulk.sqlite"))
    sizes = []
    real_read = reading.read_run_blobs

    def read_noting_the_cache(*args, **kwargs):
        sizes.append(bulk._db.execute("PRAGMA cache_size").fetchone()[0])
        return real_read(*args, **kwargs)

    monkeypatch.setattr(reading, "read_run_blobs", read_noting_the_cache)
    db = bulk.connection()
    assert sizes == [-tables.BUILD_CACHE_KIB]  # the build keeps SQLite's default cache (its peak memory)
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -tables.CACHE_KIB  # the queries' cache after it
    bulk.close()
    monkeypatch.setattr(reading, "read_run_blobs", real_read)
    assert ordered[0][1] and ordered[0][0] != sorted(ordered[0][0])  # the runs read by blob id, in another order
    monkeypatch.setattr(reading, "BULK_MIN", 10**9)
    monkeypatch.setattr(refresh, "BULK_INDEX_MIN", 10**9)
    single = RunIndex(ledger_repo.ledger, str(tmp_path / "single.sqlite"))
    single.connection()
    single.close()
    assert table_rows(tmp_path / "bulk.sqlite") == table_rows(tmp_path / "single.sqlite")
    with sqlite3.connect(tmp_path / "bulk.sqlite") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}
    declared = {line.split(" ON ")[0].split()[-1] for line in tables.SCHEMA.splitlines() if " INDEX " in line}
    assert names == declared and set(tables.SECONDARY_INDEXES) < declared


def test_without_git_the_object_layer_reads_everything(ledger_repo, monkeypatch):
    expected = list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=False))

    def no_git(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory: 'git'")

    monkeypatch.setattr(subprocess, "Popen", no_git)
    assert list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=True)) == expected
    monkeypatch.setattr(reading, "BULK_MIN", 1)
    assert len(ledger_repo.find_runs()) == 40


def test_in_memory_repository_reads_through_the_object_layer():
    from gitprov.store.repo import GitRepository

    repo = GitRepository.memory()
    tree_blob = repo.odb.write("blob", b"{}")
    from gitprov.store.trees import build_tree

    tree = build_tree(repo.odb, {"record": tree_blob, "state": tree_blob})
    assert list(read_run_blobs(repo, [("ab" * 20, tree)], bulk=True)) == [
        reading.RunBlobs("ab" * 20, tree, b"{}", b"{}")]


def run_with_loose_objects(repo):
    """``(Repository, run id, the run directory's entries)`` of one run in a fresh prov
    repository whose objects are all loose (so one can be damaged)."""
    gitprov.init(repo.path, hooks=False)
    prov = gitprov.Repository(repo.path)
    with prov.start_run(name="loose", environment=False) as run:
        run.log_metric("acc", 0.5)
    unpack_all(Path(prov.git.work_tree))
    return prov, run.id, prov.ledger.list_dir(f"runs/{run.id[:2]}/{run.id}", prov.ledger.tip())


@pytest.mark.format3  # a run's directory in format 3's tree, altered
def test_missing_state_blob_is_the_same_error_on_both_paths(repo):
    prov, _, files = run_with_loose_objects(repo)
    state = files["state"].oid
    os.remove(os.path.join(repo.path, ".git", "objects", state[:2], state[2:]))
    runs = entries(prov)
    for bulk in (True, False):
        with pytest.raises(MissingObjectError, match=state):
            list(read_run_blobs(prov.git, runs, bulk=bulk))


@pytest.mark.format3  # a run's directory in format 3's tree, altered
def test_run_directory_without_state_is_a_data_error_on_both_paths(repo):
    prov, run_id, files = run_with_loose_objects(repo)
    record = files["record"].oid
    tree = run_git(repo.path, "mktree", input=f"100644 blob {record}\trecord\n").strip()
    for bulk in (True, False):
        with pytest.raises(DataError, match="no record or state"):
            list(read_run_blobs(prov.git, [(run_id, tree)], bulk=bulk))


def test_a_tree_where_a_blob_belongs_is_refused(repo):
    gitprov.init(repo.path, hooks=False)
    prov = gitprov.Repository(repo.path)
    blob = run_git(repo.path, "hash-object", "-w", "--stdin", input="{}").strip()
    sub = run_git(repo.path, "mktree", input=f"100644 blob {blob}\tx\n").strip()
    tree = run_git(repo.path, "mktree", input=f"040000 tree {sub}\trecord\n100644 blob {blob}\tstate\n").strip()
    for bulk in (True, False):
        with pytest.raises(DataError):
            list(read_run_blobs(prov.git, [("ab" * 20, tree)], bulk=bulk))


def test_find_runs_and_runs_through_the_bulk_reader_match_get_run(ledger_repo, monkeypatch):
    monkeypatch.setattr(reading, "BULK_MIN", 1)
    found = ledger_repo.find_runs({"metrics.acc": {"$gte": 0.0}}, order_by="metrics.acc desc")
    listed = ledger_repo.runs()
    assert len(found) == len(listed) == 40
    for run in [*found, *listed]:
        alone = ledger_repo.get_run(run.id)
        assert (run.record, run.state) == (alone.record, alone.state)
    accs = [r.state.metrics["acc"].value for r in found]
    assert accs == sorted(accs, reverse=True)


def test_git_that_cannot_read_the_repository_falls_back(ledger_repo, monkeypatch, tmp_path):
    expected = list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=False))
    monkeypatch.setattr(ledger_repo.git, "common_dir", str(tmp_path))  # not a git directory: git exits 128
    assert list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=True)) == expected


def test_git_dying_mid_stream_leaves_the_rest_to_the_object_layer(ledger_repo, monkeypatch):
    expected = list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=False))
    git_dir = ledger_repo.git.common_dir

    def truncated(repo):  # the answers stop after 5,000 bytes, in the middle of an object
        return subprocess.Popen(["sh", "-c", f"git --git-dir '{git_dir}' cat-file --batch | head -c 5000"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    monkeypatch.setattr(reading, "_start_cat_file", truncated)
    assert list(read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=True)) == expected


def test_stopping_early_ends_git(ledger_repo, monkeypatch):
    started = []
    real = reading._start_cat_file
    monkeypatch.setattr(reading, "_start_cat_file", lambda repo: started.append(real(repo)) or started[-1])
    blobs = read_run_blobs(ledger_repo.git, entries(ledger_repo), bulk=True)
    next(blobs)
    blobs.close()
    assert started[0].poll() is not None
