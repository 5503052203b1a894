"""The SQLite run index: built on demand, updated by tree diff, rebuilt when lost."""

from __future__ import annotations

import os
import sqlite3

import pytest

import gitprov
import gitprov.lineage as lineage
from gitprov.index import INDEX_FILE
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
        assert db.execute("SELECT name, status FROM runs").fetchall() == [("a", "finished")]
        assert db.execute("SELECT key, value FROM metrics").fetchall() == [("acc", 0.5)]


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
