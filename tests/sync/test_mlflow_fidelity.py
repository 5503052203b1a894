"""What MLflow shows of prov runs, read back only with MLflow's own client and REST API
from a real ``mlflow server``: wrapper runs nested in one experiment, the run's user,
dataset sources, models by name with their versions (and registered on request), a
server that goes away, and nothing left in the work tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

import gitprov
from gitprov.sync import sync_status

pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

REMOTE = "https://example.com/team/demo.git"


def prov(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitprov.cli.entry", *args], cwd=cwd, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def rest(url: str, endpoint: str, body: dict, method: str = "POST") -> dict:
    """MLflow's REST API: a POST with a JSON body, or a GET with ``body`` as the query."""
    if method == "GET":
        from urllib.parse import urlencode

        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}?{urlencode(body)}")
    else:
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def porcelain(path: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=path, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.slow
def test_wrapper_runs_models_and_datasets_as_mlflow_shows_them(prov_path: Path, mlflow_server) -> None:
    git = ["git", "-C", str(prov_path)]
    subprocess.run([*git, "remote", "add", "origin", REMOTE], check=True)
    (prov_path / "data.csv").write_text("x,y\n1,2\n")
    (prov_path / "child.py").write_text(textwrap.dedent("""
        import gitprov

        repo = gitprov.Repository(".")
        with repo.start_run("train", "baseline", {"lr": 0.1}) as run:
            run.log_dataset_version("train", "data.csv")
            run.log_dataset_version("raw", "s3://bucket/raw.csv?versionId=7")
            run.log_metric("loss", 0.5)
            gitprov.lineage.of(run).with_output_model("classifier", "1").register()
        with repo.start_run("tune", "baseline") as run:
            gitprov.lineage.of(run).with_input_model("classifier", "1").with_output_model("classifier", "2").register()
    """))
    subprocess.run([*git, "add", "data.csv", "child.py", ".provenance-schema"], check=True)
    subprocess.run([*git, "commit", "-qm", "data and training"], check=True)
    wrapped = prov(prov_path, "run", "--experiment", "nightly", "--", sys.executable, "child.py")
    assert wrapped.returncode == 0, wrapped.stderr
    repo = gitprov.Repository(prov_path)
    runs = {r.name: r for r in repo.find_runs()}
    wrapper = next(r for r in runs.values() if r.name not in ("train", "tune"))
    assert runs["train"].record.parent == runs["tune"].record.parent == wrapper.id

    server = mlflow_server()
    done = prov(prov_path, "sync", "mlflow", "--tracking-uri", server.url, "--register-models", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"synced": 3}
    assert porcelain(prov_path) == ""  # no mlruns/, mlflow.db or anything else left in the work tree

    c = MlflowClient(tracking_uri=server.url)
    exps = [e.experiment_id for e in c.search_experiments()]
    remote = {r.data.tags["prov.run_id"]: r for r in c.search_runs(exps)}
    parent, train, tune = (remote[r.id] for r in (wrapper, runs["train"], runs["tune"]))
    # one experiment, so MLflow's UI nests the children under the wrapper run
    assert train.info.experiment_id == tune.info.experiment_id == parent.info.experiment_id
    assert c.get_experiment(parent.info.experiment_id).name == "nightly"
    assert train.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert train.data.tags["prov.experiment"] == "baseline"
    user = runs["train"].record.user
    assert user and train.info.user_id == user == train.data.tags["mlflow.user"]
    # the REST API agrees
    got = rest(server.url, "runs/search", {"experiment_ids": [parent.info.experiment_id],
                                           "filter": f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"})
    assert sorted(r["info"]["run_name"] for r in got["runs"]) == ["train", "tune"]
    assert {r["info"]["user_id"] for r in got["runs"]} == {user}

    # dataset inputs carry where the data is: the repository, its commit and the path
    inputs = {d.dataset.name: d.dataset for d in c.get_run(train.info.run_id).inputs.dataset_inputs}
    commit = runs["train"].record.code.commit
    assert (inputs["train"].source_type, json.loads(inputs["train"].source)) == (
        "git", {"uri": REMOTE, "revision": commit, "path": "data.csv"})
    assert (inputs["raw"].source_type, json.loads(inputs["raw"].source)) == (
        "s3", {"uri": "s3://bucket/raw.csv?versionId=7"})

    # one model name, its versions: found by MLflow's search on the name
    models = c.search_logged_models(exps, filter_string="name = 'classifier'")
    assert sorted(m.tags["prov.model.version"] for m in models) == ["1", "2"]
    by_version = {m.tags["prov.model.version"]: m for m in models}
    assert by_version["1"].tags["prov.model.produced_by"] == train.info.run_id
    # and registered: one registered model, a version per prov version, linked to its producer
    [registered] = c.search_registered_models("name = 'classifier'")
    versions = {v.tags["prov.model.version"]: v for v in c.search_model_versions("name = 'classifier'")}
    assert set(versions) == {"1", "2"}
    assert versions["1"].run_id == train.info.run_id and versions["2"].run_id == tune.info.run_id
    assert versions["2"].source == f"models:/{by_version['2'].model_id}"
    got = rest(server.url, "registered-models/get", {"name": "classifier"}, "GET")
    assert got["registered_model"]["name"] == registered.name == "classifier"

    again = prov(prov_path, "sync", "mlflow", "--tracking-uri", server.url, "--register-models", "--json")
    assert json.loads(again.stdout)["counts"] == {"unchanged": 3}
    shutil.rmtree(prov_path / ".git" / "prov" / "sync")  # state lost: versions are found, not made twice
    again = prov(prov_path, "sync", "mlflow", "--tracking-uri", server.url, "--register-models", "--json")
    assert again.returncode == 0, again.stderr
    assert len(c.search_model_versions("name = 'classifier'")) == 2
    assert len(c.search_logged_models(exps, filter_string="name = 'classifier'")) == 2

    # the server goes away: the next sync stops at once with one line, exit 10
    server.kill()
    with repo.start_run("late") as run:
        run.log_metric("loss", 1.0)
    down = prov(prov_path, "sync", "mlflow", "--tracking-uri", server.url, "--retries", "1")
    assert down.returncode == 10 and down.stdout == "", down
    assert down.stderr.startswith(f"prov: error: cannot reach MLflow at {server.url}: connection refused (2 tries")
    assert len(down.stderr.splitlines()) == 1
    [status] = sync_status(repo, "mlflow")
    assert status.pending == [run.id] and not status.failed


def test_a_default_store_lives_under_git_prov(prov_path: Path, make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id = make_run(prov_path)
    subprocess.run(["git", "-C", str(prov_path), "add", ".provenance-schema"], check=True)
    subprocess.run(["git", "-C", str(prov_path), "commit", "-qm", "schema"], check=True)
    done = prov(prov_path, "sync", "mlflow")
    assert done.returncode == 0, done.stderr
    home = prov_path / ".git" / "prov" / "mlflow"
    assert f"sqlite:///{home / 'mlflow.db'}" in done.stdout
    assert porcelain(prov_path) == ""
    c = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    [remote] = c.search_runs([c.get_experiment_by_name("Default").experiment_id])
    assert remote.data.tags["prov.run_id"] == run_id
    assert remote.info.artifact_uri.startswith(str(home / "mlruns"))
    assert [f.path for f in c.list_artifacts(remote.info.run_id)] == ["model"]

    # a database the user puts in the work tree is theirs; its artifacts still stay out
    done = prov(prov_path, "sync", "mlflow", "--tracking-uri", "sqlite:///mine.db")
    assert done.returncode == 0, done.stderr
    assert porcelain(prov_path) == "?? mine.db\n"


def test_a_tracking_uri_set_in_the_process_is_used(prov_path: Path, mlflow_db: Path, make_run,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from gitprov.sync import sync_mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id = make_run(prov_path)
    previous = mlflow.get_tracking_uri() if mlflow.tracking._tracking_service.utils.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_db}")
    try:
        report = sync_mlflow(gitprov.Repository(prov_path))
    finally:
        mlflow.tracking._tracking_service.utils._tracking_uri = previous
    assert report.target == f"sqlite:///{mlflow_db}" and [r.status for r in report.results] == ["synced"]
    c = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    assert [r.data.tags["prov.run_id"] for r in c.search_runs(["0"])] == [run_id]
