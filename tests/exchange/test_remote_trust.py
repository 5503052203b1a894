"""Crafted remotes can never change a finished run or local data (issue 16): remote
values obey the limits of the local calls that make them, Lamport clocks are bounded,
what a finished run recorded is immutable, deletions are not merged; each refusal is
one line, exit 5, nothing local moves, and ``prov verify`` names the refused provenance
kept under its tracking ref."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from gitprov import codec
from gitprov.api import Repository
from gitprov.model import RunRecord
from gitprov.store.ledger import LEDGER_REF, run_dir, run_link_path
from gitprov.store.trees import edit_tree, read_path
from tests.conftest import GitRepo, run_prov
from tests.exchange.clones import clone, formats_in_turn, make_run
from tests.exchange.test_remote import _forge, _state_of, assert_forgery_rejected

#: format 3's tree: the module forges remote ledgers in format 3's terms (tests/exchange/test_log_exchange.py runs them again as log transactions)
pytestmark = pytest.mark.format3

TOKEN = "ghp_" + "a1B2" * 9


@pytest.fixture
def remote(make_repo, object_format) -> GitRepo:
    from tests.exchange.clones import seed_bare

    return seed_bare(make_repo, object_format)


def _restate(**changes):
    """A forgery replacing the run's state with ``changes`` applied (``lamport`` as an
    increment when it is a string starting with '+')."""
    def forgery(run_id: str):
        def edit(odb, tree):
            state = msgspec.json.decode(_state_of(odb, tree, run_id))
            for key, value in changes.items():
                if key == "lamport" and isinstance(value, str):
                    state["lamport"] += int(value)
                else:
                    state[key] = value
            return edit_tree(odb, tree, {f"{run_dir(run_id)}/state": msgspec.json.encode(state)})
        return edit
    return forgery


def _new_run(name: str = "forged", params: dict | None = None, **state: object):
    """A forgery adding a whole new run (record, state, commit listing) with these values."""
    def forgery(run_id: str):
        def edit(odb, tree):
            theirs = codec.decode(odb.read_typed(read_path(odb, tree, f"{run_dir(run_id)}/record").oid, "blob"),
                                  RunRecord, "record")
            record = msgspec.structs.replace(theirs, name=name, params=params or {}, nonce="f0" * 8)
            data = codec.encode(record)
            new_id = odb.fmt.hash_object("blob", data)
            fields = {"name": "forged", "status": "finished", "lamport": 1, "writer": "evil0000", **state}
            state_bytes = msgspec.json.encode({"format_version": 1, "kind": "run-state", **fields})
            return edit_tree(odb, tree, {f"{run_dir(new_id)}/record": data, f"{run_dir(new_id)}/state": state_bytes,
                                         run_link_path(record.code.commit, new_id): new_id})
        return edit
    return forgery


REWRITES = {
    # a finished local run, rewritten by a state that would win the merge
    "jumps more than 2**20": _restate(lamport="+1000000000000000", status="failed"),
    "would change params": _restate(lamport="+1", params={"lr": 99}),
    "would change status": _restate(lamport="+1", status="running"),
    "would change status, ended": _restate(lamport="+1", status="killed", ended="2030-01-01T00:00:00.000000Z"),
    "would change metrics": _restate(lamport="+1", metrics={"loss": {"value": 0.0, "step": 0, "timestamp": 0}}),
    "would change artifacts": _restate(lamport="+1", artifacts={"m": {"key": "m", "sha256": "0" * 64, "size": 1}}),
    "would change exit_code": _restate(lamport="+1", exit_code=3),
    "would change experiment": _restate(lamport="+1", experiment="other"),
    "would change datasets": _restate(lamport="+1", datasets={"d": {"key": "d", "digest": "sha256:" + "1" * 64}}),
    # values no local call accepts
    "outside 0 to 2**53": _restate(lamport=2**60),
    "run name": _restate(lamport="+1", name="n" * 500_000),
    "tag key": _restate(lamport="+1", tags={"../x": "v"}),
    "looks like a secret": _restate(lamport="+1", tags={"note": TOKEN}),
    "writer": _restate(lamport="+1", writer="evil\nwriter"),
    "attribute": _restate(lamport="+1", attributes={"$x": 1}),
}

NEW_RUNS = {
    "run name": _new_run(name="n" * 300),
    "hyperparameter key": _new_run(params={"../x": 1}),
    "NaN": _new_run(params={"lr": float("nan")}),
    "looks like a secret": _new_run(params={"note": TOKEN}),
    "lamport clock": _new_run(lamport=2**60),
    "tag key": _new_run(tags={"a\x01": "b"}),
}


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(REWRITES))
def test_a_remote_cannot_rewrite_a_finished_local_run(remote: GitRepo, tmp_path: Path, what: str) -> None:
    victim = assert_forgery_rejected(remote, tmp_path, REWRITES[what], what, pull_first=True)
    verify = run_prov(victim.path, "verify")
    assert verify.returncode == 0, verify.stdout
    assert "refused on pull and is kept unmerged under refs/prov-remotes/origin/prov/ledger" in verify.stdout


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(NEW_RUNS))
def test_a_remote_run_obeys_the_local_limits(remote: GitRepo, tmp_path: Path, what: str) -> None:
    assert_forgery_rejected(remote, tmp_path, NEW_RUNS[what], what)


def test_a_teammate_may_still_rename_tag_and_delete_a_finished_run(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    run_id = make_run(a.path, "first", loss=1.0)
    assert run_prov(a.path, "push").returncode == 0
    b = clone(remote, tmp_path / "b")
    assert run_prov(b.path, "pull").returncode == 0
    run = Repository(b.path).get_run(run_id)
    run.rename("renamed by b")
    run.log_tags({"reviewed": "yes"})
    assert run_prov(b.path, "push").returncode == 0
    assert run_prov(a.path, "pull").returncode == 0, "metadata edits of a finished run are collaboration"
    mine = Repository(a.path).get_run(run_id)
    assert mine.name == "renamed by b" and mine.get_tags() == {"reviewed": "yes"}


def test_a_fast_forward_that_deletes_runs_keeps_them(remote: GitRepo, tmp_path: Path) -> None:
    evil = clone(remote, tmp_path / "evil")
    gone = make_run(evil.path, "to be deleted")
    kept = make_run(evil.path, "kept")
    assert run_prov(evil.path, "push").returncode == 0
    victim = clone(remote, tmp_path / "victim")
    assert run_prov(victim.path, "pull").returncode == 0
    _forge(evil, lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(gone)}/record": None,
                                                         f"{run_dir(gone)}/state": None}))
    proc = run_prov(victim.path, "pull", "--json")
    assert proc.returncode == 0, proc.stderr
    ids = {r["id"] for r in json.loads(run_prov(victim.path, "runs", "--json", "--all").stdout)}
    assert ids == {gone, kept}
    victim.fsck()
    assert run_prov(victim.path, "verify").returncode == 0


def test_a_later_good_pull_clears_the_quarantine(remote: GitRepo, tmp_path: Path) -> None:
    victim = assert_forgery_rejected(remote, tmp_path, REWRITES["would change params"], "would change params",
                                     pull_first=True)
    evil = GitRepo(tmp_path / "evil")
    # the forger's history is replaced by a good one: the remote is forced back
    tip = victim.git("rev-parse", LEDGER_REF).strip()
    victim.git("push", "-q", "--no-verify", "--force", "origin", f"{tip}:{LEDGER_REF}")
    assert evil.path.exists()
    assert run_prov(victim.path, "pull").returncode == 0
    assert "refused on pull" not in run_prov(victim.path, "verify").stdout
