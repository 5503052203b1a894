"""MLflow's filter dialect as parsed and answered without MLflow installed (the
differential test against a real MLflow store is tests/sync/test_mlflow_filters.py),
and the runs ``find_runs`` returns, read at their first use."""

from __future__ import annotations

import sqlite3

import pytest

import gitprov
from gitprov.index import QueryError, UnknownFieldError, parse_filter, search
from gitprov.index.encoding import epoch_ms
from gitprov.index.query import like_glob
from gitprov.index.store import INDEX_VERSION
from gitprov.runs.run import Run


@pytest.mark.parametrize(("text", "expected"), [
    ("params.lr = '0.01'", {"params.lr": {"$eq": "0.01"}}),
    ("param.lr != '0.01'", {"params.lr": {"$exists": True, "$ne": "0.01"}}),
    ("parameters.`my-p` LIKE 'a%'", {"params.my-p": {"$like": "a%"}}),
    ("metric.\"val acc\" >= 0.9", {"metrics.val acc": {"$gte": 0.9}}),
    ("tag.team ILIKE 'NLP'", {"tags.team": {"$ilike": "NLP"}}),
    ("tags.team NOT IN ('a', 'b')", {"tags.team": {"$exists": True, "$nin": ["a", "b"]}}),
    ("attributes.status = 'FINISHED'", {"mlflow.status": {"$eq": "FINISHED"}}),
    ("status = 'FINISHED'", {"mlflow.status": {"$eq": "FINISHED"}}),
    ("status = 'finished'", {"status": {"$eq": "finished"}}),
    ("attr.start_time > 5", {"mlflow.start_time": {"$gt": 5}}),
    ("created > 5", {"mlflow.start_time": {"$gt": 5}}),
    ("created > '2026'", {"created": {"$gt": "2026"}}),
    ("run.run_name = 'x'", {"mlflow.run_name": {"$eq": "x"}}),
    ("`Run name` = 'x'", {"mlflow.run_name": {"$eq": "x"}}),
    ("attributes.end_time != 3", {"mlflow.end_time": {"$exists": True, "$ne": 3}}),
    ("attributes.size > 3", {"attributes.size": {"$gt": 3}}),
    ("run_id IN ('ab', 'cd')", {"mlflow.run_id": {"$in": ["ab", "cd"]}}),
    ("tags.x = 'a\\'b'", {"tags.x": {"$eq": "a\\'b"}}),
])
def test_mlflow_spellings(text, expected):
    assert parse_filter(text) == expected


def test_like_patterns_become_globs_that_match_the_same_strings():
    db = sqlite3.connect(":memory:")
    strings = ["a*b", "a?b", "a[b", "axb", "A*B", "a%b", "a_b", "ab", "", "a\nb", "日本"]
    for pattern in ["a*b", "a?b", "a[b", "a%b", "a_b", "%", "_", "a%", "%b", "A%", "%[%", "日_", "a\\%"]:
        glob = like_glob(pattern)
        db.execute("PRAGMA case_sensitive_like = true")
        like = {s for s in strings if db.execute("SELECT ? LIKE ?", (s, pattern)).fetchone()[0]}
        assert {s for s in strings if db.execute("SELECT ? GLOB ?", (s, glob)).fetchone()[0]} == like, pattern
        db.execute("PRAGMA case_sensitive_like = false")
        ilike = {s for s in strings if db.execute("SELECT lower(?) LIKE lower(?)", (s, pattern)).fetchone()[0]}
        assert {s for s in strings if db.execute("SELECT lower(?) GLOB lower(?)", (s, glob)).fetchone()[0]} == ilike


@pytest.fixture
def runs(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    ids = {}
    for name, params, tags in [("a", {"lr": 0.01, "flag": True, "x": None}, {"t": "a*b"}),
                               ("b", {"lr": "0.01", "flag": False, "n": 3}, {"t": "axb"}),
                               ("c", {"lr": 1e-05, "layers": [1, 2]}, {})]:
        with repo.start_run(name=name, params=params, tags=tags, environment=False) as run:
            run.log_metric("acc", 0.5)
        ids[name] = run.id
    return repo, ids


def names(found):
    return sorted(r.name for r in found)


def test_params_compare_as_their_text_and_numbers_as_numbers(runs):
    repo, _ = runs
    assert names(repo.find_runs("params.lr = '0.01'")) == ["a", "b"]
    assert names(repo.find_runs("params.lr = 0.01")) == ["a"]  # a number: numeric params only
    assert names(repo.find_runs("params.lr = '1e-05'")) == ["c"]
    assert names(repo.find_runs("params.flag = 'true'")) == ["a"]
    assert names(repo.find_runs("params.flag = true")) == ["a"]
    assert names(repo.find_runs("params.x = 'null'")) == ["a"]
    assert names(repo.find_runs({"params.x": None})) == ["a"]
    assert names(repo.find_runs("params.layers = '[1,2]'")) == ["c"]
    assert names(repo.find_runs("params.n LIKE '3'")) == ["b"]
    assert names(repo.find_runs("params.n != '3'")) == []  # only b has n
    assert names(repo.find_runs({"params.n": {"$ne": "3"}})) == ["a", "c"]  # a dict keeps MongoDB's meaning
    assert names(repo.find_runs("tags.t LIKE 'a*b'")) == ["a"]  # * is no wildcard in LIKE
    assert names(repo.find_runs("tags.t LIKE 'a_b'")) == ["a", "b"]
    assert [r.name for r in repo.find_runs(order_by="params.lr")] == ["c", "a", "b"]  # numbers, then text


@pytest.mark.parametrize(("text", "error"), [
    ("attributes.artifact_uri = 'x'", UnknownFieldError),
    ("datasets.digest = 'x'", QueryError), ("metrics.acc LIKE '0%'", QueryError),
    ("attributes.start_time > 'x'", QueryError), ("params.lr LIKE 3", QueryError),
])
def test_what_has_no_meaning_is_a_usage_error(runs, text, error):
    repo, _ = runs
    with pytest.raises(error):
        repo.find_runs(text)


def test_start_time_is_milliseconds_of_created(runs):
    repo, ids = runs
    created = epoch_ms(repo.get_run(ids["b"]).record.created)
    assert "b" in names(repo.find_runs(f"attributes.start_time >= {created}"))
    assert "a" not in names(repo.find_runs(f"attributes.start_time > {created}"))
    assert epoch_ms("not a time") is None and epoch_ms(None) is None


def test_found_runs_are_read_once_at_first_use_as_they_were_found(runs, monkeypatch):
    repo, ids = runs
    reads = []
    real = search.read_run_blobs
    monkeypatch.setattr(search, "read_run_blobs", lambda git, found: reads.append(len(found)) or real(git, found))
    found = repo.find_runs(order_by="name")
    assert reads == []  # nothing read yet
    repo.get_run(ids["a"]).log_tag("later", "x")  # after the answer: the answer keeps what matched
    assert [r.name for r in found] == ["a", "b", "c"] and reads == []  # a summary comes from the index
    assert "later" not in found[0].get_tags() and "later" in repo.get_run(ids["a"]).get_tags()
    assert found[1].get_metric("acc") == 0.5 and reads == []
    fresh = repo.get_run(ids["b"])
    assert (found[1].record, found[1].state) == (fresh.record, fresh.state) and reads == [3]  # the rest from git
    assert found[1].get_metric("acc") == 0.5 and found[1].get_hyperparameters() == fresh.get_hyperparameters()
    found[2].log_tag("via-found", "y")  # an ended run takes tags, through the found object too
    assert repo.get_run(ids["c"]).get_tags()["via-found"] == "y"
    assert reads == [3] and all(isinstance(r, Run) for r in found)


def test_an_older_index_is_rebuilt_in_the_new_format(runs):
    repo, _ = runs
    index = repo.index()
    db = index.connection()
    db.execute("UPDATE meta SET value = '5' WHERE key = 'version'")
    index.close()
    assert names(repo.find_runs("params.lr = '0.01'")) == ["a", "b"]
    assert index.connection().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0] == INDEX_VERSION


def test_prov_runs_where_takes_the_dialect(runs, monkeypatch):
    import json

    from click.testing import CliRunner

    from gitprov.cli.app import cli

    repo, ids = runs
    monkeypatch.chdir(repo.work_tree)
    result = CliRunner().invoke(cli, ["runs", "--where",
                                      "params.lr = '0.01' AND tags.t ILIKE 'A%'", "--order-by",
                                      "attributes.run_name DESC", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.output)] == [ids["b"], ids["a"]]
