"""Models logged through git-prov arrive in MLflow as real MLflow models: loaded back with
MLflow's own ``mlflow.pyfunc.load_model`` / ``mlflow.sklearn.load_model`` from a real
``mlflow server`` by ``models:/<name>/<version>`` and ``runs:/<run id>/<name>``, laid out
as MLflow's own ``log_model`` lays them out. And children an older git-prov synced outside
their parent's experiment are moved there."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import gitprov
from gitprov.sync import sync_mlflow

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
import yaml  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from gitprov.sync.mlflow_bridge import MlflowBridge  # noqa: E402


class Doubler:
    """A model that is no scikit-learn estimator: pickled, with a predict method."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["x1"].to_numpy() * self.factor


def prov(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gitprov.cli.entry", *args], cwd=cwd, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def commit_schema(path: Path) -> None:
    subprocess.run(["git", "-C", str(path), "add", ".provenance-schema"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "schema"], check=True)


@pytest.fixture
def global_uri(monkeypatch: pytest.MonkeyPatch):
    """Point MLflow's process-wide tracking URI (what ``load_model`` uses) somewhere, then
    back; ``set_tracking_uri`` also exports it to the environment, which later tests' child
    processes would inherit, so the variables are put back too."""
    tracking, registry = mlflow.tracking._tracking_service.utils, mlflow.tracking._model_registry.utils
    previous = tracking._tracking_uri, registry._registry_uri
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(var, os.environ.get(var, ""))  # remembered, and restored after the test
        if not os.environ[var]:
            monkeypatch.delenv(var)

    def use(uri: str) -> None:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)

    yield use
    tracking._tracking_uri, registry._registry_uri = previous


def training_data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x1": rng.normal(size=60), "x2": rng.normal(size=60)})
    return frame, (frame["x1"] + 0.5 * frame["x2"] > 0).astype(int).to_numpy()


@pytest.mark.slow

def _forget_in_state(prov_path: Path, *keys: str) -> None:
    """The local sync state as an older git-prov left it: its entries without ``keys``."""
    [state_file] = (prov_path / ".git" / "prov" / "sync").glob("mlflow-*.sqlite")
    with contextlib.closing(sqlite3.connect(state_file)) as db, db:
        rows = db.execute("SELECT run, entry FROM runs").fetchall()
        assert rows
        for run, text in rows:
            entry = json.loads(text)
            assert "layout" in entry
            for key in keys:
                entry.pop(key, None)
            db.execute("UPDATE runs SET entry = ? WHERE run = ?", (json.dumps(entry), run))

def test_logged_models_load_back_from_a_server_by_name_version_and_run(
        prov_path: Path, tmp_path: Path, mlflow_server, global_uri) -> None:
    commit_schema(prov_path)
    frame, labels = training_data()
    clf = LogisticRegression().fit(frame, labels)
    pinned = f"scikit-learn=={sklearn.__version__}"
    repo = gitprov.Repository(prov_path)
    with repo.start_run("train", environment=True) as train:
        train.log_schema({"x1": "float", "x2": "float"}, {"y": "int"})
        info = train.log_model(clf, requirements=[pinned], name="iris-clf", version="1")
    assert info["framework"] == "sklearn" and info["predict"] is True
    # version 2: the same kind of model handed over as a pickle file the user wrote
    clf2 = LogisticRegression(C=0.1).fit(frame, labels)
    (tmp_path / "clf2.pkl").write_bytes(pickle.dumps(clf2))
    with repo.start_run("retrain") as retrain:
        retrain.log_model(str(tmp_path / "clf2.pkl"), framework="sklearn", name="iris-clf", version="2")
    with repo.start_run("double") as double:
        double.log_model(Doubler(2.0), signature={"input": [{"name": "x1", "type": "double"}]}, name="doubler",
                         version="1")

    server = mlflow_server()
    done = prov(prov_path, "sync", "mlflow", "--tracking-uri", server.url, "--register-models", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == {"synced": 3}
    c = MlflowClient(tracking_uri=server.url)
    global_uri(server.url)
    remote = {r.data.tags["prov.run_id"]: r.info.run_id
              for r in c.search_runs([e.experiment_id for e in c.search_experiments()])}

    # by the registry: models:/<name>/<version>, predictions equal the trained model's. MLflow
    # numbers versions as they are registered (runs sync in parallel); the alias is git-prov's
    numbers = {v.tags["prov.model.version"]: v.version for v in c.search_model_versions("name = 'iris-clf'")}
    assert sorted(numbers.values()) == ["1", "2"]
    assert c.get_model_version_by_alias("iris-clf", "1").version == numbers["1"]
    expected = clf.predict(frame)
    loaded = mlflow.pyfunc.load_model(f"models:/iris-clf/{numbers['1']}")
    assert (np.asarray(loaded.predict(frame)) == expected).all()
    assert (np.asarray(mlflow.pyfunc.load_model("models:/iris-clf@1").predict(frame)) == expected).all()
    assert loaded.metadata.signature.inputs.input_names() == ["x1", "x2"]
    assert loaded.metadata.metadata["prov.run_id"] == train.id
    # by the run that made it: runs:/<MLflow run id>/<model name>
    by_run = mlflow.pyfunc.load_model(f"runs:/{remote[train.id]}/iris-clf")
    assert (np.asarray(by_run.predict(frame)) == expected).all()
    # MLflow's sklearn flavor gives the estimator itself
    estimator = mlflow.sklearn.load_model("models:/iris-clf@2")
    assert isinstance(estimator, LogisticRegression)
    assert np.allclose(estimator.predict_proba(frame), clf2.predict_proba(frame))
    assert not np.allclose(clf.predict_proba(frame), clf2.predict_proba(frame))  # two versions, two models
    # a pickled object that is no estimator: the python_function flavor, without git-prov
    doubler = mlflow.pyfunc.load_model(f"runs:/{remote[double.id]}/doubler")
    assert np.allclose(doubler.predict(frame[["x1"]]), frame["x1"] * 2.0)
    assert mlflow.pyfunc.load_model("models:/doubler/1").metadata.get_input_schema().input_names() == ["x1"]

    # the layout is the one mlflow.sklearn.log_model writes, plus git-prov's record
    model_id = c.get_model_version("iris-clf", numbers["1"]).source.removeprefix("models:/")
    ours = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=str(tmp_path / "ours")))
    theirs = tmp_path / "theirs"
    mlflow.sklearn.save_model(clf, str(theirs), serialization_format="pickle", pip_requirements=[pinned])
    # (registered_model_meta: what MLflow's download of any models:/ URI adds on the caller's side)
    assert sorted(set(os.listdir(ours)) - {"registered_model_meta"}) == sorted([*os.listdir(theirs), "prov_model.json"])
    mine, model = (yaml.safe_load((d / "MLmodel").read_text()) for d in (ours, theirs))
    assert {k: sorted(v) for k, v in mine["flavors"].items()} == {k: sorted(v) for k, v in model["flavors"].items()}
    assert mine["flavors"]["sklearn"]["sklearn_version"] == sklearn.__version__
    assert mine["model_id"] == model_id and mine["run_id"] == remote[train.id]
    # the model's bytes are git-prov's: same sha256 as recorded
    assert hashlib.sha256((ours / "model.pkl").read_bytes()).hexdigest() == info["sha256"].split(":")[-1]
    assert (ours / "requirements.txt").read_text().splitlines() == [f"mlflow=={mlflow.__version__}", pinned]
    deps = mlflow.pyfunc.get_model_dependencies(f"models:/iris-clf/{numbers['1']}")
    assert pinned in Path(deps).read_text().splitlines()
    env = yaml.safe_load((ours / "python_env.yaml").read_text())
    recorded = repo.get_run(train.id).record
    assert env["python"] == recorded.environment.python_version
    assert f"python={recorded.environment.python_version}" in yaml.safe_load(
        (ours / "conda.yaml").read_text())["dependencies"]
    # the model is the logged model, not also a run artifact (as MLflow 3's log_model)
    assert "model" not in {f.path for f in c.list_artifacts(remote[train.id])}

    again = prov(prov_path, "sync", "mlflow", "--tracking-uri", server.url, "--register-models", "--json")
    assert json.loads(again.stdout)["counts"] == {"unchanged": 3}


def test_a_model_synced_without_mlmodel_gets_one_on_the_next_sync(prov_path: Path, mlflow_db: Path, tmp_path: Path,
                                                                  global_uri) -> None:
    """A model an older git-prov synced (no MLmodel, no layout in the local state) is laid
    out again once; after that the run is unchanged."""
    frame, labels = training_data()
    clf = LogisticRegression().fit(frame, labels)
    repo = gitprov.Repository(prov_path)
    with repo.start_run("train", environment=False) as run:
        run.log_model(clf, name="clf", version="1")
    uri = f"sqlite:///{mlflow_db}"
    sync_mlflow(repo, uri, artifact_location=str(tmp_path / "artifacts"))
    c = MlflowClient(tracking_uri=uri)
    [model] = c.search_logged_models([e.experiment_id for e in c.search_experiments()])
    # what an older git-prov left: no MLmodel, and a local state without the layout
    local = Path(model.artifact_location.removeprefix("file://"))
    (local / "MLmodel").unlink()
    _forget_in_state(prov_path, "layout", "model_files")
    global_uri(uri)
    with pytest.raises(Exception, match="MLmodel"):
        mlflow.pyfunc.load_model(f"models:/{model.model_id}")

    report = sync_mlflow(repo, uri, artifact_location=str(tmp_path / "artifacts"))
    [result] = report.results
    assert result.status == "synced" and result.written == {"model_files": 1}
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert (np.asarray(loaded.predict(frame)) == clf.predict(frame)).all()
    assert [r.status for r in sync_mlflow(repo, uri, artifact_location=str(tmp_path / "artifacts")).results] == [
        "unchanged"]


def test_a_cloudpickled_object_loads_where_its_class_cannot_be_imported(prov_path: Path, mlflow_db: Path,
                                                                        tmp_path: Path, global_uri) -> None:
    """Bytes made by cloudpickle (a class defined in a function, pickled by value) get the
    python_function flavor and cloudpickle in their requirements; MLflow loads and runs them."""
    import cloudpickle

    class Shift:  # not importable: only cloudpickle can carry it
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return frame["x1"].to_numpy() + 1.0

    repo = gitprov.Repository(prov_path)
    with repo.start_run("shift", environment=False) as run:
        info = run.log_model(cloudpickle.dumps(Shift()), requirements=["pandas"], name="shift", version="1")
    assert info["format"] == "bytes"
    uri = f"sqlite:///{mlflow_db}"
    assert sync_mlflow(repo, uri, artifact_location=str(tmp_path / "artifacts")).counts() == {"synced": 1}
    c = MlflowClient(tracking_uri=uri)
    [remote] = c.search_runs(["0"])
    global_uri(uri)
    frame, _ = training_data()
    loaded = mlflow.pyfunc.load_model(f"runs:/{remote.info.run_id}/shift")
    assert np.allclose(loaded.predict(frame), frame["x1"] + 1.0)
    assert loaded.metadata.flavors["python_function"]["loader_module"] == "prov_pickled_model"
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{remote.info.run_id}/shift", dst_path=str(tmp_path)))
    assert (folder / "requirements.txt").read_text().splitlines() == [
        f"mlflow=={mlflow.__version__}", "pandas", "cloudpickle"]
    assert sorted(p.name for p in (folder / "code").iterdir()) == ["prov_pickled_model.py"]
    assert not any("gitprov" in line for line in (folder / "code" / "prov_pickled_model.py").read_text().splitlines()
                   if line.startswith(("import", "from")))


def test_a_models_producer_is_synced_before_its_consumers(prov_path: Path, mlflow_db: Path, tmp_path: Path,
                                                         global_uri) -> None:
    """MLflow fixes a logged model's source run when the model is made, by whichever run
    links it first: the producer goes first, even when the consumer is the older run."""
    repo = gitprov.Repository(prov_path)
    with repo.start_run("evaluate", environment=False) as consumer:  # older, and listed first
        gitprov.lineage.of(consumer).with_input_model("shift", "1").register()
    with repo.start_run("train", environment=False) as producer:
        producer.log_model(Doubler(3.0), name="shift", version="1")
    uri = f"sqlite:///{mlflow_db}"
    report = sync_mlflow(repo, uri, artifact_location=str(tmp_path / "artifacts"), workers=1)
    assert [r.run_id for r in report.results] == [producer.id, consumer.id]
    c = MlflowClient(tracking_uri=uri)
    remote = {r.data.tags["prov.run_id"]: r.info.run_id for r in c.search_runs(["0"])}
    [model] = c.search_logged_models(["0"], filter_string="name = 'shift'")
    assert model.source_run_id == remote[producer.id]
    global_uri(uri)
    frame, _ = training_data()
    assert np.allclose(mlflow.pyfunc.load_model(f"runs:/{remote[producer.id]}/shift").predict(frame),
                       frame["x1"] * 3.0)
    assert [m.model_id for m in c.get_run(remote[consumer.id]).inputs.model_inputs] == [model.model_id]


def test_pickles_are_recognised_without_loading_and_signatures_map_to_mlflows() -> None:
    from mlflow.models.signature import ModelSignature

    from gitprov.sync.mlflow_model import is_pickle, mlflow_signature

    data = pickle.dumps({"w": [1, 2]}, protocol=4)
    assert is_pickle(data) and is_pickle(pickle.dumps(3, protocol=2))
    assert not is_pickle(data[:-1]) and not is_pickle(data + b"trailing.") and not is_pickle(b"\x80\x04garbage.")
    assert not is_pickle(b"PK\x03\x04 a zip, a torch.save file") and not is_pickle(b"")
    got = mlflow_signature({"input": {"x": "float", "n": "int", "s": "str"}, "output": [{"name": "y", "type": "bool"}]})
    assert got.to_dict() == ModelSignature.from_dict(got.to_dict()).to_dict()
    assert [(c.name, c.type.name) for c in got.inputs.inputs] == [("x", "double"), ("n", "long"), ("s", "string")]
    assert [(c.name, c.type.name) for c in got.outputs.inputs] == [("y", "boolean")]
    assert mlflow_signature({"input": {"x": "float32"}}).outputs is None
    assert mlflow_signature(got.to_dict()).to_dict() == got.to_dict()  # MLflow's own form, as it is
    for unmapped in ({"input": {"x": "tensor<3>"}}, {"input": {"x": "float"}, "output": {"y": 3}}, {"input": 5},
                     ["x"], None, {"inputs": "not json"}):
        assert mlflow_signature(unmapped) is None


@pytest.mark.slow
def test_a_child_synced_outside_its_parents_experiment_moves_there(prov_path: Path, mlflow_db: Path, tmp_path: Path,
                                                                   make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Older git-prov put a child run in its own experiment, where MLflow's UI cannot nest
    it. The next sync makes it again in the parent's experiment, tags the old run with
    ``prov.moved_to`` and deletes it (restorable), and says so once."""
    commit_schema(prov_path)
    parent = make_run(prov_path, "pipeline", experiment="nightly", points=2)
    child = make_run(prov_path, "train", experiment="baseline", points=3, parent=parent)
    uri = f"sqlite:///{mlflow_db}"
    options = {"artifact_location": str(tmp_path / "artifacts")}
    repo = gitprov.Repository(prov_path)
    with monkeypatch.context() as older:  # how an older git-prov placed children, and its local state
        older.setattr(MlflowBridge, "parent_experiment", lambda self, source: None)
        assert sync_mlflow(repo, uri, **options).counts() == {"synced": 2}
    _forget_in_state(prov_path, "layout", "experiment")
    c = MlflowClient(tracking_uri=uri)
    nightly, baseline = (c.get_experiment_by_name(n).experiment_id for n in ("nightly", "baseline"))
    [old] = c.search_runs([baseline])
    [parent_remote] = c.search_runs([nightly])
    assert old.data.tags["mlflow.parentRunId"] == parent_remote.info.run_id  # linked, but not nested in the UI

    done = prov(prov_path, "sync", "mlflow", "--tracking-uri", uri, "--artifact-location", options["artifact_location"],
                "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    moved = next(r for r in report["runs"] if r["run_id"] == child)
    assert moved["status"] == "synced" and moved["written"]["moved"] == 1
    [warning] = report["warnings"]
    assert warning.startswith("1 child run(s) an older git-prov synced outside their parent's MLflow experiment")
    assert done.stderr.count("prov: warning:") == 1 and old.info.run_id in done.stderr
    # the child is now in the parent's experiment, nested, with everything it held
    [new] = [r for r in c.search_runs([nightly]) if r.data.tags["prov.run_id"] == child]
    assert new.data.tags["mlflow.parentRunId"] == parent_remote.info.run_id
    assert new.info.run_id == moved["external_id"] != old.info.run_id
    assert [m.value for m in c.get_metric_history(new.info.run_id, "loss")] == [1.0, 0.5, 1 / 3]
    assert new.data.params == old.data.params and new.info.start_time == old.info.start_time
    assert [f.path for f in c.list_artifacts(new.info.run_id)] == ["model"]
    assert [d.dataset.name for d in new.inputs.dataset_inputs] == ["train"]
    # the old one is deleted (MLflow can restore it) and says where its run went
    gone = c.get_run(old.info.run_id)
    assert gone.info.lifecycle_stage == "deleted" and gone.data.tags["prov.moved_to"] == new.info.run_id
    assert c.search_runs([baseline]) == []

    again = sync_mlflow(repo, uri, **options)  # said once: nothing moves twice
    assert again.counts() == {"unchanged": 2} and again.warnings == []
    shutil.rmtree(prov_path / ".git" / "prov" / "sync")  # state lost: the moved run is found, not made again
    lost = sync_mlflow(repo, uri, **options)
    assert lost.warnings == [] and {r.external_id for r in lost.results} == {
        parent_remote.info.run_id, new.info.run_id}
    assert len(c.search_runs([nightly])) == 2
