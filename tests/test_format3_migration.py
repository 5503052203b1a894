"""A repository written by git-prov 0.2.0 (format 2, ``tests/fixtures``) read and upgraded
by this release (format 3: metric chunks in byte planes), and the 0.2.0 code itself
meeting the upgraded repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import pytest

from gitprov._version import FORMAT_VERSION
from gitprov.api import Repository
from gitprov.runs.series import PLANES_FROM
from gitprov.store.ledger import LEDGER_FORMAT, TREE_FORMAT, links_complete, run_dir
from tests.conftest import ROOT, run_git, run_prov
from tests.test_format_migration import old_prov, release_source, unpack

FIXTURE = ROOT / "tests" / "fixtures" / "format2-repo.tar.gz"
#: format 3's tree upgrades (0.2's repository upgraded to format 3); to the log: tests/test_format4_log.py
pytestmark = pytest.mark.format3
#: the last commit of this project whose code is git-prov 0.2.0 (format 2)
RELEASE_0_2 = "225c787"
FORMAT_2_MARKER = b'{"format_version":2,"kind":"ledger","requires":"git-prov>=0.2.0"}'


@pytest.fixture
def old_repo(tmp_path: Path) -> Path:
    return unpack(FIXTURE, tmp_path)


def _files(path: Path, rev: str = "refs/prov/ledger") -> dict[str, str]:
    """``path -> blob id`` of every file in a ledger tree."""
    out = {}
    for line in run_git(path, "ls-tree", "-r", rev).splitlines():
        meta, name = line.split("\t")
        out[name] = meta.split()[2]
    return out


def _histories(repo: Repository) -> dict[tuple[str, str], list]:
    return {(run.id, key): run.get_metric_history(key) for run in repo.find_runs() for key in run.get_metric_keys()}


def _chunk_version(path: Path, oid: str) -> int:
    data = subprocess.run(["git", "cat-file", "blob", oid], cwd=path, capture_output=True, check=True).stdout
    return msgspec.msgpack.decode(data)["format_version"]


def test_the_fixture_is_format_2(old_repo: Path) -> None:
    repo = Repository(old_repo)
    assert repo.store.ledger.read_file("format") == FORMAT_2_MARKER
    assert links_complete(FORMAT_2_MARKER) and not links_complete(b'{"format_version":1,"kind":"ledger"}')
    assert len(list(repo.store.ledger.run_ids())) == 5
    assert {_chunk_version(old_repo, oid) for name, oid in _files(old_repo).items() if "/series/" in name} == {2}


def test_a_format_2_repository_reads_before_any_write(old_repo: Path) -> None:
    repo = Repository(old_repo)
    histories = _histories(repo)
    assert len(histories) == 5 and all(histories.values())
    assert sorted(len(points) for points in histories.values()) == [1, 5, 5, 5, 5]  # eval's acc, the sweep's loss
    assert repo.store.ledger.read_file("format") == FORMAT_2_MARKER  # reading wrote nothing
    report = repo.verify()
    assert report.ok, report.problems


def test_the_first_write_upgrades_the_marker_alone_and_loses_nothing(old_repo: Path) -> None:
    repo = Repository(old_repo)
    before = _files(old_repo)
    histories = _histories(repo)
    shown = {rev: [link.run for link in repo.show(rev).runs] for rev in ("HEAD", "HEAD~1")}
    dangling_before = run_git(old_repo, "fsck", "--dangling", "--no-progress")

    with repo.start_run(name="after-upgrade") as run:
        for step in range(20):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
    new_id = run.id

    after = _files(old_repo)
    assert repo.store.ledger.read_file("format") == LEDGER_FORMAT
    assert b'"format_version":%d' % TREE_FORMAT in LEDGER_FORMAT and FORMAT_VERSION >= TREE_FORMAT >= PLANES_FROM
    # the marker alone changed: no run relisted (format 2 listed them all), every old
    # file kept byte for byte, the new run's files added
    changed = {name for name in before if after.get(name) != before[name]}
    assert changed == {"format"}
    assert {name for name in after if name not in before} == {
        name for name in after if name.startswith((f"{run_dir(new_id)}/", "commits/")) and new_id in name}
    # old chunks read as before; the new run's chunk is format 3 and reads
    assert {k: v for k, v in _histories(Repository(old_repo)).items() if k[0] != new_id} == histories
    assert [p.value for p in Repository(old_repo).get_run(new_id).get_metric_history("loss")] == [
        1.0 / (s + 1) for s in range(20)]
    new_chunks = [oid for name, oid in after.items() if name.startswith(f"{run_dir(new_id)}/series/")]
    assert [_chunk_version(old_repo, oid) for oid in new_chunks] == [FORMAT_VERSION]
    head = run_git(old_repo, "rev-parse", "HEAD").strip()
    assert [link.run for link in repo.show("HEAD").runs] == [*shown["HEAD"], new_id]
    assert [link.run for link in repo.show("HEAD~1").runs] == shown["HEAD~1"]
    assert new_id in repo.store.ledger.commit_run_ids(head)
    run_git(old_repo, "fsck", "--strict")
    assert run_git(old_repo, "fsck", "--dangling", "--no-progress") == dangling_before
    report = repo.verify()
    assert report.ok, report.problems
    proc = run_prov(old_repo, "runs")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 6 and new_id[:12] in proc.stdout


# -- git-prov 0.2.0 meeting format 3 -----------------------------------------------------------
@pytest.fixture
def release_0_2(tmp_path: Path) -> Path:
    return release_source(tmp_path, RELEASE_0_2, "0.2.0")


@pytest.mark.slow
def test_release_0_2_meeting_format_3_says_what_to_install_and_loses_nothing(old_repo: Path, release_0_2: Path) -> None:
    repo = Repository(old_repo)
    with repo.start_run(name="format-3 run") as run:
        run.log_metric("loss", 0.5)
    tip = repo.store.ledger.tip()
    proc = old_prov(release_0_2, "0.2.0", old_repo, "runs")
    assert proc.returncode == 6, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"format version {FORMAT_VERSION}" in lines[0] and "pip install -U" in lines[0], lines[0]
    # a write by 0.2.0 is refused with the release to install, and writes nothing
    proc = old_prov(release_0_2, "0.2.0", old_repo, "run", "--name", "from-0.2", "--", "true")
    assert proc.returncode != 0
    refused = [line for line in proc.stderr.splitlines() if "format version" in line]
    assert refused and "pip install -U 'git-prov>=0.3.0'" in refused[0], proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert run_git(old_repo, "rev-parse", "refs/prov/ledger").strip() == tip  # 0.2.0 wrote nothing
    # the run 0.2.0 started left its journal: this release keeps it, as a crashed run
    repo = Repository(old_repo)
    assert repo.store.ledger.read_file("format") == LEDGER_FORMAT
    runs = repo.find_runs()
    assert len(runs) == 7 and [r.state.status for r in runs if r.name == "from-0.2"] == ["crashed"]
    report = repo.verify()
    assert report.ok, report.problems
