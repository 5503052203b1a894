"""The two ledger layouts answer alike: the same writes through ``Ledger`` as format 3's
tree and as format 4's log (``store/ledger_log.py``), from the start or upgraded by a
checkpoint part way, give the same answers to every question about one run, one commit
and every run; a run's version moves when the run is written and only then. Run on the
in-memory twin and on real repositories, which ``git fsck --strict`` checks."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov.errors import FormatVersionError
from gitprov.store import ledger_log as log
from gitprov.store.ledger import LEDGER_REF, Ledger, run_dir, run_link_path
from gitprov.store.objects import format_named
from gitprov.store.repo import GitRepository
from gitprov.store.trees import read_path, read_tree

COMMITS = ["c" * 40, "d" * 40]


def _record(k: int) -> bytes:
    return b'{"code":{"commit":"%s"},"kind":"run-record","n":%d}' % (COMMITS[k % 2].encode(), k)


#: (run, what): a new run (record, state, link to its commit), a state, a metric chunk,
#: an artifact, the code patch, or the writes of several runs in one transaction
OPS = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["state", "chunk", "artifact", "patch"]),
                         st.integers(0, 3)), max_size=25)


def _changes(repo: GitRepository, made: dict[int, str], k: int, what: str, n: int, step: int) -> dict[str, bytes | str]:
    run = made.get(k)
    changes: dict[str, bytes | str] = {}
    if run is None:
        run = made[k] = repo.fmt.hash_object("blob", _record(k))
        changes[f"{run_dir(run)}/record"] = _record(k)
        changes[run_link_path(COMMITS[k % 2], run)] = run
    base = run_dir(run)
    changes[f"{base}/state"] = b'{"kind":"run-state","step":%d}' % step
    if what == "chunk":
        changes[f"{base}/series/loss/0000000{n}-{step:08d}"] = b"chunk %d" % step
    elif what == "artifact":
        changes[f"{base}/artifacts/model{n}"] = repo.odb.write("blob", b"model %d" % step)
    elif what == "patch":
        changes[f"{base}/code.patch"] = b"patch %d" % step
    return changes


def _answers(ledger: Ledger, made: dict[int, str]) -> dict:
    out: dict = {"runs": list(ledger.run_ids()),
                 "at": {c: ledger.commit_run_ids(c) for c in COMMITS},
                 "has": {c: ledger.has_runs_at(c) for c in [*COMMITS, "e" * 40]}}
    for run in made.values():
        out[run] = {
            "files": {name: ledger.run_file(run, name) for name in ("record", "state", "code.patch",
                                                                     "artifacts/model0", "artifacts/model1")},
            "folders": {f: {n: e.oid for n, e in ledger.run_folder(run, f).items()}
                        for f in ("series/loss", "artifacts", "summaries/loss")},
            "prefix": ledger.run_ids_with_prefix(run[:3]),
        }
    return out


def _repo(kind: str, make_repo) -> GitRepository:
    if kind == "memory":
        return GitRepository.memory(format_named("sha1"))
    return GitRepository.open(str(make_repo("sha1", commits=0).path))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, switch=st.integers(0, 25))
def test_the_log_answers_as_the_tree_does(make_repo, ops, switch):
    """``switch``: the write from which the second ledger is a log (0: from the start;
    later: a format-3 ledger upgraded by a checkpoint)."""
    tree_repo, log_repo = GitRepository.memory(format_named("sha1")), GitRepository.memory(format_named("sha1"))
    tree, as_log = Ledger(tree_repo, layout="tree"), Ledger(log_repo, layout="tree")
    made: dict[int, str] = {}
    made_log: dict[int, str] = {}
    versions: dict[str, str | None] = {}
    for step, (k, what, n) in enumerate(ops):
        if step == switch:
            as_log.write_layout = "log"
        changes = _changes(tree_repo, made, k, what, n, step)
        assert _changes(log_repo, made_log, k, what, n, step) == changes
        tree.apply(changes, f"write {step}")
        as_log.apply(changes, f"write {step}")
        assert as_log.is_log() == (step >= switch)
        run = made[k]
        now = {r: as_log.run_version(r) for r in made.values()}
        assert now[run] != versions.get(run), "the written run's version moved"
        if step != switch:  # the upgrade: every version is of the log's making from then on
            assert all(now[r] == versions[r] for r in versions if r != run), "no other run's did"
        versions = now
    assert _answers(as_log, made) == _answers(tree, made)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_ledger_of_format_3_is_upgraded_by_a_checkpoint_that_git_checks(make_repo, kind):
    repo = _repo(kind, make_repo)
    ledger = Ledger(repo, layout="tree")
    made: dict[int, str] = {}
    for step in range(6):
        ledger.apply(_changes(repo, made, step % 3, ["chunk", "artifact", "patch"][step % 3], 1, step), f"w{step}")
    before = _answers(ledger, made)
    format3_tip = ledger.tip()
    ledger.write_layout = "log"
    ledger.apply(_changes(repo, made, 3, "chunk", 1, 6), "the first write of format 4")
    commit = repo.read_commit(ledger.tip())
    assert commit.parents == (format3_tip,), "the format-3 history is kept below the checkpoint"
    assert repo.odb.read_typed(read_path(repo.odb, commit.tree, "format").oid, "blob") == log.CHECKPOINT_MARKER
    after = _answers(ledger, made)
    assert {r: after[r] for r in made.values() if r in before} == {r: before[r] for r in made.values() if r in before}
    ledger.apply(_changes(repo, made, 0, "state", 0, 7), "a transaction")
    tree = repo.read_commit(ledger.tip()).tree
    assert set(read_tree(repo.odb, tree)) == {"format", "runs", f"{made[0]}^{COMMITS[0]}"}
    if kind == "disk":
        git_dir = repo.git_dir
        fsck = subprocess.run(["git", "--git-dir", git_dir, "fsck", "--strict", "--no-dangling"],
                              capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stderr
        listed = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "--name-only", LEDGER_REF],
                                capture_output=True, text=True, check=True).stdout.split()
        assert listed == sorted(["format", "runs", f"{made[0]}^{COMMITS[0]}"])


def test_a_log_is_never_written_as_format_3(make_repo, monkeypatch):
    """A writer of format 3 meeting a log (its tip's marker) writes the log: the layout
    is the ledger's, not the writer's; an older release is refused by the marker."""
    repo = _repo("memory", make_repo)
    made: dict[int, str] = {}
    Ledger(repo, layout="log").apply(_changes(repo, made, 0, "chunk", 0, 0), "first")
    ledger = Ledger(repo, layout="tree")
    ledger.apply(_changes(repo, made, 0, "chunk", 0, 1), "second")
    assert ledger.is_log() and ledger.run_file(made[0], "state") == b'{"kind":"run-state","step":1}'
    from gitprov.store import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "FORMAT_VERSION", 3)  # what 0.3's writer does with the tip's tree
    with pytest.raises(FormatVersionError, match="git-prov>=0.4.0"):
        ledger_module.upgrade_changes(repo.odb, ledger.tree())
