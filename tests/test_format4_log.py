"""Format 4's log (``store/ledger_log/``) through the whole tool: what a new ledger gets
(the environment's ``GIT_PROV_LEDGER_LAYOUT`` unset), and what the format-3 fixture
0.3.0 wrote is upgraded to by its first write. Real git, the real CLI in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitprov.api import Repository
from gitprov.store import ledger_log as log
from gitprov.store.trees import read_tree
from tests.conftest import run_git, run_prov
from tests.test_format3_fixture import FIXTURE, _runs
from tests.test_format3_migration import FIXTURE as FORMAT2_FIXTURE
from tests.test_format_migration import FIXTURE as FORMAT1_FIXTURE
from tests.test_format_migration import unpack

LOG = {"GIT_PROV_LEDGER_LAYOUT": "log"}


@pytest.fixture
def as_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_PROV_LEDGER_LAYOUT", "log")


def _prov_json(path: Path, *args: str):
    proc = run_prov(path, *args, "--json", env=LOG)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _marker(repo: Repository) -> bytes | None:
    return repo.store.ledger.read_file("format")


@pytest.mark.parametrize("fixture", [FIXTURE, FORMAT2_FIXTURE, FORMAT1_FIXTURE], ids=["0.3.0", "0.2.0", "0.1.0"])
def test_the_first_write_upgrades_the_fixture_and_loses_nothing(tmp_path: Path, fixture: Path) -> None:
    """A repository each earlier release wrote (kept as fixtures with their scripts)
    becomes a log at its first write, every run, metric, artifact and commit's runs
    read as before."""
    path = unpack(fixture, tmp_path)
    before = Repository(path)
    histories = {(run.id, key): run.get_metric_history(key) for named in _runs(before).values() for run in named
                 for key in run.get_metric_keys()}
    artifacts = {run.id: {key: run.get_artifact(key) for key in run.get_artifact_keys()}
                 for named in _runs(before).values() for run in named}
    old_tip = run_git(path, "rev-parse", "refs/prov/ledger").strip()
    shown = {rev: [r["name"] for r in _prov_json(path, "show", rev)["runs"]] for rev in ("HEAD", "HEAD~1")}
    every = sorted(r["name"] for r in _prov_json(path, "runs", "--all"))
    active = sorted(r["name"] for r in _prov_json(path, "runs"))

    repo = Repository(path)
    with repo.start_run(name="after-upgrade") as run:
        for step in range(20):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    assert _marker(repo) == log.CHECKPOINT_MARKER
    assert run_git(path, "rev-parse", "refs/prov/ledger^").strip() == old_tip, "format 3's history kept below"

    after = Repository(path)
    assert {(r.id, k): r.get_metric_history(k) for named in _runs(after).values() for r in named
            for k in r.get_metric_keys() if r.id != run.id} == histories
    assert {r.id: {k: r.get_artifact(k) for k in r.get_artifact_keys()} for named in _runs(after).values()
            for r in named if r.id != run.id} == artifacts
    assert [p.value for p in after.get_run(run.id).get_metric_history("loss")] == [1.0 / (s + 1) for s in range(20)]
    listed = _prov_json(path, "runs", "--all")
    assert sorted(r["name"] for r in listed) == sorted([*every, "after-upgrade"])
    assert {rev: [r["name"] for r in _prov_json(path, "show", rev)["runs"]] for rev in ("HEAD~1",)} == \
        {"HEAD~1": shown["HEAD~1"]}
    assert [r["name"] for r in _prov_json(path, "show", "HEAD")["runs"]] == [*shown["HEAD"], "after-upgrade"]
    run_git(path, "fsck", "--strict", "--no-progress")

    with Repository(path).start_run(name="second") as second:
        second.log_metric("acc", 0.5)
    tree = run_git(path, "ls-tree", "--name-only", "refs/prov/ledger").split()
    head = run_git(path, "rev-parse", "HEAD").strip()
    assert sorted(tree) == sorted(["format", "runs", f"{second.id}^{head}",
                                   f"{second.id}=acc={_chunk_name(path, second.id)}"])
    assert sorted(r["name"] for r in _prov_json(path, "runs")) == sorted([*active, "after-upgrade", "second"])


def _chunk_name(path: Path, run_id: str) -> str:
    names = run_git(path, "ls-tree", "--name-only", "refs/prov/ledger").split()
    [chunk] = [n for n in names if n.startswith(f"{run_id}=acc=")]
    return chunk.split("=", 2)[2]


def test_a_new_repository_kept_as_a_log_from_its_first_run(repo, monkeypatch) -> None:
    import gitprov

    monkeypatch.delenv("GIT_PROV_LEDGER_LAYOUT", raising=False)  # the default
    gitprov.init(repo.path, hooks=True)
    first = run_git(repo.path, "rev-parse", "refs/prov/ledger").strip()
    repo.commit("train", files={"train.py": "print('hi')\n"})
    api = Repository(repo.path)
    made = []
    for i in range(3):
        with api.start_run(name=f"r{i}", params={"lr": 0.1 * (i + 1)}) as run:
            for step in range(5):
                run.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            run.log_artifact("notes.txt", f"run {i}\n".encode())
            run.log_tag("kind", "sweep")
        made.append(run.id)
    assert _marker(api) == log.LOG_MARKER
    assert run_git(repo.path, "cat-file", "-p", f"{first}:format").encode() == log.LOG_MARKER, \
        "a log from its first commit: no checkpoint"
    listed = _prov_json(repo.path, "runs")
    assert [r["name"] for r in listed] == ["r2", "r1", "r0"]
    assert [r["name"] for r in _prov_json(repo.path, "show", "HEAD")["runs"]] == ["r0", "r1", "r2"]
    fresh = Repository(repo.path)
    for i, run_id in enumerate(made):
        run = fresh.get_run(run_id)
        assert [p.value for p in run.get_metric_history("loss")] == [1.0 / (s + 1 + i) for s in range(5)]
        assert run.get_artifact("notes.txt") == f"run {i}\n".encode()
        assert run.get_tags() == {"kind": "sweep"}
    # an edit of a finished run is one more version of its run blob, in a tree of its own
    Repository(repo.path).get_run(made[0]).log_tag("best", "yes")
    entries = read_tree(fresh.store.git.odb, Repository(repo.path).store.ledger.tree())
    head = run_git(repo.path, "rev-parse", "HEAD").strip()
    assert set(entries) == {"format", "runs", f"{made[0]}^{head}"}
    assert Repository(repo.path).get_run(made[0]).get_tags() == {"kind": "sweep", "best": "yes"}
    assert [r["name"] for r in _prov_json(repo.path, "runs", "--where", "tags.best = 'yes'")] == ["r0"]
    run_git(repo.path, "fsck", "--strict", "--no-progress")
    # plain git reads the log: a run's versions are the commits that added or changed its
    # entry (the next transaction's tree no longer holds it: git sees it go)
    history = run_git(repo.path, "log", "--no-renames", "--diff-filter=AM", "--format=%s", "refs/prov/ledger", "--",
                      f"{made[0]}^{head}")
    assert len(history.splitlines()) == 2
    # the note's runs line points plain git at the runs of the commit, as data-model.md shows
    runs_line = [json.loads(line) for line in run_git(repo.path, "notes", "--ref=prov", "show", head).splitlines()
                 if '"kind":"runs"' in line]
    assert [(line["format_version"], line["path"]) for line in runs_line] == [(4, f"*^{head}")]
    listed_by_git = run_git(repo.path, "log", "--format=", "--name-only", "--no-renames", "--diff-filter=AM",
                            "refs/prov/ledger",
                            "--", runs_line[0]["path"])
    assert {name.split("^")[0] for name in listed_by_git.split()} == set(made)


def test_prov_verify_names_what_is_wrong_in_a_log(repo, as_log) -> None:
    import gitprov
    from gitprov.store.ledger import LEDGER_REF
    from gitprov.store.objects import encode_commit
    from gitprov.store.transaction import identity_line
    from gitprov.store.trees import edit_tree

    gitprov.init(repo.path, hooks=False)
    api = Repository(repo.path)
    with api.start_run(name="good") as good:
        good.log_metric("loss", 1.0)
    with api.start_run(name="broken") as broken:
        broken.log_metric("loss", 2.0)
    with api.start_run(name="swapped") as swapped:
        pass
    assert run_prov(repo.path, "verify", env=LOG).returncode == 0
    git = api.store.git
    head = run_git(repo.path, "rev-parse", "HEAD").strip()
    stranger = "e" * len(head)
    tip = git.refs.read(LEDGER_REF)
    tree = edit_tree(git.odb, log.log_tree(git, {f"{broken.id}^{head}": b"not a run blob",
                                                 f"{swapped.id}^{head}": log.encode_run_blob(b"{}", b"{}"),
                                                 f"{stranger}=loss=0123abcd-00000001": b"x"}), {"payload": b"x"})
    assert git.refs.compare_and_swap(LEDGER_REF, tip, git.odb.write("commit", encode_commit(
        tree, [tip], identity_line(git), "damaged")))
    proc = run_prov(repo.path, "verify", env=LOG)
    assert proc.returncode == 8, proc.stdout + proc.stderr
    problems = [line for line in proc.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 4, problems
    assert any(f"run {broken.id[:12]}: run blob of {broken.id[:12]} is not msgpack" in p for p in problems)
    assert any(p.endswith(f"run {swapped.id[:12]}: run blob of {swapped.id[:12]} holds the record of another run")
               for p in problems), problems
    assert any("entry 'payload' is not a file of a run" in p for p in problems)
    assert any(f"is a file of run {stranger[:12]}, which the ledger has no record of" in p for p in problems)
    assert "Traceback" not in proc.stderr


def test_small_artifacts_live_in_the_run_blob_and_read_and_clone_as_any(repo, as_log) -> None:
    import gitprov

    gitprov.init(repo.path, hooks=False)
    api = Repository(repo.path)
    small, big = b"s" * 100, bytes(range(256)) * 40  # 100 B and 10 KiB
    with api.start_run(name="source") as run:
        run.log_artifact("small.txt", small)
        run.log_artifact("big.bin", big)
    names = run_git(repo.path, "ls-tree", "--name-only", "refs/prov/ledger").split()
    assert f"{run.id}@big.bin" in names and not any(n.endswith("@small.txt") for n in names)
    again = Repository(repo.path).get_run(run.id)
    assert again.get_artifact("small.txt") == small and again.get_artifact("big.bin") == big
    clone = again.clone()
    clone.end()
    copied = Repository(repo.path).get_run(clone.id)
    assert copied.get_artifact("small.txt") == small and copied.get_artifact("big.bin") == big
    run_git(repo.path, "fsck", "--strict", "--no-progress")
    assert run_prov(repo.path, "verify", env=LOG).returncode == 0


def test_two_copies_of_a_run_blob_keep_both_sides_artifacts() -> None:
    import hashlib

    from gitprov import codec
    from gitprov.exchange.merge import _merge_kept
    from gitprov.model import ArtifactRef, RunState

    state = RunState(artifacts={"m": ArtifactRef(key="m", sha256=hashlib.sha256(b"theirs").hexdigest(), size=6)})
    merged = _merge_kept({"a": b"1", "m": b"mine"}, {"b": b"2", "m": b"theirs"}, codec.encode(state))
    assert merged == {"a": b"1", "b": b"2", "m": b"theirs"}, "the winning state's version"
    assert _merge_kept({"m": b"x"}, {"m": b"y"}, codec.encode(RunState())) == {"m": b"y"}, "else the greater"
    assert _merge_kept({"m": b"y"}, {"m": b"x"}, codec.encode(RunState())) == {"m": b"y"}, "whichever side it is"


def test_a_layout_that_is_neither_is_one_line_and_nothing_written(prov_repo) -> None:
    before = run_git(prov_repo.path, "rev-parse", "refs/prov/ledger")
    proc = run_prov(prov_repo.path, "run", "--", "true", env={"GIT_PROV_LEDGER_LAYOUT": "logs"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "prov: error: GIT_PROV_LEDGER_LAYOUT is 'logs'; it is 'tree' (format 3) or 'log' (format 4), or unset"]
    assert run_git(prov_repo.path, "rev-parse", "refs/prov/ledger") == before


# -- git-prov 0.3.0 meeting the log ------------------------------------------------------------
#: git-prov 0.3.0 (format 3) as released, in this project's history: what made the format-3 fixture
RELEASE_0_3 = "b5ceb68"


@pytest.mark.slow
def test_release_0_3_meeting_the_log_says_what_to_install_and_loses_nothing(tmp_path: Path) -> None:
    """A clone still running 0.3.0 after a teammate's 0.4 upgraded the ledger: reading
    stops with one line naming the release (the sentinel run under ``runs/``), a write
    is refused before anything is written, and what it started is kept by this release."""
    from tests.test_format_migration import old_prov, release_source

    path = unpack(FIXTURE, tmp_path)
    repo = Repository(path)
    with repo.start_run(name="on the log") as run:
        run.log_metric("loss", 0.5)
    assert repo.store.ledger.is_log()
    tip = run_git(path, "rev-parse", "refs/prov/ledger").strip()
    release = release_source(tmp_path, RELEASE_0_3, "0.3.0")
    proc = old_prov(release, "0.3.0", path, "runs")
    assert proc.returncode == 6, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "format version 4, newer than this git-prov reads (3)" in lines[0], lines[0]
    assert "pip install -U 'git-prov>=0.4.0'" in lines[0], lines[0]
    proc = old_prov(release, "0.3.0", path, "run", "--name", "from-0.3", "--", "true")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    refused = [line for line in proc.stderr.splitlines() if "format version" in line]
    assert refused and "pip install -U 'git-prov>=0.4.0'" in refused[0], proc.stderr
    assert run_git(path, "rev-parse", "refs/prov/ledger").strip() == tip, "0.3.0 wrote nothing"
    run_git(path, "fsck", "--strict", "--no-progress")
    # the run 0.3.0 started left its journal: this release keeps it, as a crashed run
    runs = Repository(path).find_runs()
    assert [r.state.status for r in runs if r.name == "from-0.3"] == ["crashed"]
    assert [r.name for r in runs if r.id == run.id] == ["on the log"]
