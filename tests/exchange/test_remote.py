"""prov fetch / pull / push against a real bare repository, with the real git binary:
exchange, convergence, validation of untrusted data, and awkward clones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitprov import codec
from gitprov.api import Repository
from gitprov.errors import RemoteDataError, UsageError
from gitprov.exchange import validate
from gitprov.model import FORMAT_VERSION, RunState
from gitprov.store.ledger import LEDGER_REF, run_dir
from gitprov.store.notes import NOTES_REF
from gitprov.store.objects import TreeEntry, encode_commit, encode_tree
from gitprov.store.transaction import identity_line
from gitprov.store.trees import edit_tree, read_tree
from tests.conftest import GitRepo, run_git, run_prov
from tests.exchange.clones import clone, formats_in_turn, make_run, prov_refs, seed_bare

#: format 3's tree: the module forges remote ledgers in format 3's terms (tests/exchange/test_log_exchange.py runs them again as log transactions)
pytestmark = pytest.mark.format3


@pytest.fixture
def remote(make_repo, object_format) -> GitRepo:
    """A bare remote holding one commit, pushed from a seed clone."""
    return seed_bare(make_repo, object_format)


def test_two_clones_exchange_and_a_fresh_clone_sees_everything(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    ra = make_run(a.path, "from-a", loss=1.0)
    proc = run_prov(a.path, "push", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {o["ref"] for o in json.loads(proc.stdout)["pushed"]} == {LEDGER_REF, NOTES_REF}
    rb = make_run(b.path, "from-b", loss=2.0)
    proc = run_prov(b.path, "push", "--json")  # the remote moved: pull, merge, push again
    assert proc.returncode == 0, proc.stderr
    moved = json.loads(proc.stdout)
    assert moved["push_attempts"] == 2 and moved["run_ids_added"] == [ra]
    proc = run_prov(a.path, "pull", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run_ids_added"] == [rb]
    assert a.git("rev-parse", f"{LEDGER_REF}^{{tree}}") == b.git("rev-parse", f"{LEDGER_REF}^{{tree}}")
    assert run_prov(a.path, "pull").stdout.strip().endswith("everything up to date")

    fresh = clone(remote, tmp_path / "fresh")
    assert run_prov(fresh.path, "pull").returncode == 0
    ids = {r["id"] for r in json.loads(run_prov(fresh.path, "runs", "--json").stdout)}
    assert ids == {ra, rb}
    for repo in (a, b, fresh):
        repo.fsck()
        assert run_prov(repo.path, "verify").returncode == 0


def test_init_in_a_fresh_clone_offers_and_does_the_pull(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    run_id = make_run(a.path, "a")
    run_prov(a.path, "push")
    path = tmp_path / "b"
    run_git(tmp_path, "clone", "-q", str(remote.path), str(path))
    proc = run_prov(path, "init", "--no-hooks")
    assert proc.returncode == 0 and "fetch it with 'prov pull'" in proc.stdout
    assert run_prov(path, "runs", "--json").stdout.strip() == "[]"
    proc = run_prov(path, "init", "--no-hooks", "--pull", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pulled"]["run_ids_added"] == [run_id]


def test_fetch_never_moves_the_live_prov_refs(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    make_run(a.path, "a")
    assert run_prov(a.path, "push").returncode == 0
    before = prov_refs(b)
    proc = run_prov(b.path, "fetch", "--json")
    assert proc.returncode == 0, proc.stderr
    after = prov_refs(b)
    assert {k: v for k, v in after.items() if not k.startswith("refs/prov-remotes/")} == before
    assert after["refs/prov-remotes/origin/prov/ledger"] == prov_refs(a)[LEDGER_REF]


def test_every_prov_ref_an_exchange_moves_has_a_reflog(remote: GitRepo, tmp_path: Path) -> None:
    """The remotes' copies are logged like remote-tracking branches: git logs its fetch
    into them (prov created the log), prov its push and merge."""
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    make_run(a.path, "a")
    assert run_prov(a.path, "push").returncode == 0
    copy = "refs/prov-remotes/origin/prov/ledger"
    assert a.git("reflog", "show", "--format=%gs", copy).splitlines() == ["prov: push refs/prov/ledger to origin"]
    make_run(b.path, "b")
    assert run_prov(b.path, "pull").returncode == 0
    fetched = b.git("reflog", "show", "--format=%H %gs", copy).splitlines()
    assert [line.split(" ", 1)[0] for line in fetched] == [prov_refs(a)[LEDGER_REF]]
    assert fetched[0].split(" ", 1)[1].startswith("fetch"), "git's own entry"
    merged = b.git("reflog", "show", "--format=%H %gs", LEDGER_REF).splitlines()[0]
    assert merged == f"{prov_refs(b)[LEDGER_REF]} prov: merge {LEDGER_REF} from origin: merged"
    kept = b.git("reflog", "show", "--format=%H %gs", "refs/prov/keep").splitlines()
    assert kept[0] == f"{prov_refs(b)['refs/prov/keep']} prov: keep 1 commit(s) runs pin"
    b.fsck()


def test_the_same_run_edited_in_two_clones_keeps_the_later_state(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    run_id = make_run(a.path, "shared")
    run_prov(a.path, "push")
    run_prov(b.path, "pull")
    Repository(a.path).get_run(run_id).log_tag("by", "a")
    run_b = Repository(b.path).get_run(run_id)
    run_b.log_tag("by", "b")
    run_b.log_tag("again", "b")  # b's state is later (higher lamport clock)
    assert run_prov(a.path, "push").returncode == 0
    assert run_prov(b.path, "push").returncode == 0
    assert run_prov(a.path, "pull").returncode == 0
    for repo in (a, b):
        assert Repository(repo.path).get_run(run_id).get_tags() == {"by": "b", "again": "b"}
    assert a.git("rev-parse", f"{LEDGER_REF}^{{tree}}") == b.git("rev-parse", f"{LEDGER_REF}^{{tree}}")


# -- untrusted data --------------------------------------------------------------------
def _forge(repo: GitRepo, edit) -> None:
    """Rewrite the ledger of ``repo`` with ``edit(odb, tree) -> tree`` and force-push it."""
    git = Repository(repo.path).git
    tip = git.refs.read(LEDGER_REF)
    tree = edit(git.odb, git.read_commit(tip).tree)
    commit = git.odb.write("commit", encode_commit(tree, [tip], identity_line(git), "forged"))
    assert git.refs.compare_and_swap(LEDGER_REF, tip, commit)
    repo.git("push", "-q", "--no-verify", "--force", "origin", f"{LEDGER_REF}:{LEDGER_REF}")


def _state_of(odb, tree: str, run_id: str) -> bytes:
    from gitprov.store.trees import read_path

    return odb.read_typed(read_path(odb, tree, f"{run_dir(run_id)}/state").oid, "blob")


FORGERIES = {
    "id does not match": lambda run_id: lambda odb, tree: edit_tree(
        odb, tree, {f"{run_dir(run_id)}/record": codec.encode({"format_version": 1, "kind": "run-record"})}),
    "newer than this git-prov": lambda run_id: lambda odb, tree: edit_tree(
        odb, tree, {f"{run_dir(run_id)}/state": _state_of(odb, tree, run_id).replace(b'"format_version":%d' % FORMAT_VERSION, b'"format_version":99')}),
    "unexpected entry 'evil'": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/evil": b"x"}),
    "not a run id": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"runs/{run_id[:2]}/zz-not-an-id/record": b"x"}),
    "at the ledger root": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {"payload": b"x"}),
    "not a chunk name": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/series/loss/x": b"x"}),
    "not a summary name": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/summaries/loss/x": b"x"}),
    "not a metric-summary": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/summaries/loss/0123abcd": b"x"}),
    "malformed object": lambda run_id: lambda odb, tree: edit_tree(odb, tree, {f"{run_dir(run_id)}/series/loss/../x": b"x"}),
}


def assert_forgery_rejected(remote: GitRepo, tmp_path: Path, forgery, what: str, pull_first: bool = False) -> GitRepo:
    """A run pushed, then forged by ``forgery(run_id)``: the victim's pull is refused
    naming ``what``, and nothing local moves. ``pull_first``: the victim pulled the run
    as first pushed (so only what the forgery changed is new to it)."""
    evil = clone(remote, tmp_path / "evil")
    run_id = make_run(evil.path, "evil", loss=1.0)
    run_prov(evil.path, "push")
    victim = clone(remote, tmp_path / "victim")
    if pull_first:
        assert run_prov(victim.path, "pull").returncode == 0
    make_run(victim.path, "mine")
    _forge(evil, forgery(run_id))
    local = lambda: {k: v for k, v in prov_refs(victim).items() if not k.startswith("refs/prov-remotes/")}  # noqa: E731
    before = local()
    proc = run_prov(victim.path, "pull")
    assert proc.returncode == 5, proc.stderr
    assert what in proc.stderr and "nothing merged" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert local() == before
    return victim


@pytest.mark.parametrize(("object_format", "what"), formats_in_turn(FORGERIES))
def test_malformed_remote_ledgers_are_rejected_and_nothing_moves(remote: GitRepo, tmp_path: Path, what: str) -> None:
    victim = assert_forgery_rejected(remote, tmp_path, FORGERIES[what], what)
    assert run_prov(victim.path, "push").returncode == 5  # a push needs the merge too: refused the same way


def test_a_symlink_in_a_remote_run_is_rejected(remote: GitRepo, tmp_path: Path) -> None:
    evil = clone(remote, tmp_path / "evil")
    run_id = make_run(evil.path, "evil")
    run_prov(evil.path, "push")

    def add_symlink(odb, tree):
        run_tree = read_tree(odb, edit_tree(odb, tree, {}) and _dir(odb, tree, run_id))
        run_tree["artifacts"] = TreeEntry("40000", "artifacts", odb.write("tree", encode_tree(
            [TreeEntry("120000", "model", odb.write("blob", b"/etc/passwd"))])))
        new_dir = odb.write("tree", encode_tree(run_tree))
        shard = read_tree(odb, _dir(odb, tree, run_id[:2], shard=True))
        shard[run_id] = TreeEntry("40000", run_id, new_dir)
        runs = read_tree(odb, read_tree(odb, tree)["runs"].oid)
        runs[run_id[:2]] = TreeEntry("40000", run_id[:2], odb.write("tree", encode_tree(shard)))
        root = read_tree(odb, tree)
        root["runs"] = TreeEntry("40000", "runs", odb.write("tree", encode_tree(runs)))
        return odb.write("tree", encode_tree(root))

    _forge(evil, add_symlink)
    victim = clone(remote, tmp_path / "victim")
    proc = run_prov(victim.path, "pull")
    assert proc.returncode == 5 and "must be a regular file" in proc.stderr, proc.stderr


def _dir(odb, tree: str, name: str, shard: bool = False) -> str:
    from gitprov.store.trees import read_path

    return read_path(odb, tree, f"runs/{name}" if shard else run_dir(name)).oid


def test_oversized_remote_records_are_rejected(remote: GitRepo, tmp_path: Path, monkeypatch) -> None:
    a = clone(remote, tmp_path / "a")
    make_run(a.path, "big", loss=1.0)
    run_prov(a.path, "push")
    b = clone(remote, tmp_path / "b")
    monkeypatch.setitem(validate.LIMITS, "state", 10)
    before = prov_refs(b)
    with pytest.raises(RemoteDataError, match="more than the 10 accepted"):
        Repository(b.path).pull()
    assert {k: v for k, v in prov_refs(b).items() if not k.startswith("refs/prov-remotes/")} == before


def test_a_malformed_remote_note_is_rejected(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    make_run(a.path, "a")
    run_prov(a.path, "push")
    a.git("notes", "--ref=prov", "append", "-m", '{"kind":"run","format_version":1}', "HEAD")
    a.git("push", "-q", "--no-verify", "origin", f"{NOTES_REF}:{NOTES_REF}")
    b = clone(remote, tmp_path / "b")
    proc = run_prov(b.path, "pull")
    assert proc.returncode == 5 and "note of" in proc.stderr, proc.stderr


# -- awkward clones -------------------------------------------------------------------
def test_no_remote_is_a_usage_error(make_repo) -> None:
    repo = make_repo()
    proc = run_prov(repo.path, "pull")
    assert proc.returncode == 2 and "no remote" in proc.stderr
    with pytest.raises(UsageError):
        Repository(repo.path).push()


def test_unreachable_remote_is_exit_11(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    make_run(repo.path, "local")
    repo.git("remote", "add", "origin", f"file://{tmp_path}/nowhere.git")
    proc = run_prov(repo.path, "push")
    assert proc.returncode == 11 and "origin" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_remote_refusing_writes_is_exit_11_and_local_unchanged(remote: GitRepo, tmp_path: Path) -> None:
    hook = remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'permission denied: read-only mirror' >&2\nexit 1\n")
    hook.chmod(0o755)
    a = clone(remote, tmp_path / "a")
    make_run(a.path, "a")
    before = prov_refs(a)
    proc = run_prov(a.path, "push")
    assert proc.returncode == 11, proc.stderr
    assert "refused" in proc.stderr and "Traceback" not in proc.stderr
    assert {k: v for k, v in prov_refs(a).items() if k != "refs/prov/keep"} == before


def test_shallow_clone_and_detached_head(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    for i in range(3):
        a.commit(f"more{i}")
    a.git("push", "-q", "origin", "HEAD:main")
    run_id = make_run(a.path, "a")
    run_prov(a.path, "push")
    shallow = tmp_path / "shallow"
    run_git(tmp_path, "clone", "-q", "--depth", "1", f"file://{remote.path}", str(shallow))
    run_git(shallow, "checkout", "-q", "--detach")
    assert run_prov(shallow, "init", "--no-hooks").returncode == 0
    proc = run_prov(shallow, "pull")
    assert proc.returncode == 0, proc.stderr
    assert (shallow / ".git" / "shallow").exists()  # still shallow: prov refs do not deepen history
    assert run_git(shallow, "rev-list", "--count", "HEAD").strip() == "1"
    assert [r["id"] for r in json.loads(run_prov(shallow, "runs", "--json").stdout)] == [run_id]
    make_run(shallow, "from-shallow")
    assert run_prov(shallow, "push").returncode == 0


def test_ci_checkout_without_prov_prov_refs(remote: GitRepo, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    make_run(a.path, "a")
    run_prov(a.path, "push")
    ci = tmp_path / "ci"
    run_git(tmp_path, "clone", "-q", "--depth", "1", f"file://{remote.path}", str(ci))
    proc = run_prov(ci, "show", "HEAD")
    assert proc.returncode == 0 and "prov pull" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert run_prov(ci, "pull").returncode == 0  # works without prov init
    assert "a" in run_prov(ci, "runs").stdout


def test_state_of_a_forged_future_version_names_the_upgrade(remote: GitRepo, tmp_path: Path) -> None:
    state = codec.encode(RunState(lamport=1, writer="x")).replace(b'"format_version":%d' % FORMAT_VERSION, b'"format_version":99')
    assert b"99" in state


def test_a_pull_writes_gits_commit_graph_unless_the_user_chose_not_to(remote: GitRepo, tmp_path: Path) -> None:
    """What arrives gets git's commit-graph (as ``fetch.writeCommitGraph`` writes it), so
    the history a log is read from is walked at once; a user's own setting wins."""
    first = clone(remote, tmp_path / "first")
    make_run(first.path, "r")
    assert run_prov(first.path, "push").returncode == 0
    graphs = lambda repo: sorted(p.name for p in (repo.path / ".git" / "objects" / "info").glob("commit-graph*"))  # noqa: E731
    mine = clone(remote, tmp_path / "mine")
    assert not graphs(mine)
    assert run_prov(mine.path, "pull").returncode == 0
    assert graphs(mine)
    run_git(mine.path, "commit-graph", "verify")
    declined = clone(remote, tmp_path / "declined")
    run_git(declined.path, "config", "fetch.writeCommitGraph", "false")
    assert run_prov(declined.path, "pull").returncode == 0
    assert not graphs(declined)
