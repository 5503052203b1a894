"""``prov sync`` through click's runner and a real subprocess; import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitprov.cli.app import cli


def invoke(cwd: Path, *args: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(cli, list(args))


def test_sync_mlflow_json_then_status(prov_path: Path, mlflow_db: Path, tmp_path: Path, make_run,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = make_run(prov_path)
    uri = f"sqlite:///{mlflow_db}"
    result = invoke(prov_path, "sync", "mlflow", "--tracking-uri", uri, "--artifact-location", str(tmp_path / "a"),
                    "--json", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"] == {"synced": 1} and report["runs"][0]["run_id"] == run_id
    result = invoke(prov_path, "sync", "mlflow", "--tracking-uri", uri, monkeypatch=monkeypatch)
    assert result.exit_code == 0
    assert "1 unchanged" in result.stdout and run_id[:12] in result.stdout
    status = json.loads(invoke(prov_path, "sync", "status", "mlflow", "--json", monkeypatch=monkeypatch).stdout)
    assert [(s["kind"], s["synced"], s["pending"]) for s in status] == [("mlflow", [run_id], [])]
    assert invoke(prov_path, "sync", "status", "wandb", monkeypatch=monkeypatch).stdout.startswith("no sync yet")
    make_run(prov_path, "second")
    text = invoke(prov_path, "sync", "status", monkeypatch=monkeypatch).stdout
    assert "1 synced, 1 pending, 0 failed" in text


def test_unreachable_tracker_ends_the_sync_with_one_line_and_exit_10(prov_path: Path, make_run,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from _harness import free_port

    ids = {make_run(prov_path), make_run(prov_path, "b")}
    url = f"http://127.0.0.1:{free_port()}"  # a closed port
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)  # MLflow's own default: 7 retries
    result = invoke(prov_path, "sync", "mlflow", "--tracking-uri", url, "--workers", "1", monkeypatch=monkeypatch)
    assert result.exit_code == 10, result.output
    assert result.stdout == ""
    assert result.stderr == (f"prov: error: cannot reach MLflow at {url}: connection refused "
                             f"({result.stderr.split('(', 1)[1].split(')', 1)[0]}); start the server or fix "
                             "--tracking-uri (nothing was synced; the runs stay pending)\n")
    assert "(4 tries in " in result.stderr  # --retries 3 by default: three more tries, then it stops
    result = invoke(prov_path, "sync", "mlflow", "--tracking-uri", url, "--retries", "0", monkeypatch=monkeypatch)
    assert result.exit_code == 10 and "(1 try in " in result.stderr, result.output
    status = json.loads(invoke(prov_path, "sync", "status", "--json", monkeypatch=monkeypatch).stdout)
    assert status == [] or (set(status[0]["pending"]) == ids and not status[0]["failed"])


def test_missing_mlflow_extra_is_one_clear_line(prov_path: Path, make_run) -> None:
    make_run(prov_path)
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "from gitprov.cli.entry import main\n"
            "sys.argv = ['prov', 'sync', 'mlflow', '--tracking-uri', 'sqlite:///x.db']\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=prov_path, capture_output=True, text=True)
    assert proc.returncode == 10, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "prov: error: syncing to MLflow needs the mlflow package: pip install 'git-prov[mlflow]'"]
    assert "Traceback" not in proc.stderr and not (prov_path / "x.db").exists()


def test_importing_sync_loads_no_tracker() -> None:
    code = ("import sys, json, gitprov.sync, gitprov.sync.engine, gitprov.sync.state, gitprov.cli.sync_cmd\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'wandb'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_a_resync_with_nothing_new_does_not_import_mlflow(prov_path: Path, mlflow_db: Path, make_run,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    make_run(prov_path)
    uri = f"sqlite:///{mlflow_db}"
    assert invoke(prov_path, "sync", "mlflow", "--tracking-uri", uri, monkeypatch=monkeypatch).exit_code == 0
    code = ("import sys, json\nfrom gitprov.cli.entry import main\n"
            f"try:\n    main(['sync', 'mlflow', '--tracking-uri', {uri!r}, '--json'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=prov_path, capture_output=True, text=True, check=True)
    *report, modules = proc.stdout.strip().splitlines()
    assert json.loads("\n".join(report))["counts"] == {"unchanged": 1}
    assert json.loads(modules) == []


def test_a_first_sync_to_a_new_sqlite_store_prints_only_the_report(prov_path: Path, make_run, tmp_path: Path) -> None:
    """MLflow's own INFO lines ("Creating initial MLflow database tables...") are quieted."""
    from tests.conftest import run_prov

    make_run(prov_path)
    proc = run_prov(prov_path, "sync", "mlflow", "--tracking-uri", f"sqlite:///{tmp_path / 'new.db'}",
                    "--artifact-location", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.splitlines()[-1].startswith("synced to mlflow")


def test_a_server_that_never_answers_is_given_up_after_the_timeout(prov_path: Path, make_run,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    make_run(prov_path)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = invoke(prov_path, "sync", "mlflow", "--tracking-uri", url, "--timeout", "1.5",
                        monkeypatch=monkeypatch)
    assert result.exit_code == 10, result.output
    assert result.stderr.startswith(f"prov: error: cannot reach MLflow at {url}: timed out (1 try in ")
    assert len(result.stderr.splitlines()) == 1
