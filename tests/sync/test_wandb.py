"""W&B bridge in offline mode: the run files it writes, read back and compared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gitprov
from gitprov.sync import sync_wandb
from gitprov.sync.wandb_bridge import wandb_run_id
from tests.sync.wandb_reader import read_run

pytest.importorskip("wandb")


def run_files(root: Path, prov_run_id: str) -> list[Path]:
    """The offline files of one run id, oldest first (W&B suffixes a reused folder name
    with -1, -2, ... when a resumed run starts in the same second)."""
    wid = wandb_run_id(prov_run_id)

    def order(path: Path) -> tuple[str, int]:
        stamp, _, rest = path.parent.name.removeprefix("offline-run-").partition("-")
        suffix = rest.removeprefix(wid).lstrip("-")
        return stamp, int(suffix or 0)

    return sorted(root.glob(f"wandb/offline-run-*-{wid}*/run-{wid}.wandb"), key=order)


def merged(root: Path, prov_run_id: str) -> dict:
    """Every offline file of one run id, in order (resumed syncs append files)."""
    runs = [read_run(f) for f in run_files(root, prov_run_id)]
    out = runs[-1]
    out["history"] = [row for r in runs for row in r["history"]]
    return out


def test_offline_round_trip(prov_path: Path, wandb_dir: Path, make_run) -> None:
    run_id = make_run(prov_path, "train", experiment="exp", params={"lr": 0.1, "layers": [64, 32]},
                      tags={"team": "vision", "best": ""})
    report = sync_wandb(gitprov.Repository(prov_path), "demo", workers=2)
    assert [r.status for r in report.results] == ["synced"], report.results[0].error
    run = gitprov.Repository(prov_path).get_run(run_id)
    [path] = run_files(wandb_dir, run_id)
    got = read_run(path)
    assert got["id"] == wandb_run_id(run_id) and len(got["id"]) <= 64 and got["project"] == "demo"
    assert got["name"] == "train" and got["group"] == "exp"
    assert sorted(got["tags"]) == ["best", "team:vision"]
    assert got["commit"] == run.record.code.commit
    assert run.record.host == got["host"] == ""  # not recorded (environment=False): not this machine's either
    assert got["config"]["lr"] == 0.1 and got["config"]["layers"] == [64, 32]
    assert got["config"]["prov"]["run_id"] == run_id
    for key in run.get_metric_keys():
        history = [(row["_step"], row[key]) for row in got["history"] if key in row]
        assert history == [(p.step, p.value) for p in run.get_metric_history(key)]
    steps = [row["_step"] for row in got["history"]]
    assert steps == sorted(set(steps))  # explicit, increasing
    first = run.get_metric_history("loss")[0]
    [row0] = [row for row in got["history"] if row["_step"] == first.step]
    assert row0["_timestamp"] == pytest.approx(max(first.timestamp, run.get_metric_history("acc@1")[0].timestamp) / 1000)
    assert got["summary"]["loss"] == run.get_metric("loss") and got["summary"]["prov/status"] == "finished"
    [art] = got["artifacts"]
    assert art["metadata"]["sha256"] == {"model/weights.bin": run.state.artifacts["model/weights.bin"].sha256}
    assert list(art["files"]) == ["model/weights.bin"]
    assert got["exit_code"] == 0


def test_resync_is_a_no_op_and_increments_append(prov_path: Path, wandb_dir: Path, make_run) -> None:
    repo = gitprov.Repository(prov_path)
    done = make_run(prov_path, "done")
    live = repo.start_run("live", environment=False)
    for i in range(10):
        live.log_metric("loss", float(i), step=i)
    live.flush()
    sync_wandb(repo, "demo")
    again = sync_wandb(repo, "demo")
    assert {r.status for r in again.results} == {"unchanged"}
    assert len(run_files(wandb_dir, done)) == 1 and len(run_files(wandb_dir, live.id)) == 1
    for i in range(10, 15):
        live.log_metric("loss", float(i), step=i)
    live.end("finished")
    report = sync_wandb(repo, "demo")
    by_id = {r.run_id: r for r in report.results}
    # not uploaded yet: the run's one offline directory is written again, whole
    assert by_id[live.id].written == {"metrics": 15} and by_id[done].status == "unchanged"
    [path] = run_files(wandb_dir, live.id)
    assert [row["loss"] for row in read_run(path)["history"]] == [float(i) for i in range(15)]

    # a later change (a new tag) updates the same run, in the same single directory
    steps = [row["_step"] for row in read_run(run_files(wandb_dir, done)[0])["history"]]
    repo.get_run(done).log_tags({"late": "yes"})
    report = sync_wandb(repo, "demo")
    assert {r.run_id: r.status for r in report.results} == {done: "synced", live.id: "unchanged"}
    [path] = run_files(wandb_dir, done)
    assert "late:yes" in read_run(path)["tags"]
    assert [row["_step"] for row in read_run(path)["history"]] == steps

    # once `wandb sync` has uploaded a directory (it leaves this marker), what is new
    # goes in a resumed run: W&B applies it to the same run
    path.with_suffix(".wandb.synced").write_bytes(b"")
    repo.get_run(done).log_tags({"later": ""})
    by_id = {r.run_id: r for r in sync_wandb(repo, "demo").results}
    assert by_id[done].status == "synced" and "metrics" not in by_id[done].written
    files = run_files(wandb_dir, done)
    assert len(files) == 2 and path in files
    [second] = [f for f in files if f != path]
    assert read_run(second)["id"] == read_run(path)["id"] == wandb_run_id(done)
    assert "later" in read_run(second)["tags"] and read_run(second)["history"] == []


def test_missing_wandb_extra_is_one_clear_line(prov_path: Path) -> None:
    code = ("import sys; sys.modules['wandb'] = None\n"
            "from gitprov.cli.entry import main\n"
            "sys.argv = ['prov', 'sync', 'wandb', '--project', 'p']\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=prov_path, capture_output=True, text=True)
    assert proc.returncode == 10, proc.stderr
    assert proc.stderr.strip() == "prov: error: syncing to W&B needs the wandb package: pip install 'git-prov[wandb]'"


def test_lineage_goes_to_config_and_offline_runs_use_no_artifact(prov_path: Path, wandb_dir: Path, make_run) -> None:
    repo = gitprov.Repository(prov_path)
    producer = make_run(prov_path, "produce")
    consumer = repo.get_run(make_run(prov_path, "consume", artifact=None))
    gitprov.lineage.of(consumer).with_input_artifact(producer[:8], "model/weights.bin").with_input_model("bert", "v3") \
        .with_output_model("clf", "1").register()
    report = sync_wandb(repo, "demo")
    assert {r.status for r in report.results} == {"synced"}, report.to_json()
    got = read_run(run_files(wandb_dir, consumer.id)[-1])
    lineage = got["config"]["prov"]["lineage"]
    assert lineage == {"inputs": {f"run:{producer}": ["model/weights.bin"], "model:bert": ["v3"]},  # prefix resolved
                       "outputs": {"model:clf": ["1"]}}
    assert got["artifacts"] == []  # the consumer logged none, and offline it cannot use the producer's


class RecordingRun:
    """Stands in for an online W&B run, which needs a W&B server this machine lacks."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def use_artifact(self, name: str) -> None:
        self.used.append(name)


def test_online_input_lineage_uses_the_producers_artifacts(prov_path: Path, make_run) -> None:
    from gitprov.sync.wandb_bridge import use_input_artifacts

    repo = gitprov.Repository(prov_path)
    producer = make_run(prov_path, "produce")
    no_artifacts = make_run(prov_path, "nothing-logged", artifact=None)
    consumer = repo.get_run(make_run(prov_path, "consume", artifact=None))
    gitprov.lineage.of(consumer).with_input_artifact(producer[:8]).with_input_artifact(no_artifacts) \
        .with_input_artifact("deadbeef" * 5).register()  # a dangling input
    wb = RecordingRun()
    assert use_input_artifacts(wb, repo.get_run(consumer.id)) == [f"{wandb_run_id(producer)}-artifacts:latest"]
    assert wb.used == [f"{wandb_run_id(producer)}-artifacts:latest"]


def test_observations_go_to_summary_and_an_artifact(prov_path: Path, wandb_dir: Path) -> None:
    import base64
    import hashlib

    from gitprov.sync.bridge import observation_json

    repo = gitprov.Repository(prov_path)
    run = repo.start_run("obs", environment=False)
    for epoch in range(3):
        run.log_observation("val loss", 1.0 / (epoch + 1), timestamp=1_700_000_000 + epoch)
        run.log_observation("confusion", {"tp": epoch}, timestamp=1_700_000_000 + epoch)
    run.end("finished")
    report = sync_wandb(repo, "demo")
    assert report.results[0].written == {"observations": 2}
    got = read_run(run_files(wandb_dir, run.id)[0])
    assert got["summary"]["observation/val loss"] == pytest.approx(1 / 3)
    assert got["summary"]["observation/confusion"] == {"tp": 2}
    [art] = [a for a in got["artifacts"] if a["type"] == "prov-observations"]
    assert art["metadata"]["epochs"] == {"confusion": 3, "val loss": 3}

    def md5(text: str) -> str:
        return base64.b64encode(hashlib.md5(text.encode()).digest()).decode()

    assert art["files"] == {
        "confusion.json": md5(observation_json("confusion", run.get_observations("confusion"))),
        "val loss.json": md5(observation_json("val loss", run.get_observations("val loss"))),
    }
    assert [r.status for r in sync_wandb(repo, "demo").results] == ["unchanged"]


def test_a_synced_run_keeps_its_timeline_host_and_requirements(prov_path: Path, wandb_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    from gitprov.sync.bridge import millis

    (prov_path / "requirements.txt").write_text("numpy==1.26.4\n")
    subprocess.run(["git", "-C", str(prov_path), "add", "requirements.txt", ".provenance-schema"], check=True)
    subprocess.run(["git", "-C", str(prov_path), "commit", "-qm", "pin numpy"], check=True)
    repo = gitprov.Repository(prov_path)
    with monkeypatch.context() as m:
        m.setattr(socket, "gethostname", lambda: "gpu-box-7")  # the run's machine, not this one
        run = repo.start_run("train")
    run.log_metric("loss", 0.5, step=0, timestamp=time.time() + 3)  # a point 3 s into the run
    run.flush()
    report = sync_wandb(repo, "demo")
    assert [r.status for r in report.results] == ["synced"], report.results[0].error
    [path] = run_files(wandb_dir, run.id)
    got = read_run(path)
    assert got["start_ms"] == millis(run.record.created)  # W&B's own would be the time of the sync
    assert got["runtime"] == 3
    assert got["host"] == "gpu-box-7" != socket.gethostname()
    assert got["config"]["prov"]["user"] == run.record.user == "Test User <test@example.com>"
    # the code's requirements (from the run's commit), not this machine's packages
    assert got["files"] == ["requirements.txt"]
    assert (path.parent / "files" / "requirements.txt").read_text() == "numpy==1.26.4\n"

    # the run ends: the same offline run is written again, its runtime now the run's own
    # duration (end - start), not the time of its last point nor of the sync
    run.end("finished")
    assert [r.status for r in sync_wandb(repo, "demo").results] == ["synced"]
    [path] = run_files(wandb_dir, run.id)  # still one directory: the old one, not uploaded, was replaced
    ended = read_run(path)
    assert ended["id"] == got["id"]
    duration = millis(run.state.ended) - millis(run.record.created)
    assert duration < 3000 and ended["runtime"] == duration // 1000 != got["runtime"]
    assert ended["start_ms"] == got["start_ms"] and ended["host"] == "gpu-box-7"



def test_wandb_files_stay_out_of_the_work_tree(prov_path: Path, wandb_dir: Path, make_run,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run(["git", "-C", str(prov_path), "add", ".provenance-schema"], check=True)
    subprocess.run(["git", "-C", str(prov_path), "commit", "-qm", "schema"], check=True)
    monkeypatch.delenv("WANDB_DIR")
    monkeypatch.chdir(prov_path)
    run_id = make_run(prov_path)
    report = sync_wandb(gitprov.Repository(prov_path), "demo")
    assert [r.status for r in report.results] == ["synced"], report.results[0].error
    assert run_files(prov_path / ".git" / "prov", run_id)  # .git/prov/wandb/offline-run-…
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=prov_path,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
