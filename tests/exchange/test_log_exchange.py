"""Exchange of format 4's log (``store/ledger_log.py``) with the real git binary: the
exchange tests of format 3 run again on ledgers kept as logs (``GIT_PROV_LEDGER_LAYOUT``),
every forgery of a remote is refused as in format 3 (each written as the log's own
transaction), and the log's own rules: a checkpoint may not hide runs, format 3 may not
be written on top of the log, a clone still on format 3 merges with one on the log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitprov.api import Repository
from gitprov.store import ledger_log as log
from gitprov.store.ledger import LEDGER_FORMAT, LEDGER_REF, Ledger, run_dir, run_link_path
from gitprov.store.objects import encode_commit
from gitprov.store.transaction import identity_line
from gitprov.store.trees import edit_tree, walk_blobs
from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange import (
    test_pull_streaming,
    test_push_contention,
    test_remote,
    test_remote_trust,
    test_transports,
)
from tests.exchange.clones import clone, formats_in_turn, ledger_run_ids, make_run, seed_bare
from tests.exchange.test_remote import assert_forgery_rejected
from tests.exchange.test_remote_trust import NEW_RUNS, REWRITES


@pytest.fixture(autouse=True)
def as_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_PROV_LEDGER_LAYOUT", "log")
    monkeypatch.setattr(test_remote, "_forge", _forge_log)


@pytest.fixture
def remote(make_repo, object_format) -> GitRepo:
    return seed_bare(make_repo, object_format)


served = test_transports.served
git_daemon = test_transports.git_daemon

# format 3's exchange tests, on logs
test_two_clones_exchange_and_a_fresh_clone_sees_everything = \
    test_remote.test_two_clones_exchange_and_a_fresh_clone_sees_everything
test_the_same_run_edited_in_two_clones_keeps_the_later_state = \
    test_remote.test_the_same_run_edited_in_two_clones_keeps_the_later_state
test_a_teammate_may_still_rename_tag_and_delete_a_finished_run = \
    test_remote_trust.test_a_teammate_may_still_rename_tag_and_delete_a_finished_run
test_three_clones_over_git_daemon_converge_in_every_order = \
    test_transports.test_three_clones_over_git_daemon_converge_in_every_order
test_many_clones_pushing_at_once_all_land_and_converge = \
    test_push_contention.test_many_clones_pushing_at_once_all_land_and_converge
test_git_push_carries_and_merges_provenance = test_transports.test_git_push_carries_and_merges_provenance
test_pull_shows_progress_on_a_terminal_and_nothing_when_piped = \
    test_pull_streaming.test_pull_shows_progress_on_a_terminal_and_nothing_when_piped
test_json_summaries_of_fetch_pull_and_push = test_pull_streaming.test_json_summaries_of_fetch_pull_and_push


def _as_format_3(view, odb) -> str:
    """The tree format 3 would hold for the ledger ``view`` shows (to forge in its terms)."""
    changes: dict[str, bytes | str] = {}
    for run_id, _ in view.run_blobs():
        record, state = view.run_parts(run_id)
        changes[f"{run_dir(run_id)}/record"], changes[f"{run_dir(run_id)}/state"] = record, state
        changes.update({f"{run_dir(run_id)}/{path}": oid for path, oid in view.files(run_id).items() if path})
    for commit in view.commits_with_runs():
        changes.update({run_link_path(commit, run_id): run_id for run_id in view.run_ids_at(commit)})
    return edit_tree(odb, None, changes)


def _push_forged(repo: GitRepo, git, tip: str, tree: str) -> None:
    commit = git.odb.write("commit", encode_commit(tree, [tip], identity_line(git), "forged"))
    assert git.refs.compare_and_swap(LEDGER_REF, tip, commit)
    repo.git("push", "-q", "--no-verify", "--force", "origin", f"{LEDGER_REF}:{LEDGER_REF}")


def _forge_log(repo: GitRepo, edit) -> None:
    """``test_remote._forge`` for a log: ``edit`` changes the ledger as format 3 would
    hold it; what it changed becomes one transaction of the log, force-pushed."""
    git = Repository(repo.path).git
    ledger = Ledger(git)
    tip, view = ledger.tip(), ledger.log_view()
    before = _as_format_3(view, git.odb)
    old = dict(walk_blobs(git.odb, before))
    changed = {path: oid for path, oid in walk_blobs(git.odb, edit(git.odb, before)) if old.get(path) != oid}
    try:
        def current(run_id: str, part: str):
            parts = view.run_blob(run_id)
            return None if parts is None else parts[("record", "state", "artifacts").index(part)]

        entries = log.log_entries(changed, current, lambda oid: git.odb.read_typed(oid, "blob"))
    except ValueError:  # a path the log has no name for: kept as it is, for validation to name
        entries = {path.rsplit("/", 1)[-1] if path.count("/") else path: oid for path, oid in changed.items()}
    _push_forged(repo, git, tip, log.log_tree(git, entries) if all(log.run_of(n) for n in entries)
                 else edit_tree(git.odb, log.log_tree(git, {}), entries))


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(REWRITES, first="sha256"))
def test_a_remote_cannot_rewrite_a_finished_local_run(remote: GitRepo, tmp_path: Path, what: str) -> None:
    victim = assert_forgery_rejected(remote, tmp_path, REWRITES[what], what, pull_first=True)
    assert Ledger(Repository(victim.path).git).is_log()


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(NEW_RUNS, first="sha256"))
def test_a_remote_run_obeys_the_local_limits(remote: GitRepo, tmp_path: Path, what: str) -> None:
    assert_forgery_rejected(remote, tmp_path, NEW_RUNS[what], what)


@pytest.mark.parametrize("object_format", ["sha256"])
def test_this_clones_runs_listed_or_asked_one_by_one_give_the_same_verdict(remote: GitRepo, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """Validation learns which arriving runs this clone holds from a listing of its runs
    when it holds no more entries than arrive (a first pull), else by asking run by
    run: either way a finished run it holds keeps its protection."""
    from gitprov.exchange import remote as exchange
    from gitprov.store.repo import GitRepository
    from tests.exchange.test_pull_arriving import _log_verdict

    what = "would change params"
    evil = clone(remote, tmp_path / "evil")
    run_id = make_run(evil.path, "evil", loss=1.0)
    run_prov(evil.path, "push")
    victim = clone(remote, tmp_path / "victim")
    assert run_prov(victim.path, "pull").returncode == 0
    make_run(victim.path, "mine")
    test_remote._forge(evil, REWRITES[what](run_id))
    repo = GitRepository.open(str(victim.path))
    exchange.fetch(repo, "origin")
    listed, real = [], log.LogView.run_ids
    verdicts = []
    for at_most in (1 << 30, 0):  # everything listed; nothing, so each run asked for
        monkeypatch.setattr(log.LogView, "run_ids", lambda self, at_most, n=at_most: listed.append(
            found := real(self, n)) or found)
        verdicts.append(_log_verdict(repo, None))
    assert listed[0] is not None and run_id in listed[0] and listed[1] is None
    assert verdicts[0] == verdicts[1]
    assert any(what in problem for problem in verdicts[0][0]), verdicts[0]


def _forge_entries(entries):
    """A forgery adding ``entries(run id, its blob's entry, that blob) -> {name: content}``
    as a transaction."""
    def forgery(run_id: str):
        def edit(odb, tree):
            return tree  # not used: the entries go in as they are
        edit.entries = lambda view: entries(run_id, *_blob_of(view, run_id))  # type: ignore[attr-defined]
        return edit
    return forgery


def _blob_of(view, run_id: str) -> tuple[str, bytes]:
    """A run's blob entry and content, in the log ``view`` shows."""
    [(name, oid)] = [(n, o) for n, o in view.cache.entries_of(run_id).items() if log.is_run_blob(n)]
    return name, view.repo.odb.read_typed(oid, "blob")


LOG_FORGERIES = {
    "holds the record of another run": lambda run, name, blob: {
        name: log.encode_run_blob(b'{"kind":"run-record"}', b"{}")},
    "not a run's entry": lambda run, name, blob: {"payload": b"x"},
    "unexpected ledger entry": lambda run, name, blob: {f"{run}=loss": b"x"},
    "not a chunk name": lambda run, name, blob: {f"{run}=loss=x": b"x"},
    "not a summary name": lambda run, name, blob: {f"{run}+loss=x": b"x"},
    "linked to commit": lambda run, name, blob: {log.run_blob_name(run, "f" * len(run)): blob},
    "missing record": lambda run, name, blob: {f"{'e' * len(run)}=loss=0123abcd-00000001": b"x"},
}


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(LOG_FORGERIES))
def test_malformed_remote_logs_are_rejected_and_nothing_moves(remote: GitRepo, tmp_path: Path, what: str,
                                                              monkeypatch) -> None:
    def forge(repo: GitRepo, edit) -> None:
        git = Repository(repo.path).git
        tip = git.refs.read(LEDGER_REF)
        entries = edit.entries(Ledger(git).log_view())
        tree = edit_tree(git.odb, log.log_tree(git, {}), entries)  # names the log refuses, kept as they are
        _push_forged(repo, git, tip, tree)

    monkeypatch.setattr(test_remote, "_forge", forge)
    assert_forgery_rejected(remote, tmp_path, _forge_entries(LOG_FORGERIES[what]), what, pull_first=True)


def test_a_checkpoint_that_hides_runs_is_refused(remote: GitRepo, tmp_path: Path, monkeypatch) -> None:
    def forge(repo: GitRepo, edit) -> None:
        git = Repository(repo.path).git
        tip = git.refs.read(LEDGER_REF)
        _push_forged(repo, git, tip, log.checkpoint_tree(git, {}))

    monkeypatch.setattr(test_remote, "_forge", forge)
    assert_forgery_rejected(remote, tmp_path, _forge_entries(lambda *_: {}), "leaves out", pull_first=True)


def test_format_3_written_on_top_of_the_log_is_refused(remote: GitRepo, tmp_path: Path, monkeypatch) -> None:
    def forge(repo: GitRepo, edit) -> None:
        git = Repository(repo.path).git
        tip = git.refs.read(LEDGER_REF)
        _push_forged(repo, git, tip, edit_tree(git.odb, None, {"format": LEDGER_FORMAT}))

    monkeypatch.setattr(test_remote, "_forge", forge)
    assert_forgery_rejected(remote, tmp_path, _forge_entries(lambda *_: {}), "written on top of format 4",
                            pull_first=True)


def test_a_clone_still_on_format_3_and_one_on_the_log_merge(remote: GitRepo, tmp_path: Path) -> None:
    """A clone that wrote format 3 (before upgrading) pulls a log, and the log clone
    pulls it back: both hold every run, in a checkpoint merge."""
    old = {"GIT_PROV_LEDGER_LAYOUT": "tree"}

    def old_run(repo: GitRepo, name: str) -> None:  # a subprocess writing format 3
        proc = run_prov(repo.path, "run", "--name", name, "--", "true", env=old)
        assert proc.returncode == 0, proc.stderr

    def old_clone(name: str) -> GitRepo:
        run_git(tmp_path, "clone", "-q", str(remote.path), name)
        assert run_prov(tmp_path / name, "init", "--no-hooks", "--no-pull", env=old).returncode == 0
        return GitRepo(tmp_path / name)

    a = old_clone("a")
    old_run(a, "both")
    assert run_prov(a.path, "push", env=old).returncode == 0  # format 3 on the remote
    b = old_clone("b")
    assert run_prov(b.path, "pull", env=old).returncode == 0
    old_run(a, "a, format 3")
    make_run(b.path, "b, the log")  # b's first write upgrades it
    assert Ledger(Repository(b.path).git).is_log() and not Ledger(Repository(a.path).git).is_log()
    assert run_prov(b.path, "push").returncode == 0  # the log on the remote
    proc = run_prov(a.path, "push", "--json", env=old)  # a merges it (a checkpoint), then pushes
    assert proc.returncode == 0, proc.stderr
    assert run_prov(b.path, "pull").returncode == 0
    for repo in (a, b):
        names = {r["name"] for r in json.loads(run_prov(repo.path, "runs", "--json").stdout)}
        assert names == {"both", "a, format 3", "b, the log"}
        assert Ledger(Repository(repo.path).git).is_log()
        assert run_prov(repo.path, "verify").returncode == 0
        repo.fsck()
    assert len(ledger_run_ids(b)) == 3


@pytest.mark.parametrize("left_out", ["nothing", "a run", "a chunk"])
def test_a_checkpoint_on_format_3_must_hold_every_run_and_file(remote: GitRepo, tmp_path: Path, monkeypatch,
                                                                left_out: str) -> None:
    """A checkpoint pushed on top of a format-3 ledger (what an upgrade writes) is checked
    against format 3's trees: one that leaves out a run, or one of a run's files, is
    refused; the honest one is pulled whole."""
    monkeypatch.setenv("GIT_PROV_LEDGER_LAYOUT", "tree")
    evil = clone(remote, tmp_path / "evil")
    runs = [make_run(evil.path, f"r{i}", loss=float(i)) for i in range(3)]
    assert run_prov(evil.path, "push").returncode == 0
    git = Repository(evil.path).git
    tip = git.refs.read(LEDGER_REF)
    assert not Ledger(git).is_log(tip)
    with git.odb.batch():
        entries, _ = log.stored_checkpoint(git, git.read_commit(tip).tree)
    if left_out == "a run":
        del entries[next(n for n in entries if log.is_run_blob(n) == runs[1])]
    elif left_out == "a chunk":
        del entries[next(n for n in entries if log.run_of(n) == runs[2] and "=loss=" in n)]
    _push_forged(evil, git, tip, log.checkpoint_tree(git, entries))
    monkeypatch.setenv("GIT_PROV_LEDGER_LAYOUT", "log")
    victim = clone(remote, tmp_path / "victim")
    before = Repository(victim.path).git.refs.read(LEDGER_REF)
    proc = run_prov(victim.path, "pull")
    if left_out == "nothing":
        assert proc.returncode == 0, proc.stderr
        assert ledger_run_ids(victim.path) == set(runs)
        assert Ledger(Repository(victim.path).git).is_log()
    else:
        assert proc.returncode == 5 and "leaves out 1 entry" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert Repository(victim.path).git.refs.read(LEDGER_REF) == before  # nothing merged
