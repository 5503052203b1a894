"""``prov run`` and ``prov runs`` through real subprocesses and click's runner."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

import gitprov
from gitprov.cli.app import cli
from tests.conftest import run_prov


@pytest.fixture
def object_format() -> str:
    """The CLI is the same over either object format: SHA-1 only here (see tests/store)."""
    return "sha1"


def test_prov_run_records_command_digests_and_exit_code(prov_repo):
    path = prov_repo.path
    (path / "in.csv").write_text("a,b\n")
    script = "import sys; open('out.txt', 'w').write('done'); sys.exit(3)"
    proc = run_prov(path, "run", "--name", "job", "--experiment", "exp", "--param", "lr=0.01",
                    "--param", "opt=adam",
                    "--input", "in.csv", "--output", "out.txt", "--",
                    sys.executable, "-c", script, "--api-key=supersecret")
    assert proc.returncode == 3, proc.stderr
    runs = json.loads(run_prov(path, "runs", "--json").stdout)
    assert len(runs) == 1
    run = gitprov.Repository(path).get_run(runs[0]["id"])
    assert run.status == "failed" and run.state.exit_code == 3
    assert run.get_hyperparameters()["lr"] == 0.01 and run.get_hyperparameters()["opt"] == "adam"
    assert "--api-key=[REDACTED]" in run.record.command
    datasets = run.get_dataset_versions()
    assert datasets["input/in.csv"].digest.startswith("sha256:")
    assert datasets["output/out.txt"].size == 4
    assert run.get_attribute("prov.duration_seconds") >= 0
    import subprocess

    everything = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=path,
                                capture_output=True, check=True).stdout
    assert b"supersecret" not in everything


def test_secret_values_are_refused(prov_repo):
    token = "ghp_" + "a" * 36
    before = prov_repo.git("for-each-ref")
    proc = run_prov(prov_repo.path, "run", "--param", f"token={token}", "--", "true")
    assert proc.returncode == 2 and "looks like a secret" in proc.stderr
    assert prov_repo.git("for-each-ref") == before
    with gitprov.Repository(prov_repo.path).start_run() as run:
        for call in (lambda: run.log_tag("t", token), lambda: run.log_attribute("u", "https://u:p@host/x")):
            with pytest.raises(gitprov.UsageError, match="looks like a secret"):
                call()


def test_prov_run_success_and_nested_run_gets_parent(prov_repo):
    path = prov_repo.path
    child = "import gitprov\nwith gitprov.start_run(name='inner', environment=False) as r: r.log_metric('m', 1)\n"
    proc = run_prov(path, "run", "--", sys.executable, "-c", child)
    assert proc.returncode == 0, proc.stderr
    runs = {r.name: r for r in gitprov.Repository(path).runs()}
    assert runs["inner"].record.parent == runs[sys.executable.split("/")[-1]].id


def test_prov_runs_list_show_diff(prov_repo):
    path = prov_repo.path
    repo = gitprov.Repository(path)
    with repo.start_run(name="a", params={"lr": 0.1}) as a:
        a.log_metric("acc", 0.8)
    with repo.start_run(name="b", params={"lr": 0.2}) as b:
        b.log_metric("acc", 0.9)
    runner = CliRunner()
    import os

    cwd = os.getcwd()
    os.chdir(path)
    try:
        listing = runner.invoke(cli, ["runs"])
        assert listing.exit_code == 0 and "a" in listing.output and "acc=0.9" in listing.output
        shown = runner.invoke(cli, ["runs", "show", a.id[:8]])
        assert shown.exit_code == 0 and a.id in shown.output and "lr" in shown.output
        data = json.loads(runner.invoke(cli, ["runs", "show", a.id, "--json"]).output)
        assert data["id"] == a.id and data["state"]["metrics"]["acc"]["value"] == 0.8
        diff = runner.invoke(cli, ["runs", "diff", a.id, b.id, "--json"])
        rows = {(r["section"], r["key"]): (r["a"], r["b"]) for r in json.loads(diff.output)}
        assert rows[("params", "lr")] == (0.1, 0.2) and rows[("metrics", "acc")] == (0.8, 0.9)
        filtered = json.loads(runner.invoke(cli, ["runs", "--status", "finished", "--json"]).output)
        assert {r["name"] for r in filtered} == {"a", "b"}
    finally:
        os.chdir(cwd)


def test_runs_errors_are_one_line(prov_repo):
    path = prov_repo.path
    for args, code in ((["runs", "show", "zz"], 2), (["runs", "show", "abcdef12"], 2), (["run", "--param", "novalue", "--", "true"], 2)):
        proc = run_prov(path, *args)
        assert proc.returncode == code, proc.stderr
        assert proc.stderr.startswith("prov: error:") and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_ambiguous_run_prefix(prov_repo):
    from gitprov.api import LEDGER_FORMAT

    repo = gitprov.Repository(prov_repo.path)
    fake = {f"runs/ab/abcd{c * 36}/{part}": b"{}" for c in "12" for part in ("record", "state")}
    repo.ledger.apply(fake, "test: two runs sharing a prefix", LEDGER_FORMAT)
    with pytest.raises(gitprov.UsageError, match="ambiguous"):
        repo.get_run("abcd")
    proc = run_prov(prov_repo.path, "runs", "show", "abcd")
    assert proc.returncode == 2 and "ambiguous" in proc.stderr


def test_an_empty_listing_says_whether_filters_hid_the_runs(prov_repo):
    assert "no runs yet" in run_prov(prov_repo.path, "runs").stdout
    with gitprov.Repository(prov_repo.path).start_run(name="one", environment=False):
        pass
    for args in (["--status", "crashed"], ["--experiment", "nope"], ["--where", "name = 'other'"]):
        proc = run_prov(prov_repo.path, "runs", *args)
        assert proc.returncode == 0 and proc.stdout.strip().startswith("no runs match"), (args, proc.stdout)


@pytest.mark.parametrize("items", [[], [{}], [1, "two", None, []],
                                   [{"a": [1, {}], "b": "line\nbreak", "c": {"d": {"e": []}}},
                                    {"nan": float("nan"), "inf": -float("inf"), "u": "é ✓"}]])
def test_a_streamed_json_array_is_the_json_of_the_list(items, capsys):
    from gitprov.cli import render

    render.emit_json(items)
    whole = capsys.readouterr().out
    render.emit_json_array(iter(items))
    assert capsys.readouterr().out == whole


@pytest.mark.format3  # the synthetic ledger is format 3's tree ("log": then upgraded to the log)
@pytest.mark.parametrize("layout", ["tree", "log"])
@pytest.mark.parametrize("as_json", [False, True])
def test_prov_runs_prints_its_first_runs_before_it_reads_the_last(prov_repo, monkeypatch, as_json, layout):
    import click
    from synthetic_ledger import append_runs

    from gitprov.cli import runs_cmd
    from gitprov.index import reading, search
    from gitprov.store.ledger import Ledger

    append_runs(str(prov_repo.path), 30, seed=2, start=0)  # on the ledger 'prov init' made
    if layout == "log":
        ledger = Ledger(gitprov.Repository(prov_repo.path).git, layout="log")
        ledger.apply({}, "prov: to the log")
        assert ledger.is_log()
    monkeypatch.setattr(search, "FIRST_PAGE", 3)
    monkeypatch.setattr(reading, "PAGE", 4)
    monkeypatch.setattr(reading, "BULK_MIN", 2)
    events: list[str] = []
    real_echo, real_summary = click.echo, runs_cmd.run_summary

    def recording(real):
        def read(repo, runs, **kw):
            for blobs in real(repo, runs, **kw):
                events.append(blobs.run_id)
                yield blobs
        return read

    for name in ("read_run_blobs", "read_run_pages"):
        monkeypatch.setattr(search, name, recording(getattr(search, name)))
    monkeypatch.setattr(click, "echo", lambda *a, **kw: events.append("printed") or real_echo(*a, **kw))
    monkeypatch.setattr(runs_cmd, "run_summary", lambda run: events.append("printed") or real_summary(run))
    monkeypatch.chdir(prov_repo.path)
    result = CliRunner().invoke(cli, ["runs", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    runs = gitprov.Repository(prov_repo.path).find_runs()
    assert len(runs) == 30 and events.index("printed") < events.index(runs[-1].id)
    if as_json:
        assert json.loads(result.output) == json.loads(json.dumps([real_summary(r) for r in runs]))
    else:
        assert [line.split()[0] for line in result.output.splitlines()] == [r.id[:12] for r in runs]
