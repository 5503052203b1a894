"""Auto-sync: a real ``git commit`` with ``prov.sync.auto`` set starts a detached
``prov sync auto`` that mirrors the runs to a real MLflow sqlite store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gitprov
from gitprov.store.config import GitConfig
from gitprov.sync.auto import LOCK, LOG, PENDING, configured_targets
from tests.conftest import run_git
from tests.sync.conftest import synced_prov_ids

pytest.importorskip("mlflow")


def wait_for(condition, what: str, timeout: float = 180.0) -> None:
    """Poll ``condition`` (a bound so a broken runner cannot hang the suite; not a timing check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def hooked_repo(make_repo, mlflow_db: Path, tmp_path: Path) -> Path:
    """``prov init`` with hooks, auto-sync to a real MLflow sqlite store configured."""
    repo = make_repo()
    gitprov.init(repo.path, hooks=True)
    run_git(repo.path, "config", "prov.sync.auto", "mlflow")
    run_git(repo.path, "config", "prov.sync.mlflow.trackingUri", f"sqlite:///{mlflow_db}")
    run_git(repo.path, "config", "prov.sync.mlflow.artifactLocation", str(tmp_path / "artifacts"))
    return repo.path


def target_lock(repo: Path, db: Path):
    """The lock of the MLflow target, as a running ``prov sync mlflow`` holds it."""
    from gitprov.sync.engine import open_state
    from gitprov.sync.mlflow_bridge import MlflowBridge

    return open_state(gitprov.Repository(repo), MlflowBridge(f"sqlite:///{db}"))


def commit(repo: Path, name: str) -> subprocess.CompletedProcess:
    (repo / name).write_text(name)
    run_git(repo, "add", name)
    # capture_output: a background process that kept git's pipes open would hang this call
    return subprocess.run(["git", "commit", "-q", "-m", name], cwd=repo, capture_output=True, text=True, timeout=120)


def log_rounds(repo: Path) -> list[str]:
    text = (repo / ".git" / "prov" / "sync" / LOG).read_text()
    return re.findall(r"auto-sync \(pid (\d+)\)", text)


def test_commit_returns_while_the_background_sync_waits_then_the_run_appears(
        hooked_repo: Path, mlflow_db: Path, make_run) -> None:
    run_id = make_run(hooked_repo, "train")
    lock = target_lock(hooked_repo, mlflow_db)
    lock.acquire()  # a sync to the same target is running: the background one must wait
    try:
        proc = commit(hooked_repo, "one")
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        # git commit returned although the sync cannot have run: the hook did not wait for it
        assert synced_prov_ids(mlflow_db) == set()
        head = run_git(hooked_repo, "rev-parse", "HEAD").strip()
        assert gitprov.show(head, hooked_repo).captures  # the capture itself was synchronous
    finally:
        lock.release()
    sync_dir = hooked_repo / ".git" / "prov" / "sync"
    wait_for(lambda: run_id in synced_prov_ids(mlflow_db) and not (sync_dir / LOCK).exists(), "the background sync")
    text = (sync_dir / LOG).read_text()
    assert "synced to mlflow" in text and "1 synced" in text, text
    [status] = gitprov.sync.sync_status(gitprov.Repository(hooked_repo), "mlflow")
    assert status.synced == [run_id] and not status.pending


def test_a_burst_of_commits_runs_one_background_sync(hooked_repo: Path, mlflow_db: Path, make_run) -> None:
    run_id = make_run(hooked_repo, "train")
    sync_dir = hooked_repo / ".git" / "prov" / "sync"
    lock = target_lock(hooked_repo, mlflow_db)
    lock.acquire()
    try:
        assert commit(hooked_repo, "one").returncode == 0
        wait_for(lambda: (sync_dir / LOCK).exists(), "the runner to take the auto-sync lock")
        runner = int((sync_dir / LOCK).read_text())
        for name in ("two", "three", "four"):
            proc = commit(hooked_repo, name)
            assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert (sync_dir / PENDING).exists()  # the burst asked for another round
    finally:
        lock.release()
    wait_for(lambda: not (sync_dir / LOCK).exists() and run_id in synced_prov_ids(mlflow_db), "the runner to finish")
    # one process did everything: its first round, then one more for the commits made meanwhile
    assert log_rounds(hooked_repo) == [str(runner), str(runner)]
    assert "another auto-sync is running" not in (sync_dir / LOG).read_text()
    assert not (sync_dir / PENDING).exists()


def test_a_bad_auto_value_is_one_line_and_the_commit_goes_through(hooked_repo: Path) -> None:
    run_git(hooked_repo, "config", "prov.sync.auto", "neptune")
    proc = commit(hooked_repo, "one")
    assert proc.returncode == 0
    assert proc.stderr.strip().splitlines() == [
        "prov: auto-sync not started: git config prov.sync.auto = 'neptune': neptune is not a sync target; "
        "use mlflow, wandb or 'mlflow wandb'"]
    assert gitprov.show("HEAD", hooked_repo).captures
    failures = [json.loads(line) for line in (hooked_repo / ".git" / "prov" / "hook-failures.log").read_text().splitlines()]
    assert failures[-1]["reason"].startswith("auto-sync not started")


def test_configured_targets() -> None:
    def parse(value: str | None) -> list[str]:
        return configured_targets(GitConfig({} if value is None else {"prov.sync.auto": [value]}))

    assert parse(None) == [] and parse("false") == [] and parse("") == []
    assert parse("mlflow") == ["mlflow"] and parse("MLflow, wandb mlflow") == ["mlflow", "wandb"]


def test_the_hook_side_stays_lean(hooked_repo: Path) -> None:
    """With auto-sync on and a runner alive, ``start`` marks the request and imports
    neither typing nor subprocess nor a tracker."""
    sync_dir = hooked_repo / ".git" / "prov" / "sync"
    sync_dir.mkdir(parents=True, exist_ok=True)
    (hooked_repo / "x").write_text("x")
    run_git(hooked_repo, "add", "x")
    run_git(hooked_repo, "commit", "-q", "-m", "x", env={"PROV_HOOKS_DISABLED": "1"})  # HEAD without a capture
    code = (
        "import os, sys\n"
        "open(os.path.join(sys.argv[1], 'auto.lock'), 'w').write(str(os.getpid()))\n"
        "from gitprov.githooks.runtime import run\n"
        "rc = run('post-commit', [])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('typing', 'subprocess', 'click', 'mlflow', 'wandb', 'msgspec'))\n"
        "print(rc, heavy, os.path.exists(os.path.join(sys.argv[1], 'auto.pending')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(sync_dir)], cwd=hooked_repo, capture_output=True, text=True)
    assert proc.stdout.strip() == "0 [] True", proc.stderr
    assert "auto.log" not in [p.name for p in sync_dir.iterdir()]  # no runner was started


def test_prov_sync_auto_without_config_is_one_line(prov_path: Path) -> None:
    from tests.conftest import run_prov

    proc = run_prov(prov_path, "sync", "auto")
    assert proc.returncode == 10
    assert proc.stderr.strip() == ("prov: error: no auto-sync target: set one with "
                                   "'git config prov.sync.auto mlflow' (or wandb)")


def test_the_runner_syncs_to_wandb_offline_and_reports_a_missing_project(prov_path: Path, wandb_dir: Path,
                                                                         make_run) -> None:
    from gitprov.sync.auto import run
    from gitprov.sync.wandb_bridge import wandb_run_id
    from tests.sync.wandb_reader import read_run

    run_id = make_run(prov_path, "train")
    run_git(prov_path, "config", "prov.sync.auto", "wandb")
    lines: list[str] = []
    assert run(gitprov.Repository(prov_path), out=lines.append) == 10
    assert "wandb: error: auto-sync to wandb needs a project: git config prov.sync.wandb.project NAME" in lines[-1]
    run_git(prov_path, "config", "prov.sync.wandb.project", "auto-demo")
    lines.clear()
    assert run(gitprov.Repository(prov_path), out=lines.append) == 0
    assert "synced to wandb auto-demo: 1 synced" in lines[-1]
    wid = wandb_run_id(run_id)
    [path] = wandb_dir.glob(f"wandb/offline-run-*-{wid}/run-{wid}.wandb")
    got = read_run(path)
    assert got["project"] == "auto-demo" and got["config"]["prov"]["run_id"] == run_id
    assert not (prov_path / ".git" / "prov" / "sync" / LOCK).exists()
