"""A repository written by git-prov 0.3.0 (format 3, ``tests/fixtures/format3-repo.tar.gz``)
read fully by this release. The format-4 upgrade test will start from this fixture."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gitprov.api import Repository
from gitprov.store.ledger import run_dir
from tests.conftest import ROOT, run_git, run_prov
from tests.fixtures.make_format3_repo import BIG_ARTIFACT, FLUSHES, SAMPLE
from tests.test_format3_migration import _chunk_version, _files
from tests.test_format_migration import unpack

FIXTURE = ROOT / "tests" / "fixtures" / "format3-repo.tar.gz"
FORMAT_3_MARKER = b'{"format_version":3,"kind":"ledger","requires":"git-prov>=0.3.0"}'

#: the runs ``make_format3_repo.py`` made, by commit: the first's (``HEAD~1``), then
#: those of the commit the amend replaced, shown under ``HEAD`` (the clone of
#: ``sweep-2`` is named ``sweep-2``; ``dropped`` is deleted)
FIRST = ["sweep-0", "sweep-1", "sweep-2"]
SECOND = ["eval", "sweep-2", "flushed", "patched", "dropped"]
#: each run's metric points, ``(step, value)``, by its name
POINTS = {
    **{f"sweep-{i}": {"loss": [(step, 1.0 / (step + 1 + i)) for step in range(5)]} for i in range(3)},
    "eval": {"acc": [(0, 0.9)]},
    "flushed": {"loss": [point for points in FLUSHES for point in points]},
    "patched": {"acc": [(0, 0.5)]},
    "dropped": {"acc": [(0, 0.1)]},
}


@pytest.fixture
def old_repo(tmp_path: Path) -> Path:
    return unpack(FIXTURE, tmp_path)


def _runs(repo: Repository) -> dict[str, list]:
    """Every run, deleted ones too, by name."""
    by_name: dict[str, list] = {}
    for run in repo.find_runs(include_deleted=True):
        by_name.setdefault(run.name, []).append(run)
    return by_name


def _prov_json(path: Path, *args: str):
    proc = run_prov(path, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_fixture_is_format_3(old_repo: Path) -> None:
    repo = Repository(old_repo)
    assert repo.store.ledger.read_file("format") == FORMAT_3_MARKER
    assert len(list(repo.store.ledger.run_ids())) == len(FIRST) + len(SECOND)
    chunks = [oid for name, oid in _files(old_repo).items() if "/series/" in name]
    assert len(chunks) == 10 and {_chunk_version(old_repo, oid) for oid in chunks} == {3}  # byte planes
    assert not list((old_repo / ".git" / "prov" / "journal").iterdir())


def test_prov_runs_lists_every_run_and_reading_writes_nothing(old_repo: Path) -> None:
    tip = run_git(old_repo, "rev-parse", "refs/prov/ledger")
    listed = _prov_json(old_repo, "runs")
    assert sorted(r["name"] for r in listed) == sorted(FIRST + SECOND[:-1])
    every = _prov_json(old_repo, "runs", "--all")
    assert sorted(r["name"] for r in every) == sorted(FIRST + SECOND)
    assert {r["id"] for r in every} == set(Repository(old_repo).store.ledger.run_ids())
    first = run_git(old_repo, "rev-parse", "HEAD~1").strip()
    [second] = [r["old"] for r in _prov_json(old_repo, "show", "HEAD")["rewrites"]]  # the commit amended
    assert sorted(r["name"] for r in every if r["commit"] == first) == FIRST
    assert sorted(r["name"] for r in every if r["commit"] == second) == sorted(SECOND)
    assert [r["name"] for r in every if r["dirty"]] == ["patched"]
    assert run_git(old_repo, "rev-parse", "refs/prov/ledger") == tip


def test_prov_show_lists_the_runs_of_a_commit(old_repo: Path) -> None:
    assert [r["name"] for r in _prov_json(old_repo, "show", "HEAD~1")["runs"]] == FIRST
    head = _prov_json(old_repo, "show", "HEAD")
    assert [r["name"] for r in head["runs"]] == SECOND  # by the note lines the amend copied
    assert [r["how"] for r in head["rewrites"]] == ["amend"] and not head["problems"]


def test_prov_verify_and_git_fsck_pass(old_repo: Path) -> None:
    proc = run_prov(old_repo, "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_git(old_repo, "fsck", "--strict", "--no-progress")


def test_metric_histories_read_back_as_written(old_repo: Path) -> None:
    runs = [run for named in _runs(Repository(old_repo)).values() for run in named]
    got = {(run.id, key): [(p.step, p.value) for p in run.get_metric_history(key)]
           for run in runs for key in run.get_metric_keys()}
    assert got == {(run.id, key): points for run in runs for key, points in POINTS[run.name].items()}
    flushed = _runs(Repository(old_repo))["flushed"][0]
    chunks = [name for name in _files(old_repo) if name.startswith(f"{run_dir(flushed.id)}/series/loss/")]
    assert len(chunks) == len(FLUSHES)  # a chunk a flush


def test_artifacts_and_the_rest_of_each_run_read_back(old_repo: Path) -> None:
    runs = _runs(Repository(old_repo))
    original, clone = sorted(runs["sweep-2"], key=lambda run: run.record.parent is not None)
    artifacts = {run.id: {key: run.get_artifact(key) for key in run.get_artifact_keys()}
                 for named in runs.values() for run in named}
    assert artifacts == {
        **{runs[f"sweep-{i}"][0].id: {"notes.txt": f"run {i}\n".encode()} for i in range(2)},
        original.id: {"notes.txt": b"run 2\n"}, clone.id: {"notes.txt": b"run 2\n"},
        runs["flushed"][0].id: {"weights.bin": BIG_ARTIFACT},
        **{runs[name][0].id: {} for name in ("eval", "patched", "dropped")},
    }
    files = _files(old_repo)
    sizes = {name.rsplit("/", 1)[1]: int(run_git(old_repo, "cat-file", "-s", oid))
             for name, oid in files.items() if "/artifacts/" in name}
    assert sizes["weights.bin"] > 4096 >= sizes["notes.txt"]  # both stored in git, in the run's tree
    flushed = runs["flushed"][0]
    assert [o.value for o in flushed.get_observation("sample")] == [SAMPLE]
    assert flushed.get_tags() == {"kind": "long", "stage": "train"}
    assert clone.record.parent == original.id and clone.get_tags() == {"kind": "sweep", "copied": ""}
    assert runs["eval"][0].state.lineage.inputs == {f"run:{original.id}": ["notes.txt"]}
    assert [run.state.deleted for run in runs["dropped"]] == [True]
    patched = runs["patched"][0]
    assert f"{run_dir(patched.id)}/code.patch" in files
    patch = patched.get_code_patch()
    assert b"+print('uncommitted')" in patch
    subprocess.run(["git", "apply", "--check"], cwd=old_repo, input=patch, check=True)  # onto its code
