"""The local sync state (``sync/state.py``): a sqlite file a target, rows read and
written one run at a time; a format-1 JSON state migrated when met; the sync plan held
compactly; ``prov sync``'s results printed as they come, the same text as before."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitprov.cli.app import cli
from gitprov.errors import DataError
from gitprov.sync.engine import Plan
from gitprov.sync.state import SyncState, state_keys
from tests.sync.test_watch import total_rows

KEY = "mlflow-example-0123456789ab"


def _legacy(directory: Path, runs: dict, *, target: str = "mlflow http://example:5000", version: int = 1) -> Path:
    """A state file as releases up to 0.2 wrote it: one JSON document holding every run."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{KEY}.json"
    path.write_text(json.dumps({"format_version": version, "target": target, "runs": runs}, sort_keys=True,
                               separators=(",", ":")))
    return path


def test_entries_are_rows_kept_across_instances_and_nothing_is_created_by_reading(tmp_path: Path) -> None:
    directory = tmp_path / "sync"
    state = SyncState(str(directory), KEY, "mlflow http://example:5000")
    assert state.get("a" * 40) is None and list(state.run_ids()) == []
    state.save()
    assert not directory.exists()  # a dry run or a status look writes nothing
    entry = {"version": "b" * 40, "external_id": "e1", "series": {"loss": 5}}
    state.put("a" * 40, entry)
    copy = state.get("a" * 40)
    assert copy == entry and copy is not entry
    copy["series"]["loss"] = 99
    assert state.get("a" * 40) == entry  # a copy: changing it changes nothing stored
    state.close()
    again = SyncState(str(directory), KEY, "ignored")
    assert again.get("a" * 40) == entry and again.target == "mlflow http://example:5000"
    assert list(again.run_ids()) == ["a" * 40]
    assert state_keys(str(directory)) == [KEY]
    again.close()


def test_puts_from_threads_all_land(tmp_path: Path) -> None:
    state = SyncState(str(tmp_path), KEY, "mlflow x")
    ids = [f"{i:040x}" for i in range(400)]

    def put(part: list[str]) -> None:
        for run_id in part:
            state.put(run_id, {"version": run_id})

    threads = [threading.Thread(target=put, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state.close()
    with sqlite3.connect(tmp_path / f"{KEY}.sqlite") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (400,)
    assert list(SyncState(str(tmp_path), KEY, "mlflow x").run_ids()) == ids


def test_run_ids_are_read_a_page_at_a_time(tmp_path: Path) -> None:
    state = SyncState(str(tmp_path), KEY, "mlflow x")
    ids = [f"{i:040x}" for i in range(2345)]
    for run_id in ids:
        state.put(run_id, {})
    state.save()
    assert list(state.run_ids()) == ids


def test_a_format_1_json_state_is_migrated_whole_and_removed(tmp_path: Path) -> None:
    directory = tmp_path / "sync"
    runs = {f"{i:040x}": {"version": f"{i:040x}"[::-1], "external_id": f"e{i}", "params": {"lr": "x"},
                          "status": "FINISHED", "error": None if i % 2 else "boom"} for i in range(300)}
    legacy = _legacy(directory, runs)
    assert state_keys(str(directory)) == [KEY]
    state = SyncState(str(directory), KEY, "something else")
    assert not legacy.exists() and (directory / f"{KEY}.sqlite").exists()
    assert {run_id: state.get(run_id) for run_id in state.run_ids()} == runs
    assert state.target == "mlflow http://example:5000"  # as the old file recorded it
    assert sorted(p.name for p in directory.iterdir()) == [f"{KEY}.sqlite"]  # no temporary file left
    assert state_keys(str(directory)) == [KEY]


def test_a_migration_that_lost_the_race_keeps_the_state_already_there(tmp_path: Path) -> None:
    directory = tmp_path / "sync"
    first = SyncState(str(directory), KEY, "mlflow x")
    first.put("a" * 40, {"version": "new"})
    first.close()
    _legacy(directory, {"a" * 40: {"version": "old"}})
    state = SyncState(str(directory), KEY, "mlflow x")
    assert state.get("a" * 40) == {"version": "new"}


@pytest.mark.parametrize("text", ["{not json", json.dumps([1, 2]), json.dumps({"format_version": 7, "runs": {}})])
def test_an_unreadable_old_state_is_one_clear_error_and_is_left_as_it_is(tmp_path: Path, text: str) -> None:
    directory = tmp_path / "sync"
    directory.mkdir()
    legacy = directory / f"{KEY}.json"
    legacy.write_text(text)
    with pytest.raises(DataError, match=r"sync state .*\.json .*delete it to rebuild it from the tracker"):
        SyncState(str(directory), KEY, "mlflow x")
    assert legacy.read_text() == text and not (directory / f"{KEY}.sqlite").exists()


def test_a_state_of_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / f"{KEY}.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                         "INSERT INTO meta VALUES ('format_version', '9');")
    db.close()
    with pytest.raises(DataError, match="has format '9'; delete it"):
        SyncState(str(tmp_path), KEY, "mlflow x")


def test_the_plan_holds_rows_compactly_and_gives_them_back() -> None:
    rows = [(f"{i:040x}", f"{i + 7:040x}", f"run-{i}", f"{i - 1:040x}" if i % 3 == 0 and i else None)
            for i in range(600)]
    plan = Plan(iter(rows))
    assert len(plan) == 600 and list(plan) == rows
    assert plan[256:512] == rows[256:512] and plan[-1] == rows[-1] and plan[0] == rows[0]
    with pytest.raises(IndexError):
        plan[600]  # noqa: B018
    assert list(Plan([])) == [] and len(Plan([])) == 0


def test_emit_json_with_writes_the_text_of_emit_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from gitprov.cli import render

    items = [{"run_id": "a" * 40, "written": {"params": 3, "metrics": 100}, "seconds": 0.125, "error": None},
             {"run_id": "b" * 40, "name": "ü\n\"quoted\"", "written": {}, "nested": [{"x": float("nan")}, []]}]
    doc = {"target": "sqlite:///x.db", "kind": "mlflow", "dry_run": True, "counts": {"unchanged": 2},
           "seconds": 1.5}
    for some in (items, items[:1], []):
        outputs = []
        for emit, args in ((render.emit_json, ({**doc, "runs": some},)), (render.emit_json_with, (doc, "runs", iter(some)))):
            buf = io.StringIO()
            monkeypatch.setattr("sys.stdout", buf)
            emit(*args)
            outputs.append(buf.getvalue())
        assert outputs[0] == outputs[1]


def _invoke(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(cli, list(args))


def test_a_sync_from_an_old_json_state_finds_every_run_unchanged(prov_path: Path, mlflow_db: Path, tmp_path: Path,
                                                                 make_run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state an older release left is read as it was: nothing written again."""
    ids = sorted(make_run(prov_path, name) for name in ("a", "b", "c"))
    uri = f"sqlite:///{mlflow_db}"
    first = _invoke(prov_path, monkeypatch, "sync", "mlflow", "--tracking-uri", uri, "--artifact-location",
                    str(tmp_path / "art"), "--json")
    assert first.exit_code == 0, first.output
    directory = prov_path / ".git" / "prov" / "sync"
    [path] = directory.glob("*.sqlite")
    with sqlite3.connect(path) as db:  # back to the format-1 file an older release wrote
        runs = {run_id: json.loads(entry) for run_id, entry in db.execute("SELECT run, entry FROM runs")}
        target = db.execute("SELECT value FROM meta WHERE key='target'").fetchone()[0]
    db.close()
    assert sorted(runs) == ids
    path.unlink()
    legacy = path.with_suffix(".json")
    legacy.write_text(json.dumps({"format_version": 1, "target": target, "runs": runs}))
    rows = total_rows(mlflow_db)
    status = json.loads(_invoke(prov_path, monkeypatch, "sync", "status", "--json").stdout)
    assert [(s["target"], sorted(s["synced"])) for s in status] == [(uri, ids)]
    again = _invoke(prov_path, monkeypatch, "sync", "mlflow", "--tracking-uri", uri)
    assert again.exit_code == 0, again.output
    lines = again.stdout.splitlines()
    assert lines[0].startswith("RUN") and len(lines) == 5 and lines[-1].startswith(f"synced to mlflow {uri}: 3 unchanged")
    assert sorted(line.split()[0] for line in lines[1:4]) == [i[:12] for i in ids]
    assert total_rows(mlflow_db) == rows and not legacy.exists()
