"""MLflow's filter dialect, differentially: the same filter strings asked of git-prov
(``Repository.find_runs``) and of MLflow (``MlflowClient.search_runs``) over the same
runs — made with git-prov, synced with ``prov sync`` into a real MLflow sqlite store —
must find the same runs. The table below and hypothesis-generated conjunctions cover
``= != < <= > >=``, ``LIKE`` / ``ILIKE`` (wildcards, case), params compared as strings,
``IN`` / ``NOT IN``, ``IS [NOT] NULL``, backquoted keys, MLflow's entity aliases and its
run attributes (``run_name``, ``status``, ``start_time``, ``end_time``, ``run_id``)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gitprov
from gitprov.index.encoding import epoch_ms
from gitprov.index.rows import param_text
from gitprov.sync import sync_mlflow
from gitprov.sync.bridge import canonical_value, millis

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

#: (name, status, params, metrics, tags) of the runs both sides hold
RUNS = [
    ("train-a", "finished", {"lr": 0.01, "batch": 32, "opt": "adam", "flag": True, "layers": [64, 32]},
     {"acc": 0.91, "loss": 0.2}, {"team": "nlp", "note": "50%"}),
    ("train_b", "finished", {"lr": 0.1, "batch": 64, "opt": "Adam", "flag": False},
     {"acc": 0.85, "loss": 0.3}, {"team": "NLP", "note": "x_y"}),
    ("Train-C", "failed", {"lr": 1e-05, "batch": 32, "opt": "sgd", "drop": 0.5},
     {"acc": 0.5, "loss": float("nan")}, {"team": "cv"}),
    ("eval%1", "killed", {"lr": "auto", "opt": "a_b"}, {"acc": 0.99}, {"note": "done"}),
    ("eval-2", "finished", {"lr": 0.001, "batch": 128, "opt": "a%b", "seed": 7},
     {"loss": 1.5}, {"team": "cv", "my tag": "x"}),
    ("sweep.1", "crashed", {"lr": 0.01, "opt": "adamw", "my-param": "v 1"}, {"acc": 0.7, "my-metric": 2.0}, {}),
    ("live", "running", {"lr": 0.3, "opt": "ADAM"}, {"acc": 0.6}, {"team": "nlp"}),
]

#: hand-picked filters, each valid in MLflow's dialect
FILTERS = [
    "params.lr = '0.01'", "params.lr = '1e-05'", "params.lr != '0.01'", "params.batch = '32'",
    "params.flag = 'true'", "params.flag = 'True'", "params.layers = '[64,32]'", "params.lr = 'auto'",
    "params.opt = 'adam'", "params.opt LIKE 'adam%'", "params.opt ILIKE 'adam%'", "params.opt LIKE 'a_b'",
    "params.opt LIKE '%\\%%'", "params.opt ILIKE '%A%'", "params.opt LIKE '%'", "params.opt != 'adam'",
    "param.opt = 'sgd'", "parameter.opt = 'sgd'", "parameters.lr LIKE '0.0%'", "params.lr LIKE '%e-05'",
    "params.drop IS NULL", "params.drop IS NOT NULL", "params.seed IS NOT NULL",
    "params.`my-param` = 'v 1'", "params.\"my-param\" LIKE 'v%'",
    "tags.team = 'nlp'", "tags.team ILIKE 'nlp'", "tags.team LIKE 'N%'", "tags.team != 'cv'", "tag.team = 'cv'",
    "tags.note LIKE '%!%%'", "tags.note LIKE '%_%'", "tags.note LIKE 'x_y'", "tags.team IS NULL",
    "tags.team IS NOT NULL", "tags.`my tag` = 'x'",
    "metrics.acc > 0.8", "metrics.acc >= 0.85", "metrics.acc < 0.7", "metrics.acc <= 0.7", "metrics.acc = 0.5",
    "metrics.acc != 0.5", "metric.acc > 0", "metrics.loss > 0", "metrics.loss != 0.2", "metrics.loss = 1.5",
    "metrics.`my-metric` = 2", "metrics.acc > 0.8 AND params.opt = 'adam'",
    "metrics.acc > 0.5 and tags.team = 'nlp' and params.lr != '0.3'",
    "attributes.run_name = 'train-a'", "attributes.run_name LIKE 'train%'", "attributes.run_name ILIKE 'train%'",
    "attributes.run_name LIKE 'eval_1'", "attributes.run_name LIKE '%.1'", "attributes.run_name != 'live'",
    "run_name = 'eval-2'", "attributes.`Run name` = 'live'", "`Run Name` LIKE '%-%'",
    "attributes.status = 'FINISHED'", "attributes.status = 'FAILED'", "attributes.status != 'RUNNING'",
    "attributes.status LIKE 'F%'", "attributes.status ILIKE 'killed'", "status = 'KILLED'", "run.status = 'RUNNING'",
    "attr.status = 'FINISHED'",
    "attributes.user_id = 'Filters <filters@example.com>'", "attributes.user_id LIKE 'Filters%'",
    "attributes.user_id != 'Filters <filters@example.com>'", "user_id ILIKE '%@EXAMPLE.COM>'",
]

#: filters using the runs' times and ids (made per repository)
TIMED = [
    "attributes.start_time >= {t2}", "attributes.start_time > {t2}", "attributes.start_time < {t2}",
    "start_time <= {t2}", "attributes.created = {t2}", "Created != {t2}", "attributes.end_time > {t2}",
    "attributes.end_time <= {end}", "attributes.end_time != {end}",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path):
    """The runs of ``RUNS`` in a git-prov repository, and synced into an MLflow store."""
    root = tmp_path_factory.mktemp("filters")
    path = root / "repo"
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for key, value in (("user.name", "Filters"), ("user.email", "filters@example.com"),
                       ("prov.autoPackLimit", "0")):  # module-scoped: before the per-test isolation
        subprocess.run(["git", "-C", str(path), "config", key, value], check=True)
    (path / "f.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(path), "add", "f.txt"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "one"], check=True)
    gitprov.init(path, hooks=False)
    repo = gitprov.Repository(path)
    ids = {}
    for name, status, params, metrics, tags in RUNS:
        run = repo.start_run(name, "filters", params, tags, environment=False, code=False)
        run.log_metrics(metrics)
        if status != "running":
            run.end(status)
        else:
            run.flush()
        ids[name] = run.id
    db = root / "mlflow.db"
    shutil.copy(mlflow_template, db)
    sync_mlflow(repo, f"sqlite:///{db}", artifact_location=str(root / "artifacts"))
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return repo, client, experiments, ids


def prov_names(world, text: str) -> set[str] | str:
    repo, _, _, ids = world
    names = {run_id: name for name, run_id in ids.items()}
    try:
        return {names[r.id] for r in repo.find_runs(text)}
    except gitprov.UsageError as exc:
        return f"error: {exc}"


def mlflow_names(world, text: str) -> set[str] | str:
    _, client, experiments, ids = world
    names = {run_id: name for name, run_id in ids.items()}
    try:
        found = client.search_runs(experiments, filter_string=text, max_results=1000)
    except mlflow.exceptions.MlflowException as exc:
        return f"error: {exc}"
    return {names[r.data.tags["prov.run_id"]] for r in found}


def times(world) -> dict[str, int]:
    repo, _, _, ids = world
    return {"t2": millis(repo.get_run(ids["train_b"]).record.created),
            "end": millis(repo.get_run(ids["Train-C"]).state.ended)}


@pytest.mark.parametrize("text", FILTERS)
def test_the_same_runs_as_mlflow(world, text):
    expected = mlflow_names(world, text)
    assert not isinstance(expected, str), expected  # every filter of the table is valid MLflow
    assert prov_names(world, text) == expected, text


@pytest.mark.parametrize("template", TIMED)
def test_times_as_mlflow_holds_them(world, template):
    text = template.format(**times(world))
    expected = mlflow_names(world, text)
    assert not isinstance(expected, str), expected
    assert prov_names(world, text) == expected, text


def test_run_ids_as_mlflow_takes_them(world):
    """``attributes.run_id`` is git-prov's run id (MLflow's own is another): the same
    runs as MLflow finds by the ``prov.run_id`` tag."""
    _, _, _, ids = world
    assert prov_names(world, f"attributes.run_id = '{ids['live']}'") == \
        mlflow_names(world, f"tags.`prov.run_id` = '{ids['live']}'") == {"live"}
    listed = ", ".join(f"'{ids[name]}'" for name in ("train-a", "live"))
    assert prov_names(world, f"attributes.run_id IN ({listed})") == {"train-a", "live"}
    assert prov_names(world, f"run_id = '{ids['eval-2']}'") == {"eval-2"}
    assert prov_names(world, f"attributes.run_id NOT IN ({listed})") == set(ids) - {"train-a", "live"}


def test_params_are_rendered_as_sync_writes_them():
    """A param's text in the index is what the MLflow bridge sends (one rule, two places)."""
    for value in (0.01, 1e-05, 1e16, 3, -2, True, False, None, "x", [64, 32], {"b": 1, "a": [0.5]}, "ü", math.inf):
        assert param_text(value) == canonical_value(value), value
    assert epoch_ms("2026-11-01T10:00:00.123456Z") == millis("2026-11-01T10:00:00.123456Z")


# -- generated conjunctions ----------------------------------------------------------------

_TEXT_VALUES = ["adam", "Adam", "sgd", "a_b", "a%b", "0.01", "0.1", "32", "true", "nlp", "NLP", "cv", "50%", "x_y",
                "train-a", "live", "zzz", ""]
_PATTERNS = ["%", "a%", "A%", "%a%", "_dam", "%\\%%", "%_%", "t%", "%1", "n__", "%b", "0.0%", "%e-05"]
_STRING_FIELDS = ["params.opt", "params.lr", "params.batch", "params.flag", "params.drop", "tags.team", "tags.note",
                  "attributes.run_name"]
_NUMBERS = [0, 0.5, 0.7, 0.85, 0.9, 0.99, 1, 1.5, 2]


def _clause() -> st.SearchStrategy[str]:
    string_cmp = st.builds(lambda f, op, v: f"{f} {op} '{v}'", st.sampled_from(_STRING_FIELDS),
                           st.sampled_from(["=", "!="]), st.sampled_from(_TEXT_VALUES))
    like = st.builds(lambda f, op, p: f"{f} {op} '{p}'", st.sampled_from(_STRING_FIELDS),
                     st.sampled_from(["LIKE", "ILIKE"]), st.sampled_from(_PATTERNS))
    null = st.builds(lambda f, op: f"{f} {op}", st.sampled_from([f for f in _STRING_FIELDS if "attributes" not in f]),
                     st.sampled_from(["IS NULL", "IS NOT NULL"]))
    metric = st.builds(lambda f, op, v: f"{f} {op} {v}", st.sampled_from(["metrics.acc", "metrics.loss"]),
                       st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.sampled_from(_NUMBERS))
    status = st.builds(lambda op, v: f"attributes.status {op} '{v}'", st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
                       st.sampled_from(["FINISHED", "FAILED", "KILLED", "RUNNING", "finished", "F%"]))
    return st.one_of(string_cmp, like, null, metric, status)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clauses=st.lists(_clause(), min_size=1, max_size=3))
def test_generated_filters_find_what_mlflow_finds(world, clauses):
    text = " AND ".join(clauses)
    expected = mlflow_names(world, text)
    if isinstance(expected, str):  # not MLflow's dialect after all: git-prov's answer is not compared
        return
    assert prov_names(world, text) == expected, text


def test_extensions_mlflow_refuses_still_work(world):
    """git-prov's extensions: or, not, parentheses, numeric params, regular expressions."""
    assert isinstance(mlflow_names(world, "params.opt = 'adam' OR params.opt = 'sgd'"), str)
    assert prov_names(world, "params.opt = 'adam' or params.opt = 'sgd'") == {"train-a", "Train-C"}
    assert prov_names(world, "not (tags.team = 'nlp') and params.lr > 0.01") == {"train_b"}
    assert prov_names(world, "name ~ '^eval'") == {"eval%1", "eval-2"}
    assert isinstance(mlflow_names(world, "attributes.status IN ('FINISHED', 'KILLED')"), str)
    assert prov_names(world, "attributes.status IN ('FINISHED', 'KILLED')") == {"train-a", "train_b", "eval%1", "eval-2"}
    assert prov_names(world, "attributes.status NOT IN ('FINISHED')") == {"Train-C", "eval%1", "sweep.1", "live"}
    assert prov_names(world, "params.batch >= 64") == {"train_b", "eval-2"}


@pytest.mark.parametrize("text", ["attributes.artifact_uri = 'x'",
                                  "datasets.name = 'train'", "metrics.acc LIKE '0.%'"])
def test_what_has_no_meaning_here_is_an_error_not_an_empty_answer(world, text):
    answer = prov_names(world, text)
    assert isinstance(answer, str) and "\n" not in answer, answer


def test_no_mlruns_left_in_the_work_tree(world):
    repo = world[0]
    assert not os.path.exists(os.path.join(repo.work_tree, "mlruns"))


@pytest.mark.parametrize("order", [["metrics.acc DESC"], ["metric.acc"], ["attributes.run_name"],
                                   ["attributes.run_name DESC"], ["params.opt DESC"], ["tags.team", "run_name"]])
def test_the_same_order_as_mlflow(world, order):
    repo, client, experiments, ids = world
    names = {run_id: name for name, run_id in ids.items()}
    theirs = [names[r.data.tags["prov.run_id"]] for r in client.search_runs(experiments, order_by=order)]
    assert [names[r.id] for r in repo.find_runs(order_by=order)] == theirs
