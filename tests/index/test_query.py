"""find_runs: MongoDB-style queries and MLflow-style filter strings over the run index."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

import gitprov
import gitprov.lineage as lineage
from gitprov import UsageError
from gitprov.cli.app import cli
from gitprov.index import QueryError, UnknownFieldError, parse_filter
from tests.conftest import run_prov


def make_runs(path):
    """Four runs: lr 0.001..1, acc rising, one string-valued lr, tags and lineage."""
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    ids = {}
    specs = [
        ("a", "base", {"lr": 0.001, "opt": "sgd"}, 0.70, {"team": "nlp"}, ("bert", "v1")),
        ("b", "base", {"lr": 0.01, "opt": "adam"}, 0.85, {"team": "cv"}, ("bert", "v3")),
        ("c", "tuned", {"lr": 0.1, "opt": "adam"}, 0.95, {"team": "nlp", "best": ""}, ("gpt", "2")),
        ("d", "tuned", {"lr": "auto", "opt": "adam"}, None, {}, None),
    ]
    for name, experiment, params, acc, tags, model in specs:
        with repo.start_run(name=name, experiment=experiment, params=params, tags=tags, environment=False) as run:
            if acc is not None:
                run.log_metric("acc", acc)
            run.log_attribute("size", (ord(name) - 96) * 10 if name != "d" else "big")
            if model:
                lineage.of(run).with_input_model(*model).with_output_model("clf", name).register()
        ids[name] = run.id
    return repo, ids


@pytest.fixture
def runs(make_repo):
    return make_runs(make_repo("sha1").path)


def names(found):
    return [r.name for r in found]


def test_find_runs_on_both_object_formats(repo):
    found, ids = make_runs(repo.path)
    result = found.find_runs({"params.lr": {"$gt": 0.005}, "metrics.acc": {"$gte": 0.9}})
    assert names(result) == ["c"] and result[0].id == ids["c"]


@pytest.mark.parametrize(("query", "expected"), [
    ({}, ["d", "c", "b", "a"]),
    ({"params.lr": 0.01}, ["b"]),
    ({"params.lr": {"$ne": 0.01}}, ["d", "c", "a"]),
    ({"params.lr": {"$gt": 0.001}}, ["c", "b"]),  # the string "auto" is not greater than a number
    ({"params.lr": {"$gte": 0.001, "$lt": 0.1}}, ["b", "a"]),
    ({"params.lr": {"$lte": 0.01}}, ["b", "a"]),
    ({"params.lr": "auto"}, ["d"]),
    ({"params.opt": {"$in": ["sgd", "rmsprop"]}}, ["a"]),
    ({"params.opt": {"$nin": ["sgd"]}}, ["d", "c", "b"]),
    ({"metrics.acc": {"$exists": False}}, ["d"]),
    ({"metrics.acc": {"$not": {"$gt": 0.8}}}, ["d", "a"]),
    ({"$or": [{"params.opt": "sgd"}, {"metrics.acc": {"$gt": 0.9}}]}, ["c", "a"]),
    ({"$and": [{"experiment": "tuned"}, {"params.lr": {"$gt": 0}}]}, ["c"]),
    ({"$not": {"experiment": "base"}}, ["d", "c"]),
    ({"$nor": [{"experiment": "base"}, {"name": "d"}]}, ["c"]),
    ({"name": {"$regex": "^[ab]$"}}, ["b", "a"]),
    ({"name": {"$regex": "^B$", "$options": "i"}}, ["b"]),
    ({"tags": "best"}, ["c"]),
    ({"tags.team": "nlp"}, ["c", "a"]),
    ({"tags.team": {"$exists": False}}, ["d"]),
    ({"attributes.size": {"$gte": 20}}, ["c", "b"]),
    ({"attributes.size": "big"}, ["d"]),
    ({"status": "finished", "experiment": "base"}, ["b", "a"]),
    ({"inputs.models.bert": {"$exists": True}}, ["b", "a"]),
    ({"inputs.models.bert": "v3"}, ["b"]),
    ({"inputs.models": "gpt"}, ["c"]),
    ({"outputs.models.clf": {"$in": ["a", "c"]}}, ["c", "a"]),
    ({"created": {"$gt": "2000-01-01"}}, ["d", "c", "b", "a"]),
])
def test_operators(runs, query, expected):
    repo, _ = runs
    assert names(repo.find_runs(query)) == expected


def test_lineage_query_builder_feeds_find_runs(runs):
    repo, _ = runs
    assert names(repo.find_runs(lineage.Query().with_input_model("bert").render())) == ["b", "a"]
    assert names(repo.find_runs(lineage.Query().with_input_model("bert", "v1").with_output_model("clf").render())) == ["a"]
    assert repo.find_runs(lineage.Query().with_input_model("nobody").render()) == []


def test_lineage_runs_match_by_id_prefix(make_repo):
    path = make_repo("sha1").path
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    with repo.start_run(name="up", environment=False) as up:
        pass
    with repo.start_run(name="down", environment=False) as down:
        lineage.of(down).with_input_artifact(up.id[:8], "w.bin").register()
    for run_id in (up.id, up.id[:8], up.id[:7], up.id[:8].upper()):  # the node's name is stored as bytes
        assert names(repo.find_runs(lineage.Query().with_input_artifact(run_id, "w.bin").render())) == ["down"]
        assert names(repo.find_runs(lineage.Query().with_input_artifact(run_id).render())) == ["down"]
    assert repo.find_runs(lineage.Query().with_input_artifact(up.id[:8], "other").render()) == []
    assert names(repo.find_runs({"inputs.runs": up.id})) == ["down"]
    assert names(repo.find_runs({"inputs.runs": {"$regex": f"^{up.id[:5]}"}})) == ["down"]
    assert names(repo.find_runs({"inputs.runs": {"$in": [up.id, "ab" * 20]}})) == ["down"]


def test_commit_and_id_fields(runs):
    repo, ids = runs
    commit = repo.get_run(ids["a"]).record.code.commit
    assert len(repo.find_runs({"commit": commit})) == 4
    assert names(repo.find_runs({"id": ids["b"]})) == ["b"]


def test_order_and_limit(runs):
    repo, _ = runs
    assert names(repo.find_runs(order_by="metrics.acc desc")) == ["c", "b", "a", "d"]  # missing last
    assert names(repo.find_runs(order_by="metrics.acc")) == ["a", "b", "c", "d"]
    assert names(repo.find_runs(order_by=["experiment desc", "name"], limit=3)) == ["c", "d", "a"]
    assert names(repo.find_runs("params.opt = 'adam'", "-metrics.acc", 1)) == ["c"]
    assert repo.find_runs(limit=0) == []


def test_deleted_runs_are_left_out_unless_asked(runs):
    repo, ids = runs
    repo.get_run(ids["a"]).delete()
    assert "a" not in names(repo.find_runs())
    assert "a" in names(repo.find_runs(include_deleted=True))


def test_values_never_reach_sql_text(runs):
    repo, _ = runs
    assert repo.find_runs({"name": "x'; DROP TABLE runs; --"}) == []
    assert len(repo.find_runs()) == 4


@pytest.mark.parametrize(("query", "error", "words"), [
    ({"params.lr": {"$foo": 1}}, QueryError, "unknown query operator '$foo'"),
    ({"$xor": []}, QueryError, "unknown query operator '$xor'"),
    ({"params.lr": {"$gt": [1]}}, QueryError, "takes a string, number"),
    ({"params.lr": {"$in": 1}}, QueryError, "takes a list"),
    ({"params.lr": {"$exists": "yes"}}, QueryError, "true or false"),
    ({"metrics.acc": {"$gt": "high"}}, QueryError, "takes a number"),
    ({"name": {"$gt": 3}}, QueryError, "takes a string"),
    ({"status": "done"}, QueryError, "not one of"),
    ({"name": {"$regex": "("}}, QueryError, "not a regular expression"),
    ({"params.lr": {"nested": 1}}, QueryError, "dict of operators"),
    ({"$and": {}}, QueryError, "non-empty list"),
    ({"params.lr": {"$gt": None}}, QueryError, "null"),
    ({"foo": 1}, UnknownFieldError, "unknown query field 'foo'"),
    ({"inputs.widgets.x": 1}, UnknownFieldError, "lineage fields"),
    ({"params.learning_rate": 0.1}, UnknownFieldError, "no run has param 'learning_rate'"),
    ({"metrics.accuracy": {"$gt": 0.1}}, UnknownFieldError, "known: acc"),
    ("params.lr >", QueryError, "position 12"),
    ([1], QueryError, "must be a dict"),
])
def test_bad_queries_are_usage_errors(runs, query, error, words):
    repo, _ = runs
    with pytest.raises(error, match=None) as info:
        repo.find_runs(query)
    assert isinstance(info.value, UsageError) and words in str(info.value)


@pytest.mark.parametrize("kwargs", [{"limit": -1}, {"limit": "3"}, {"order_by": "metrics.acc sideways"},
                                    {"order_by": "tags"}, {"order_by": 3}])
def test_bad_order_or_limit(runs, kwargs):
    repo, _ = runs
    with pytest.raises(UsageError):
        repo.find_runs(**kwargs)


# -- filter strings ------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("params.lr > 0.01", {"params.lr": {"$gt": 0.01}}),
    ("params.lr > 0.01 and metrics.acc >= 0.9",
     {"$and": [{"params.lr": {"$gt": 0.01}}, {"metrics.acc": {"$gte": 0.9}}]}),
    ("a.b = 1 or not (c.d != 'x' AND e.f <= -2e3)",
     {"$or": [{"a.b": {"$eq": 1}}, {"$not": {"$and": [{"c.d": {"$ne": "x"}}, {"e.f": {"$lte": -2000.0}}]}}]}),
    ("params.`my key` == \"it's\"", {"params.my key": {"$eq": "it's"}}),
    ("tags.team in ('nlp', 'cv')", {"tags.team": {"$in": ["nlp", "cv"]}}),
    ("tags.team not in ('nlp')", {"tags.team": {"$exists": True, "$nin": ["nlp"]}}),  # MLflow's meaning
    ("metrics.acc is null", {"metrics.acc": {"$exists": False}}),
    ("metrics.acc IS NOT NULL", {"metrics.acc": {"$exists": True}}),
    ("name ~ '^b' and params.flag = true", {"$and": [{"name": {"$regex": "^b"}}, {"params.flag": {"$eq": True}}]}),
    ("metrics.val.acc < 1", {"metrics.val.acc": {"$lt": 1}}),
])
def test_parse_filter(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize(("text", "position"), [
    ("params.lr >", 12),
    ("params.lr 0.1", 11),
    ("params.lr > 0.1 and", 20),
    ("params.lr > 0.1 metrics.acc > 1", 17),
    ("(params.lr > 0.1", 17),
    ("params.lr > adam", 13),
    ("params.lr in 1", 14),
    ("params.lr & 1", 11),
    ("> 1", 1),
])
def test_malformed_filters_point_at_the_position(text, position):
    with pytest.raises(QueryError, match=rf"position {position}\b"):
        parse_filter(text)


# -- CLI -------------------------------------------------------------------------------


def test_cli_where_order_limit(runs, monkeypatch):
    repo, ids = runs
    monkeypatch.chdir(repo.work_tree)
    runner = CliRunner()
    result = runner.invoke(cli, ["runs", "--where", "params.lr > 0.001 and metrics.acc >= 0.8",
                                 "--order-by", "metrics.acc desc", "--limit", "10", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.output)] == ["c", "b"]
    text = runner.invoke(cli, ["runs", "--where", "tags.team = 'nlp'", "--experiment", "base"])
    assert text.exit_code == 0 and ids["a"][:12] in text.output and ids["c"][:12] not in text.output
    limited = runner.invoke(cli, ["runs", "--order-by", "name", "--limit", "1", "--json"])
    assert [r["name"] for r in json.loads(limited.output)] == ["a"]


@pytest.mark.parametrize("args", [
    ["--where", "params.lr >"], ["--where", "nope.x = 1"], ["--where", "params.lr = 'a'", "--order-by", "x y z"],
    ["--where", "metrics.acc > 'x'"],
])
def test_cli_bad_filters_exit_2_without_traceback(runs, monkeypatch, args):
    repo, _ = runs
    monkeypatch.chdir(repo.work_tree)
    result = CliRunner().invoke(cli, ["runs", *args])
    assert result.exit_code == 2
    assert "prov: error:" in result.output and "Traceback" not in result.output


def test_real_subprocess_where_and_lineage(runs):
    repo, ids = runs
    ok = run_prov(repo.work_tree, "runs", "--where", "inputs.models.bert = 'v3'", "--json")
    assert ok.returncode == 0 and [r["id"] for r in json.loads(ok.stdout)] == [ids["b"]]
    bad = run_prov(repo.work_tree, "runs", "--where", "metrics.acc >= 0.9 or")
    assert bad.returncode == 2 and "position 22" in bad.stderr and "Traceback" not in bad.stderr
    graph = run_prov(repo.work_tree, "lineage", "bert@v3", "--downstream", "--format", "mermaid")
    assert graph.returncode == 0 and graph.stdout.startswith("flowchart LR") and "model clf@b" in graph.stdout


@pytest.mark.parametrize("order_by", ["metrics.acc desc", "metrics.acc", "params.lr desc", "params.lr",
                                      ["attributes.size desc", "name"], "tags.team desc", "-params.opt"])
def test_index_driven_order_with_limit_matches_the_full_sort(runs, order_by):
    repo, ids = runs
    repo.get_run(ids["b"]).delete()
    with repo.start_run(name="e", params={"lr": 0.01, "opt": "adam"}, environment=False) as run:
        run.log_metric("acc", float("nan"))  # stored as null: sorts with the runs that lack it
    for query in ({}, {"params.opt": "adam"}):
        for include_deleted in (False, True):
            full = names(repo.find_runs(query, order_by, include_deleted=include_deleted))
            for limit in range(len(full) + 2):
                assert names(repo.find_runs(query, order_by, limit, include_deleted=include_deleted)) == full[:limit]


@pytest.mark.parametrize("order_by", [None, "name", "created"])
def test_a_long_answer_cut_where_it_is_read_matches_the_full_sort(runs, order_by, monkeypatch):
    """A long answer newest first has no ``LIMIT``: it is cut where it is read, and the
    statement is reset, so no read stays open (``query.SHORT`` 0: every limit is long);
    a query of one key's condition joins that key's rows, and finds what the same query
    inside an ``$and`` (a set of runs) finds."""
    from gitprov.index import query as compiled

    repo, ids = runs
    repo.get_run(ids["b"]).delete()
    monkeypatch.setattr(compiled, "SHORT", 0)
    other = sqlite3.connect(repo.index().path, timeout=0, isolation_level=None)  # no wait for a lock
    for query in ({}, {"params.opt": "adam"}, {"metrics.acc": {"$gte": 0.8}}, {"status": "finished"},
                  {"tags.team": "nlp"}, {"attributes.size": {"$gt": 15}}, {"params.lr": {"$exists": True}}):
        for include_deleted in (False, True):
            full = names(repo.find_runs({"$and": [query]} if query else query, order_by,
                                        include_deleted=include_deleted))
            for limit in range(len(full) + 2):
                assert names(repo.find_runs(query, order_by, limit, include_deleted=include_deleted)) == full[:limit]
                other.execute("BEGIN EXCLUSIVE")  # "database is locked" while a read of the answer is open
                other.execute("COMMIT")
    other.close()
    assert names(repo.find_runs(None, None, 2)) == ["d", "c"]
