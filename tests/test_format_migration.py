"""A repository written by git-prov 0.1.0 (format 1, ``tests/fixtures``) read and upgraded
by this release, and the 0.1.0 code itself meeting the upgraded repository."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from gitprov._version import FORMAT_VERSION
from gitprov.api import Repository
from gitprov.store.ledger import LEDGER_FORMAT, commit_runs_dir, run_dir
from gitprov.store.trees import read_path, read_tree
from tests.conftest import ROOT, run_git, run_prov

FIXTURE = ROOT / "tests" / "fixtures" / "format1-repo.tar.gz"
#: format 3's tree upgrades (0.1's repository upgraded to format 2 and on to 3); to the log: tests/test_format4_log.py
pytestmark = pytest.mark.format3
#: the last commit of this project whose code is git-prov 0.1.0 (format 1)
RELEASE_0_1 = "d7db498"
FORMAT_1_MARKER = b'{"format_version":1,"kind":"ledger"}'


def unpack(fixture: Path, tmp_path: Path) -> Path:
    """The repository a release wrote, from its archive in ``tests/fixtures``."""
    with tarfile.open(fixture) as tar:
        # tar's "data" filter where this Python has it (3.11.4 on); the archive is ours
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return tmp_path / "repo"


@pytest.fixture
def old_repo(tmp_path: Path) -> Path:
    return unpack(FIXTURE, tmp_path)


def _snapshot(repo: Repository) -> dict[str, tuple[bytes, bytes]]:
    """Every run's record and state bytes."""
    return {
        run_id: (repo.store.ledger.read_file(f"{run_dir(run_id)}/record"),
                 repo.store.ledger.read_file(f"{run_dir(run_id)}/state"))
        for run_id in repo.store.ledger.run_ids()
    }


def _note_lines(path: Path) -> set[tuple[str, str]]:
    lines = set()
    for row in run_git(path, "notes", "--ref=prov", "list").splitlines():
        _, commit = row.split()
        for line in run_git(path, "notes", "--ref=prov", "show", commit).splitlines():
            lines.add((commit, line))
    return lines


def _runs_in(odb, tree: str) -> set[str]:
    runs = read_path(odb, tree, "runs")
    return {run_id for shard in read_tree(odb, runs.oid).values() for run_id in read_tree(odb, shard.oid)}


def _listed_in(odb, tree: str) -> set[str]:
    listed = read_path(odb, tree, "commits")
    return {run_id for shard in read_tree(odb, listed.oid).values()
            for commit in read_tree(odb, shard.oid).values()
            for fan in read_tree(odb, commit.oid).values()
            for run_id in read_tree(odb, fan.oid)}


def _shown_runs(repo: Repository, rev: str) -> list[str]:
    return [link.run for link in repo.show(rev).runs]


def test_the_fixture_is_format_1(old_repo: Path) -> None:
    repo = Repository(old_repo)
    assert repo.store.ledger.read_file("format") == FORMAT_1_MARKER
    assert repo.store.ledger.list_dir("commits") == {}
    assert len(list(repo.store.ledger.run_ids())) == 5


def test_a_format_1_repository_reads_before_any_write(old_repo: Path) -> None:
    repo = Repository(old_repo)
    assert len(_shown_runs(repo, "HEAD~1")) == 3  # the sweep, by its note's run lines
    assert len(_shown_runs(repo, "HEAD")) == 2  # eval and the clone, lines copied by the amend
    assert len(repo.find_runs()) == 5
    assert repo.store.ledger.read_file("format") == FORMAT_1_MARKER  # reading wrote nothing
    report = repo.verify()
    assert report.ok, report.problems


def test_the_first_write_upgrades_it_and_loses_nothing(old_repo: Path) -> None:
    repo = Repository(old_repo)
    before_runs = _snapshot(repo)
    before_notes = _note_lines(old_repo)
    shown = {rev: _shown_runs(repo, rev) for rev in ("HEAD", "HEAD~1")}
    ledger_before = repo.store.ledger.tip()
    dangling_before = run_git(old_repo, "fsck", "--dangling", "--no-progress")

    with repo.start_run(name="after-upgrade") as run:
        run.log_metric("loss", 0.5)
    new_id = run.id

    ledger = repo.store.ledger
    assert ledger.read_file("format") == LEDGER_FORMAT
    after = _snapshot(repo)
    assert {k: v for k, v in after.items() if k != new_id} == before_runs  # every byte of every run kept
    assert before_notes <= _note_lines(old_repo)  # the notes only gained lines
    head = run_git(old_repo, "rev-parse", "HEAD").strip()
    for run_id in after:
        commit = repo.get_run(run_id).record.code.commit
        assert run_id in ledger.commit_run_ids(commit), run_id
    assert ledger.commit_run_ids(head) == [new_id]
    assert _shown_runs(repo, "HEAD") == [*shown["HEAD"], new_id]
    assert _shown_runs(repo, "HEAD~1") == shown["HEAD~1"]
    # the upgrade went with the run's first transaction: no ledger commit has the new
    # marker without every run listed
    odb = repo.git.odb
    for commit in run_git(old_repo, "rev-list", f"{ledger_before}..{ledger.ref}").split():
        tree = repo.git.read_commit(commit).tree
        assert odb.read_typed(read_path(odb, tree, "format").oid, "blob") == LEDGER_FORMAT
        assert _runs_in(odb, tree) == _listed_in(odb, tree)
    run_git(old_repo, "fsck", "--strict")
    # the upgrade's edits went into the transaction's own trees: none left dangling
    assert run_git(old_repo, "fsck", "--dangling", "--no-progress") == dangling_before
    report = repo.verify()
    assert report.ok, report.problems
    assert not [w for w in report.warnings if "not listed" in w], report.warnings
    proc = run_prov(old_repo, "runs")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 6 and new_id[:12] in proc.stdout


def test_a_commit_note_points_at_its_runs_for_plain_git(old_repo: Path) -> None:
    repo = Repository(old_repo)
    with repo.start_run(name="one") as run:
        pass
    head = run_git(old_repo, "rev-parse", "HEAD").strip()
    note = run_git(old_repo, "notes", "--ref=prov", "show", head)
    pointer = [line for line in note.splitlines() if '"kind":"runs"' in line]
    assert pointer == [
        f'{{"commit":"{head}","format_version":{FORMAT_VERSION},"kind":"runs","path":"{commit_runs_dir(head)}",'
        f'"ref":"refs/prov/ledger","schema":{{"lexicon":"{run.record.schema.lexicon}","version":1}}}}'
    ]
    listing = run_git(old_repo, "ls-tree", "-r", "--name-only", "refs/prov/ledger", f"{commit_runs_dir(head)}/")
    assert listing.split() == [f"{commit_runs_dir(head)}/{run.id[:2]}/{run.id}"]
    record = run_git(old_repo, "cat-file", "-p", f"refs/prov/ledger:{commit_runs_dir(head)}/{run.id[:2]}/{run.id}")
    assert '"name":"one"' in record


# -- git-prov 0.1.0 meeting format 2 -----------------------------------------------------------
def release_source(tmp_path: Path, commit: str, version: str) -> Path:
    """The source of git-prov ``version``, from this project's own history at ``commit``."""
    if not (ROOT / ".git").exists():
        pytest.skip(f"not a git checkout of git-prov: the {version} source comes from its history")
    target = tmp_path / f"release-{version}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src/gitprov"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def old_prov(source: Path, version: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``prov ARGS`` run by the git-prov ``version`` at ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    code = f"import sys, gitprov; assert gitprov.__version__ == {version!r}, gitprov.__file__; " \
           "from gitprov.cli.entry import main; sys.argv[0] = 'prov'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture
def release_0_1(tmp_path: Path) -> Path:
    return release_source(tmp_path, RELEASE_0_1, "0.1.0")


def _old_prov(source: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return old_prov(source, "0.1.0", cwd, *args)


@pytest.mark.slow
def test_release_0_1_meeting_format_2_says_what_to_install_and_loses_nothing(old_repo: Path, release_0_1: Path) -> None:
    repo = Repository(old_repo)
    with repo.start_run(name="format-2 run"):
        pass  # upgrades the repository
    for args, code in ((["show"], 0), (["runs"], 6)):  # 0.1.0's show reports a bad note and goes on
        proc = _old_prov(release_0_1, old_repo, *args)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"format version {FORMAT_VERSION}" in lines[0] and "pip install -U git-prov" in lines[0], lines[0]

    # 0.1.0 can still write a run (its format-1 marker and note line): this release
    # reads it, and its next write lists it again in format 2
    proc = _old_prov(release_0_1, old_repo, "run", "--name", "from-0.1", "--", "true")
    assert proc.returncode == 0, proc.stderr
    repo = Repository(old_repo)
    old_written = [r for r in repo.find_runs() if r.name == "from-0.1"]
    assert len(old_written) == 1
    assert old_written[0].id in _shown_runs(repo, "HEAD")
    with repo.start_run(name="after"):
        pass
    assert repo.store.ledger.read_file("format") == LEDGER_FORMAT
    head = run_git(old_repo, "rev-parse", "HEAD").strip()
    assert old_written[0].id in repo.store.ledger.commit_run_ids(head)
    report = repo.verify()
    assert report.ok, report.problems
