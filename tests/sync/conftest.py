"""Fixtures for the sync tests: prov repositories with runs, MLflow stores and servers."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _harness import MlflowServer  # noqa: E402  (shared with benchmarks/bench_sync.py)

import gitprov


def synced_prov_ids(db: Path) -> set[str]:
    """The prov run ids an MLflow sqlite store holds runs for (their ``prov.run_id`` tags)."""
    con = sqlite3.connect(db)
    try:
        return {row[0] for row in con.execute("SELECT value FROM tags WHERE key = 'prov.run_id'")}
    finally:
        con.close()


@pytest.fixture
def object_format() -> str:
    """Sync is the same over either object format: SHA-1 only here (see tests/store)."""
    return "sha1"


@pytest.fixture
def prov_path(prov_repo) -> Path:
    """The path of ``prov_repo`` (a repository with one commit, ``prov init`` done, no hooks)."""
    return prov_repo.path


def _make_run(path: Path, name: str = "train", *, experiment: str = "", points: int = 5, status: str = "finished",
             params: dict | None = None, tags: dict | None = None, artifact: bytes | None = b"weights",
             dataset: str | None = "sha256:" + "ab" * 32, parent: str | None = None) -> str:
    """An ended run with params, two metric series (explicit steps and timestamps), tags,
    an attribute, an artifact and a dataset; returns its id."""
    run = gitprov.Repository(path).start_run(name, experiment, params or {"lr": 0.1, "layers": [64, 32]},
                                             tags if tags is not None else {"team": "vision"},
                                             environment=False, parent=parent)
    for i in range(points):
        run.log_metric("loss", 1.0 / (i + 1), step=i * 10, timestamp=1_700_000_000 + i)
        run.log_metric("acc@1", i / points, timestamp=1_700_000_000.5 + i)
    run.log_attribute("notes", {"seed": 7})
    if artifact is not None:
        run.log_artifact("model/weights.bin", artifact)
    if dataset is not None:
        run.log_dataset_version("train", dataset)
    run.end(status)
    return run.id


@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B in offline mode with every directory it uses under ``tmp_path``."""
    root = tmp_path / "wandb-root"
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"),
                     ("WANDB_DATA_DIR", "data"), ("WANDB_ARTIFACT_DIR", "artifacts")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(root / sub))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return root


@pytest.fixture
def make_run() -> Callable[..., str]:
    return _make_run


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store, migrated once per session (that takes seconds).

    Its ``Default`` experiment stores artifacts in ``./mlruns`` resolved when the store
    is made, so make it from a temporary directory, never the work tree."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow-template")
    db = folder / "mlflow.db"
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    finally:
        os.chdir(cwd)
    return db


@pytest.fixture
def mlflow_db(tmp_path: Path, mlflow_template: Path) -> Path:
    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template, db)
    return db


@pytest.fixture
def mlflow_server(tmp_path: Path, mlflow_db: Path) -> Iterator[Callable[[], MlflowServer]]:
    """Start (and always stop) real MLflow servers over one sqlite backend."""
    servers: list[MlflowServer] = []

    def start() -> MlflowServer:
        server = MlflowServer(mlflow_db, tmp_path / "server-artifacts", tmp_path / "server.log")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.kill()
