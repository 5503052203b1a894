"""MLflow bridge against a real sqlite store: round trip, idempotence, increments, recovery."""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path

import pytest

import gitprov
from gitprov.sync import sync_mlflow
from gitprov.sync.bridge import canonical_value, millis
from gitprov.sync.keymap import mlflow_key
from gitprov.sync.mlflow_changes import clip

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402


def client(db: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{db}")


def external_runs(db: Path, prov_run_id: str) -> list:
    c = client(db)
    exps = [e.experiment_id for e in c.search_experiments()]
    return list(c.search_runs(exps, filter_string=f"tags.`prov.run_id` = '{prov_run_id}'"))


def table_rows(db: Path) -> dict[str, list]:
    """Every row the tracker holds for runs (to prove a re-sync writes nothing)."""
    con = sqlite3.connect(db)
    try:
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall()))
                for t in ("runs", "params", "tags", "metrics", "latest_metrics", "inputs", "datasets",
                          "logged_models", "logged_model_tags")}
    finally:
        con.close()


def do_sync(repo: Path, db: Path, tmp: Path, **options):
    return sync_mlflow(gitprov.Repository(repo), f"sqlite:///{db}", artifact_location=str(tmp / "artifacts"), **options)


def assert_mirrors(repo: Path, db: Path, run_id: str, tmp: Path) -> None:
    """The MLflow run holds exactly what the prov run holds."""
    run = gitprov.Repository(repo).get_run(run_id)
    [remote] = external_runs(db, run_id)
    c = client(db)
    assert remote.info.start_time == millis(run.record.created)
    assert remote.info.end_time == millis(run.state.ended)
    assert remote.info.status == {"finished": "FINISHED", "failed": "FAILED"}[run.status]
    assert remote.info.run_name == run.name
    expected_params = {mlflow_key(k): clip(canonical_value(v), 6000) for k, v in run.get_hyperparameters().items()}
    assert remote.data.params == expected_params
    for key in run.get_metric_keys():
        local = run.get_metric_history(key)
        history = sorted(c.get_metric_history(remote.info.run_id, mlflow_key(key)), key=lambda m: (m.timestamp, m.step))
        assert [(m.step, m.timestamp) for m in history] == [(p.step, p.timestamp) for p in local]
        for m, p in zip(history, local, strict=True):
            # MLflow keeps NaN, and stores ±inf as ±max float
            expected = math.copysign(1.7976931348623157e308, p.value) if math.isinf(p.value) else p.value
            assert m.value == expected or (math.isnan(m.value) and math.isnan(p.value))
    tags = remote.data.tags
    for key, value in run.get_tags().items():
        assert tags[mlflow_key(key)] == value
    assert tags["mlflow.source.git.commit"] == run.record.code.commit
    assert tags["mlflow.source.git.dirty"] == ("true" if run.record.code.is_dirty else "false")
    assert tags["prov.status"] == run.status
    assert tags["prov.attribute.notes"] == '{"seed":7}'
    for key in run.get_artifact_keys():
        out = c.download_artifacts(remote.info.run_id, key, str(tmp / f"dl-{run_id[:8]}"))
        assert Path(out).read_bytes() == run.get_artifact(key)
    datasets = {d.dataset.name: d.dataset for d in remote.inputs.dataset_inputs}
    for key, version in run.get_dataset_versions().items():
        assert datasets[key].digest == version.digest.split(":")[-1][:36]
        assert version.digest in datasets[key].profile


def test_round_trip(prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    first = make_run(prov_path, "base", experiment="exp-a", params={"lr": 0.1, "opt": {"name": "sgd"}, "long": "x" * 7000},
                     tags={"team": "vision", "bad key?": "yes"})
    child = gitprov.Repository(prov_path).get_run(first).clone(full=False)  # its own points only
    child.log_metric("loss", float("nan"), step=3, timestamp=1_700_000_100)
    child.log_metric("loss", float("inf"), step=4, timestamp=1_700_000_101)
    child.log_artifact("report.txt", b"report")
    child.end("failed")
    report = do_sync(prov_path, mlflow_db, tmp_path, workers=2)
    assert [r.status for r in report.results] == ["synced", "synced"], report.to_json()
    base_remote = external_runs(mlflow_db, first)[0]
    assert base_remote.data.params["long"].startswith("x" * 5000) and len(base_remote.data.params["long"]) == 6000
    assert base_remote.data.tags["bad key_x3f"] == "yes"
    [child_remote] = external_runs(mlflow_db, child.id)
    assert child_remote.data.tags["mlflow.parentRunId"] == base_remote.info.run_id
    assert child_remote.data.tags["prov.parent_run_id"] == first
    assert client(mlflow_db).get_experiment(base_remote.info.experiment_id).name == "exp-a"
    history = client(mlflow_db).get_metric_history(child_remote.info.run_id, "loss")
    assert math.isnan(history[0].value) and history[1].value > 1e300  # MLflow stores +inf as max float
    assert len(gitprov.Repository(prov_path).get_run(first).get_hyperparameter("long")) == 7000
    assert base_remote.data.params["opt"] == '{"name":"sgd"}'
    assert_mirrors(prov_path, mlflow_db, first, tmp_path)
    assert_mirrors(prov_path, mlflow_db, child.id, tmp_path)


def test_resync_writes_nothing_and_increments_write_only_what_is_new(
        prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    ids = [make_run(prov_path, f"r{i}", points=30) for i in range(3)]
    report = do_sync(prov_path, mlflow_db, tmp_path, workers=3)
    assert {r.status for r in report.results} == {"synced"}
    for run_id in ids:
        assert_mirrors(prov_path, mlflow_db, run_id, tmp_path)
    before = table_rows(mlflow_db)
    again = do_sync(prov_path, mlflow_db, tmp_path)
    assert {r.status for r in again.results} == {"unchanged"} and all(not r.written for r in again.results)
    assert table_rows(mlflow_db) == before

    # a new run, and new points of an active run: only those are written
    repo = gitprov.Repository(prov_path)
    live = repo.start_run("live", environment=False)
    for i in range(1500):  # more than one log_batch
        live.log_metric("loss", float(i), step=i, timestamp=1_700_000_000 + i / 10)
    live.flush()
    new_id = make_run(prov_path, "new")
    report = do_sync(prov_path, mlflow_db, tmp_path)
    by_id = {r.run_id: r for r in report.results}
    assert by_id[new_id].status == "synced" and by_id[live.id].written["metrics"] == 1500
    assert {by_id[i].status for i in ids} == {"unchanged"}
    [remote] = external_runs(mlflow_db, live.id)
    assert remote.info.status == "RUNNING"
    for i in range(1500, 1700):
        live.log_metric("loss", float(i), step=i)
    live.end("finished")
    report = do_sync(prov_path, mlflow_db, tmp_path)
    by_id = {r.run_id: r for r in report.results}
    assert by_id[live.id].written == {"metrics": 200, "tags": 1, "status": 1}, by_id[live.id]
    [remote] = external_runs(mlflow_db, live.id)
    assert remote.info.status == "FINISHED"
    history = client(mlflow_db).get_metric_history(remote.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1700))
    assert_mirrors(prov_path, mlflow_db, new_id, tmp_path)


def test_a_resync_reads_only_the_runs_that_changed_a_page_at_a_time(
        prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitprov.runs.run import Run
    from gitprov.sync import engine

    ids = [make_run(prov_path, f"r{i}", points=2) for i in range(5)]
    do_sync(prov_path, mlflow_db, tmp_path)
    changed = make_run(prov_path, "new")
    loaded: list[str] = []
    real_load = Run.load.__func__

    def counting_load(cls, store, run_id, *args, **kwargs):
        loaded.append(run_id)
        return real_load(cls, store, run_id, *args, **kwargs)

    monkeypatch.setattr(Run, "load", classmethod(counting_load))
    monkeypatch.setattr(engine, "PAGE", 2)  # 6 runs in 3 pages
    report = do_sync(prov_path, mlflow_db, tmp_path, workers=2)
    assert loaded == [changed]  # the unchanged runs were decided from the local state alone
    assert [r.run_id for r in report.results if r.status == "unchanged"] == ids
    assert {r.run_id: r.status for r in report.results}[changed] == "synced"


def test_lost_local_state_finds_runs_by_tag(prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    ids = [make_run(prov_path, f"r{i}") for i in range(2)]
    do_sync(prov_path, mlflow_db, tmp_path)
    before = table_rows(mlflow_db)
    shutil.rmtree(prov_path / ".git" / "prov" / "sync")
    report = do_sync(prov_path, mlflow_db, tmp_path)
    # only artifacts are uploaded again (an overwrite); no run, param, metric or tag is added
    assert all(set(r.written) <= {"artifacts"} for r in report.results), report.to_json()
    assert table_rows(mlflow_db) == before
    for run_id in ids:
        assert len(external_runs(mlflow_db, run_id)) == 1


def test_lineage_models_become_logged_models_linked_as_inputs_and_outputs(
        prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    repo = gitprov.Repository(prov_path)
    train = repo.get_run(make_run(prov_path, "train", experiment="a"))
    gitprov.lineage.of(train).with_input_model("bert/base", "v3").with_output_model("clf", "1").register()
    evaluate = repo.get_run(make_run(prov_path, "eval", experiment="b"))
    gitprov.lineage.of(evaluate).with_input_model("clf", "1").with_input_model("tokenizer").register()
    report = do_sync(prov_path, mlflow_db, tmp_path)
    assert {r.written.get("models") for r in report.results} == {2}, report.to_json()

    c = client(mlflow_db)
    experiments = [e.experiment_id for e in c.search_experiments()]
    models = {(m.tags["prov.model.name"], m.tags["prov.model.version"]): m for m in c.search_logged_models(experiments)}
    assert set(models) == {("bert/base", "v3"), ("clf", "1"), ("tokenizer", "")}
    # search_runs leaves model inputs out: read the runs themselves
    train_remote, eval_remote = (c.get_run(external_runs(mlflow_db, r.id)[0].info.run_id) for r in (train, evaluate))
    # the producer is the source run when it made the model, and always in a tag
    assert models["clf", "1"].source_run_id in (None, train_remote.info.run_id)
    assert models["clf", "1"].tags["prov.model.produced_by"] == train_remote.info.run_id
    assert "prov.model.produced_by" not in models["tokenizer", ""].tags
    assert models["bert/base", "v3"].name == "bert_base"  # MLflow refuses '/' in model names
    # every version of a model carries the model's name: MLflow's search by name finds them
    assert [m.model_id for m in c.search_logged_models(experiments, filter_string="name = 'clf'")] == [
        models["clf", "1"].model_id]
    assert [m.model_id for m in train_remote.outputs.model_outputs] == [models["clf", "1"].model_id]
    assert {m.model_id for m in train_remote.inputs.model_inputs} == {models["bert/base", "v3"].model_id}
    assert {m.model_id for m in eval_remote.inputs.model_inputs} == {models["clf", "1"].model_id,
                                                                      models["tokenizer", ""].model_id}

    before = table_rows(mlflow_db)
    assert all(not r.written for r in do_sync(prov_path, mlflow_db, tmp_path).results)
    shutil.rmtree(prov_path / ".git" / "prov" / "sync")  # lost state: links are read back, not made twice
    report = do_sync(prov_path, mlflow_db, tmp_path)
    assert all("models" not in r.written for r in report.results), report.to_json()
    assert table_rows(mlflow_db) == before

    gitprov.lineage.of(evaluate).with_output_model("report", "2026-11").register()
    report = do_sync(prov_path, mlflow_db, tmp_path)
    assert {r.run_id: r.written.get("models") for r in report.results} == {train.id: None, evaluate.id: 1}
    assert len(c.search_logged_models(experiments)) == 4


def test_a_run_that_failed_half_way_is_completed_without_duplicates(
        prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitprov.sync.mlflow_bridge import MlflowBridge

    run_id = make_run(prov_path, "r", points=50)

    def broken(*_a, **_k):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(MlflowBridge, "_upload", broken)  # after params and metrics were written
    report = do_sync(prov_path, mlflow_db, tmp_path, retries=1, backoff=0.01)
    [result] = report.results
    assert result.status == "failed" and result.attempts == 2 and "connection refused" in result.error
    [status] = gitprov.sync.sync_status(gitprov.Repository(prov_path), "mlflow")
    assert status.failed and not status.synced
    monkeypatch.undo()
    report = do_sync(prov_path, mlflow_db, tmp_path)
    assert report.results[0].status == "synced"
    assert report.results[0].written.get("metrics", 0) == 0  # found the half-written run and its points
    assert_mirrors(prov_path, mlflow_db, run_id, tmp_path)
    [status] = gitprov.sync.sync_status(gitprov.Repository(prov_path), "mlflow")
    assert status.synced == [run_id] and not status.pending and not status.failed


def test_dry_run_writes_nothing(prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    make_run(prov_path)
    before = table_rows(mlflow_db)
    report = do_sync(prov_path, mlflow_db, tmp_path, dry_run=True)
    assert [r.status for r in report.results] == ["would-sync"]
    assert report.results[0].written["metrics"] == 10
    assert table_rows(mlflow_db) == before
    assert not (prov_path / ".git" / "prov" / "sync").exists() or not list((prov_path / ".git" / "prov" / "sync").glob("*.json"))


def test_deleted_runs_are_not_synced(prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    keep, gone = make_run(prov_path, "keep"), make_run(prov_path, "gone")
    gitprov.Repository(prov_path).get_run(gone).delete()
    report = do_sync(prov_path, mlflow_db, tmp_path)
    assert [r.run_id for r in report.results] == [keep]
    assert external_runs(mlflow_db, gone) == []


def test_observations_become_metrics_by_epoch_and_json_artifacts(prov_path: Path, mlflow_db: Path, tmp_path: Path) -> None:
    import json

    repo = gitprov.Repository(prov_path)
    live = repo.start_run("obs", environment=False)
    for epoch in range(3):
        live.log_observation("val loss", 1.0 / (epoch + 1), timestamp=1_700_000_000 + epoch)
        live.log_observation("confusion", {"tp": epoch, "fp": 1}, timestamp=1_700_000_000 + epoch)
    live.log_observation("val loss", "n/a", timestamp=1_700_000_010, epoch_num=7)  # not a number: JSON only
    live.flush()
    report = do_sync(prov_path, mlflow_db, tmp_path)
    assert report.results[0].written["observations"] == 2
    [remote] = external_runs(mlflow_db, live.id)
    c = client(mlflow_db)
    history = c.get_metric_history(remote.info.run_id, "obs/val loss")
    assert sorted((m.step, m.timestamp, m.value) for m in history) == [
        (o.epoch, o.timestamp, o.value) for o in live.get_observations("val loss")[:3]]
    assert "obs/confusion" not in remote.data.metrics

    def artifact(key: str) -> dict:
        path = c.download_artifacts(remote.info.run_id, f"prov/observations/{mlflow_key(key)}.json", str(tmp_path / "dl"))
        return json.loads(Path(path).read_text())

    assert artifact("confusion") == {"key": "confusion", "points": [
        {"epoch": o.epoch, "timestamp": o.timestamp, "value": o.value} for o in live.get_observations("confusion")]}
    assert artifact("val loss")["points"][-1] == {"epoch": 7, "timestamp": 1_700_000_010_000, "value": "n/a"}

    before = table_rows(mlflow_db)
    assert [r.status for r in do_sync(prov_path, mlflow_db, tmp_path).results] == ["unchanged"]
    assert table_rows(mlflow_db) == before
    live.log_observation("val loss", 0.1, timestamp=1_700_000_020)  # epoch 8
    live.end("finished")
    again = do_sync(prov_path, mlflow_db, tmp_path).results[0]
    assert again.written["observations"] == 1 and again.written["metrics"] == 1
    history = c.get_metric_history(remote.info.run_id, "obs/val loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 8]
    assert len(artifact("val loss")["points"]) == 5


def test_a_logged_model_becomes_a_logged_model_with_its_files_and_registers(
        prov_path: Path, mlflow_db: Path, tmp_path: Path) -> None:
    import pickle

    repo = gitprov.Repository(prov_path)
    with repo.start_run("train", environment=False) as run:
        run.log_model({"weights": [1, 2]}, framework="sklearn", requirements=["scikit-learn==1.5.0"],
                      name="classifier", version="1")
    folder = tmp_path / "tok"
    (folder / "sub").mkdir(parents=True)
    (folder / "vocab.txt").write_text("a\nb\n")
    (folder / "sub" / "merges.txt").write_text("ab\n")
    with repo.start_run("tokenizer", environment=False) as tok:
        tok.log_model(str(folder), name="tokenizer", version="7")
        tok.log_artifact("notes", str(folder))  # a directory artifact: a tree of files in MLflow too
    report = do_sync(prov_path, mlflow_db, tmp_path, register_models=True)
    assert {r.status for r in report.results} == {"synced"}, [r.error for r in report.results]

    c = client(mlflow_db)
    exps = [e.experiment_id for e in c.search_experiments()]
    [model] = c.search_logged_models(exps, filter_string="name = 'classifier'")
    assert model.model_type == "sklearn" and model.params["prov.model.version"] == "1"
    assert model.tags["prov.model.format"] == "pickle"
    files = sorted(f.path for f in c.list_logged_model_artifacts(model.model_id))
    assert files == ["MLmodel", "conda.yaml", "model.pkl", "prov_model.json", "python_env.yaml", "requirements.txt"]
    # a dict has no predict: the sklearn flavor only (mlflow.sklearn.log_model does the same)
    assert model.tags["prov.model.flavors"] == "sklearn"
    local = mlflow.artifacts.download_artifacts(f"{model.artifact_location}/model.pkl", dst_path=str(tmp_path / "dl"))
    assert pickle.loads(Path(local).read_bytes()) == {"weights": [1, 2]}
    [version] = c.search_model_versions("name = 'classifier'")
    assert version.source == f"models:/{model.model_id}" and version.tags["prov.model.version"] == "1"
    assert version.run_id == external_runs(mlflow_db, run.id)[0].info.run_id

    [tokenizer] = c.search_logged_models(exps, filter_string="name = 'tokenizer'")
    assert sorted(f.path for f in c.list_logged_model_artifacts(tokenizer.model_id, "model")) == [
        "model/sub", "model/vocab.txt"]
    assert "MLmodel" in {f.path for f in c.list_logged_model_artifacts(tokenizer.model_id)}
    assert "prov.model.flavors" not in tokenizer.tags  # a directory: downloadable, no flavor loads it
    remote = external_runs(mlflow_db, tok.id)[0].info.run_id
    assert sorted(f.path for f in c.list_artifacts(remote, "notes")) == ["notes/sub", "notes/vocab.txt"]
    assert [f.path for f in c.list_artifacts(remote, "notes/sub")] == ["notes/sub/merges.txt"]
