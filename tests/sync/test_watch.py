"""``prov sync … --watch``: polls that find nothing write nothing; a new run is synced;
SIGTERM/SIGINT stop a real subprocess cleanly with exit code 0."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import gitprov
from gitprov.sync.mlflow_bridge import MlflowBridge
from gitprov.sync.watch import watch
from tests.sync.conftest import synced_prov_ids

pytest.importorskip("mlflow")


class Polls(threading.Event):
    """A stop event that, instead of sleeping, calls ``at[n]`` on the n-th poll and
    stops after ``limit`` polls (so the test decides what happens between polls)."""

    def __init__(self, limit: int, at: dict | None = None) -> None:
        super().__init__()
        self.limit, self.at, self.polls = limit, at or {}, 0

    def wait(self, timeout: float | None = None) -> bool:
        self.polls += 1
        if self.polls in self.at:
            self.at[self.polls]()
        if self.polls >= self.limit:
            self.set()
        return self.is_set()


def total_rows(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "tags", "metrics", "params"))
    finally:
        con.close()


def test_polls_without_ledger_moves_sync_nothing_and_a_move_syncs_once(
        prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run) -> None:
    first = make_run(prov_path, "first")
    repo = gitprov.Repository(prov_path)
    bridge = MlflowBridge(f"sqlite:///{mlflow_db}", artifact_location=str(tmp_path / "a"))
    reports = []
    new: list[str] = []
    state_files: list[tuple] = []

    def snapshot() -> None:
        [state] = (prov_path / ".git" / "prov" / "sync").glob("*.sqlite")
        state_files.append((state.stat().st_mtime_ns, state.read_bytes(), total_rows(mlflow_db)))

    stop = Polls(limit=8, at={1: snapshot, 3: snapshot, 4: lambda: new.append(make_run(prov_path, "second"))})
    rounds = watch(repo, bridge, stop, interval=0.01, on_report=reports.append)
    assert rounds == 2 and stop.polls == 8  # the start, then once for the new run; the other polls did nothing
    assert state_files[0] == state_files[1]  # polls with nothing new: no write to the state or to MLflow
    assert [r.status for r in reports[0].results] == ["synced"]
    assert sorted((r.run_id, r.status) for r in reports[1].results) == sorted([(first, "unchanged"), (new[0], "synced")])
    assert synced_prov_ids(mlflow_db) == {first, new[0]}


def test_a_busy_target_is_tried_again_at_the_next_poll(prov_path: Path, mlflow_db: Path, make_run) -> None:
    make_run(prov_path)
    repo = gitprov.Repository(prov_path)
    bridge = MlflowBridge(f"sqlite:///{mlflow_db}")
    from gitprov.sync.engine import open_state

    holder = open_state(repo, bridge)
    holder.acquire()  # another sync to the same target is running
    busy: list[str] = []
    stop = Polls(limit=3, at={2: holder.release})
    rounds = watch(repo, bridge, stop, interval=0.01, on_busy=lambda exc: busy.append(str(exc)))
    assert len(busy) == 2 and "another prov sync" in busy[0]
    assert rounds == 1 and len(synced_prov_ids(mlflow_db)) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_watch_subprocess_syncs_a_new_run_and_stops_cleanly(prov_path: Path, mlflow_db: Path, tmp_path: Path,
                                                           make_run, sig: int) -> None:
    first = make_run(prov_path, "first")
    cmd = [sys.executable, "-m", "gitprov.cli.entry", "sync", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}",
           "--artifact-location", str(tmp_path / "a"), "--watch", "--interval", "0.2", "--json"]
    proc = subprocess.Popen(cmd, cwd=prov_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the first sync's report
        assert json.loads(line)["counts"] == {"synced": 1}, (line, proc.stderr.read() if proc.poll() is not None else "")
        second = make_run(prov_path, "second")
        deadline = time.monotonic() + 120  # a bound so a broken watch cannot hang the suite
        while second not in synced_prov_ids(mlflow_db) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert synced_prov_ids(mlflow_db) == {first, second}
        report = json.loads(proc.stdout.readline())
        assert report["counts"] == {"synced": 1, "unchanged": 1}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and out == ""
    sync_dir = prov_path / ".git" / "prov" / "sync"
    assert not list(sync_dir.glob("*.lock"))  # the lock is released
    [status] = gitprov.sync.sync_status(gitprov.Repository(prov_path), "mlflow")
    assert sorted(status.synced) == sorted([first, second]) and not status.pending


def test_stop_set_before_a_sync_skips_every_run_and_leaves_them_pending(prov_path: Path, mlflow_db: Path, make_run) -> None:
    from gitprov.sync import sync_runs

    ids = [make_run(prov_path, f"r{i}") for i in range(3)]
    stop = threading.Event()
    stop.set()
    repo = gitprov.Repository(prov_path)
    report = sync_runs(repo, MlflowBridge(f"sqlite:///{mlflow_db}"), stop=stop)
    assert {r.status for r in report.results} == {"skipped"}
    [status] = gitprov.sync.sync_status(repo, "mlflow") or [None]
    assert status is None or sorted(status.pending) == sorted(ids)
    assert synced_prov_ids(mlflow_db) == set()
    assert os.path.exists(mlflow_db)


def test_watch_with_dry_run_is_a_usage_error(prov_path: Path, mlflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from gitprov.cli.app import cli

    monkeypatch.chdir(prov_path)
    result = CliRunner().invoke(cli, ["sync", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}", "--watch", "--dry-run"])
    assert result.exit_code == 2 and "--watch and --dry-run do not go together" in result.output


def metric_rows(db: Path) -> dict[str, int]:
    """prov run id -> number of metric rows its MLflow run holds."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT t.value, count(m.key) FROM tags t LEFT JOIN metrics m ON m.run_uuid = t.run_uuid "
                           "WHERE t.key = 'prov.run_id' GROUP BY t.run_uuid").fetchall()
    finally:
        con.close()
    out: dict[str, int] = {}
    for prov_id, n in rows:
        assert prov_id not in out, f"run {prov_id} was synced twice"
        out[prov_id] = n
    return out


@pytest.mark.slow
def test_sigterm_in_the_middle_of_a_sync_leaves_runs_synced_or_pending(prov_path: Path, mlflow_db: Path,
                                                                       tmp_path: Path, make_run) -> None:
    ids = [make_run(prov_path, f"r{i}", points=300, artifact=None, dataset=None) for i in range(60)]
    cmd = [sys.executable, "-m", "gitprov.cli.entry", "sync", "mlflow", "--tracking-uri", f"sqlite:///{mlflow_db}",
           "--workers", "1", "--watch", "--interval", "0.2", "--json"]
    proc = subprocess.Popen(cmd, cwd=prov_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(synced_prov_ids(mlflow_db)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    [report] = [json.loads(line) for line in out.splitlines()]
    assert set(report["counts"]) <= {"synced", "skipped"} and sum(report["counts"].values()) == 60, report["counts"]
    [status] = gitprov.sync.sync_status(gitprov.Repository(prov_path), "mlflow")
    rows = metric_rows(mlflow_db)
    assert len(status.synced) == report["counts"]["synced"] and not status.failed
    for run_id in status.synced:
        assert rows[run_id] == 600  # complete: both series, every point
    assert sorted(status.synced + status.pending) == sorted(ids)
    # the next sync completes the rest, without duplicates
    result = subprocess.run([*cmd[:-4], "--json"], cwd=prov_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert metric_rows(mlflow_db) == dict.fromkeys(ids, 600)


def test_watch_to_wandb_offline_sends_a_new_run_once(prov_path: Path, wandb_dir: Path, make_run) -> None:
    from gitprov.sync.wandb_bridge import WandbBridge, wandb_run_id

    first = make_run(prov_path, "first")
    new: list[str] = []
    reports = []
    stop = Polls(limit=4, at={2: lambda: new.append(make_run(prov_path, "second"))})
    rounds = watch(gitprov.Repository(prov_path), WandbBridge("watch"), stop, interval=0.01, on_report=reports.append)
    assert rounds == 2
    assert [r.status for r in reports[1].results if r.run_id == first] == ["unchanged"]
    for run_id in (first, new[0]):
        wid = wandb_run_id(run_id)
        assert len(list(wandb_dir.glob(f"wandb/offline-run-*-{wid}/run-{wid}.wandb"))) == 1


def test_a_watch_warns_about_an_unreachable_server_and_keeps_looking(prov_path: Path, make_run) -> None:
    from _harness import free_port

    make_run(prov_path)
    url = f"http://127.0.0.1:{free_port()}"
    busy: list[str] = []
    stop = Polls(limit=2)
    rounds = watch(gitprov.Repository(prov_path), MlflowBridge(url, retries=0), stop, interval=0.01,
                   on_busy=lambda exc: busy.append(str(exc)))
    assert rounds == 0 and len(busy) == 2  # each look tried again, none got through
    assert all(b.startswith(f"cannot reach MLflow at {url}: connection refused") for b in busy)
