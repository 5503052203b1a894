"""prov relink (squash merges, commit maps), refs/prov/keep against git gc, and verify's
report of runs whose commit is no longer reachable — with real git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitprov.api import Repository
from tests.conftest import GitRepo, run_prov


def prov_json(repo: GitRepo, *args: str):
    proc = run_prov(repo.path, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_here(repo: GitRepo, name: str) -> str:
    run = Repository(repo.path).start_run(name=name)
    run.end()
    return run.id


@pytest.fixture
def feature(make_repo, object_format) -> tuple[GitRepo, list[str], list[str]]:
    """main plus a feature branch of two commits, one run on each commit."""
    repo = make_repo(object_format)
    assert run_prov(repo.path, "init").returncode == 0
    repo.git("checkout", "-q", "-b", "feature")
    commits, runs = [], []
    for i in range(2):
        commits.append(repo.commit(f"feature{i}"))
        runs.append(run_here(repo, f"train{i}"))
    repo.git("checkout", "-q", "main")
    return repo, commits, runs


def gc_everything(repo: GitRepo) -> None:
    repo.git("reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all")
    repo.git("gc", "-q", "--prune=now")


def test_relink_a_squash_merge_and_keep_the_old_commits(feature) -> None:
    repo, commits, runs = feature
    repo.git("merge", "-q", "--squash", "feature")
    repo.git("commit", "-q", "-m", "squashed")
    squash = repo.git("rev-parse", "HEAD").strip()
    assert prov_json(repo, "show")["runs"] == []  # the squash commit knows nothing yet

    result = prov_json(repo, "relink", "main..feature", "HEAD")
    assert result == {"new": [squash], "old": sorted(commits), "runs": 2}
    shown = prov_json(repo, "show")
    assert sorted(r["run"] for r in shown["runs"]) == sorted(runs)
    assert {(r["old"], r["how"]) for r in shown["rewrites"]} == {(c, "squash") for c in commits}
    old_note = prov_json(repo, "show", commits[0])
    assert any(r["new"] == squash for r in old_note["rewrites"])

    repo.git("branch", "-D", "-q", "feature")
    gc_everything(repo)
    for commit in commits:  # refs/prov/keep still reaches them
        repo.git("cat-file", "-e", commit)
    report = prov_json(repo, "verify")
    assert {(u["commit"], u["kept"], u["present"]) for u in report["unreachable"]} == {(c, True, True) for c in commits}
    repo.fsck()


def test_prov_keep_command_and_switching_it_off(feature) -> None:
    repo, commits, runs = feature
    assert prov_json(repo, "keep")["kept"] == sorted(commits)
    assert prov_json(repo, "keep")["kept"] == []
    repo.git("update-ref", "-d", "refs/prov/keep")
    repo.git("config", "prov.keep", "false")
    assert prov_json(repo, "keep")["kept"] == []
    repo.git("branch", "-D", "-q", "feature")
    gc_everything(repo)
    proc = run_prov(repo.path, "verify")
    assert proc.returncode == 0
    assert "is not in this clone" in proc.stdout + proc.stderr
    report = prov_json(repo, "verify")
    assert {u["present"] for u in report["unreachable"]} == {False}


def test_verify_warns_about_unkept_unreachable_commits(feature) -> None:
    repo, commits, _ = feature
    repo.git("branch", "-D", "-q", "feature")  # commits still in the object store (reflog)
    proc = run_prov(repo.path, "verify")
    assert proc.returncode == 0 and "run 'prov keep'" in proc.stdout + proc.stderr


def test_relink_with_a_filter_repo_commit_map(feature, tmp_path: Path) -> None:
    repo, commits, runs = feature
    repo.git("checkout", "-q", "feature")
    repo.git("commit", "-q", "--amend", "-m", "rewritten by a tool")  # stands in for filter-repo's new commit
    new = repo.git("rev-parse", "HEAD").strip()
    zero = "0" * len(new)
    mapping = tmp_path / "commit-map"
    mapping.write_text(f"old                                      new\n{commits[1]} {new}\n{commits[0]} {zero}\n")
    proc = run_prov(repo.path, "relink", "--commit-map", str(mapping), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["old"] == [commits[1]]
    shown = prov_json(repo, "show", new)
    assert runs[1] in {r["run"] for r in shown["runs"]}
    assert any(r["how"] == "filter" and r["old"] == commits[1] for r in shown["rewrites"])


@pytest.mark.parametrize(("args", "code", "message"), [
    (("relink",), 2, "needs OLD_RANGE and NEW_COMMIT"),
    (("relink", "nosuch..feature", "HEAD"), 4, "nosuch"),
    (("relink", "main..feature", "nosuch"), 4, "nosuch"),
    (("relink", "feature", "feature"), 2, "names no commits"),
    (("relink", "main..feature", "HEAD", "--commit-map", "MAP"), 2, "not both"),
    (("relink", "--commit-map", "MAP"), 2, "line 2"),
    (("relink", "--commit-map", "missing-file"), 2, "cannot read commit map"),
])
def test_relink_errors_are_one_line_and_write_nothing(feature, tmp_path: Path, args, code, message) -> None:
    repo, commits, _ = feature
    bad = tmp_path / "bad-map"
    bad.write_text(f"{commits[0]} {commits[1]}\nnot a pair\n")
    args = tuple(str(bad) if a == "MAP" else str(tmp_path / a) if a == "missing-file" else a for a in args)
    before = repo.git("rev-parse", "refs/notes/prov").strip()
    proc = run_prov(repo.path, *args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert repo.git("rev-parse", "refs/notes/prov").strip() == before


def test_rewriting_a_commit_a_run_pinned_keeps_it(make_repo) -> None:
    repo = make_repo()
    assert run_prov(repo.path, "init").returncode == 0
    old = repo.commit("trained on this")
    run_here(repo, "train")
    repo.git("commit", "-q", "--amend", "-m", "reworded")  # post-rewrite hook
    kept = repo.git("rev-list", "refs/prov/keep").split()
    assert old in kept
    gc_everything(repo)
    repo.git("cat-file", "-e", old)
