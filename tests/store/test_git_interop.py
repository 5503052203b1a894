"""What prov writes, the real git binary reads (and the other way round), in SHA-1 and
SHA-256 repositories: object ids, notes, fsck, packs with deltas, revisions, races."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from gitprov import api, codec
from gitprov.errors import AmbiguousRevisionError, UnknownRevisionError
from gitprov.store.ledger import Ledger, run_dir
from gitprov.store.notes import Notes, merge_note_lines
from gitprov.store.objects import MODE_BLOB, MODE_TREE, TreeEntry, encode_commit, encode_tree
from gitprov.store.odb import DiskObjectDatabase
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo, run_git

pytestmark = pytest.mark.gitbin


def open_repo(repo: GitRepo) -> GitRepository:
    return GitRepository.open(str(repo.path))


def test_ids_equal_git_hash_object_and_rev_parse(repo: GitRepo) -> None:
    git = open_repo(repo)
    data = b"some bytes\nwith \x00 a nul\n"
    oid = git.odb.write("blob", data)
    stdin = subprocess.run(["git", "hash-object", "--stdin"], cwd=repo.path, input=data, capture_output=True, check=True)
    assert oid == stdin.stdout.decode().strip()
    assert run_git(repo.path, "cat-file", "-t", oid).strip() == "blob"
    head = repo.git("rev-parse", "HEAD").strip()
    assert git.head() == head
    assert git.read_commit(head).tree == repo.git("rev-parse", "HEAD^{tree}").strip()
    # a tree and a commit written by prov are what git computes for the same content
    sub = git.odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, "x.bin", oid)]))
    tree = git.odb.write("tree", encode_tree([TreeEntry(MODE_TREE, "dir", sub), TreeEntry(MODE_BLOB, "dir.txt", oid)]))
    assert repo.git("ls-tree", "-r", "--name-only", tree).split() == ["dir.txt", "dir/x.bin"]
    listing = repo.git("ls-tree", tree)
    mktree = run_git(repo.path, "mktree", input=listing).strip()
    assert mktree == tree
    commit = git.odb.write("commit", encode_commit(tree, [head], "Prov <p@x> 1700000000 +0100", "subject\n\nbody"))
    assert repo.git("rev-parse", f"{commit}^{{tree}}").strip() == tree
    assert repo.git("rev-parse", f"{commit}^").strip() == head
    raw = repo.git("cat-file", "commit", commit)
    again = run_git(repo.path, "hash-object", "-t", "commit", "--stdin", input=raw).strip()
    assert again == commit
    repo.fsck()


def test_git_notes_and_log_show_prov_notes(repo: GitRepo) -> None:
    head = repo.git("rev-parse", "HEAD").strip()
    result = api.capture("HEAD", repo.path)
    line = repo.git("notes", "--ref=prov", "show", head).strip()
    assert line.encode() == codec.encode(result.capture)
    assert line in repo.git("log", "--notes=prov", "-1")
    assert repo.git("notes", "--ref=prov", "list").split() == [repo.git("rev-parse", f"refs/notes/prov:{head}").strip(), head]
    repo.fsck()


def test_git_cat_sort_uniq_merge_equals_prov_merge(repo: GitRepo) -> None:
    """Two diverged notes refs merged by git give the bytes prov's own merge gives."""
    head = repo.git("rev-parse", "HEAD").strip()
    git = open_repo(repo)
    Notes(git).add({head: [b"shared", b"m-base"]})
    repo.git("update-ref", "refs/notes/other", "refs/notes/prov")
    Notes(git, "refs/notes/other").add({head: [b"z-theirs", b"a-theirs"]})
    Notes(git).add({head: [b"k-ours"]})
    repo.git("notes", "--ref=prov", "merge", "-q", "-s", "cat_sort_uniq", "refs/notes/other")
    merged = Notes(open_repo(repo)).read(head)
    assert merged == [b"a-theirs", b"k-ours", b"m-base", b"shared", b"z-theirs"]
    blob = repo.git("rev-parse", f"refs/notes/prov:{head}").strip()
    assert blob == git.fmt.hash_object("blob", merge_note_lines(merged)), "git wrote prov's canonical note bytes"
    repo.fsck()


@pytest.mark.format3  # format 3's paths read back with git (the log's: tests/test_format4_log.py)
def test_fsck_clean_after_init_capture_and_ledger_writes(repo: GitRepo) -> None:
    api.init(repo.path)
    api.capture("HEAD", repo.path)
    head2 = repo.commit("second")
    api.capture(head2, repo.path)
    git = open_repo(repo)
    ledger = Ledger(git)
    run = git.fmt.hash_object("blob", b"record")
    ledger.apply({f"{run_dir(run)}/record": b"record", f"{run_dir(run)}/series/loss/0": b"\x00\x01"}, "run", api.LEDGER_FORMAT)
    repo.fsck()
    assert repo.git("cat-file", "-p", f"refs/prov/ledger:{run_dir(run)}/record") == "record"
    assert repo.git("cat-file", "-p", "refs/prov/ledger:format").encode() == api.LEDGER_FORMAT
    assert repo.git("rev-parse", "refs/prov/ledger").strip() == ledger.tip()
    assert len(repo.git("rev-list", "refs/prov/ledger").split()) == 2
    assert len(repo.git("notes", "--ref=prov", "list").splitlines()) == 2


def test_git_reads_fanned_out_notes(repo: GitRepo) -> None:
    git = open_repo(repo)
    commits = [repo.git("rev-parse", "HEAD").strip()]
    # notes may hang on any object; blobs are quicker to make than commits
    targets = commits + [git.odb.write("blob", b"target %d" % i) for i in range(299)]
    Notes(git).add({t: [b"note %s" % t.encode()] for t in targets})
    listed = dict(reversed(line.split()) for line in repo.git("notes", "--ref=prov", "list").splitlines())
    assert set(listed) == set(targets)
    assert repo.git("notes", "--ref=prov", "show", targets[7]).strip() == f"note {targets[7]}"
    repo.fsck()
    # git adds a note into prov's fanned-out tree and prov finds it
    extra = git.odb.write("blob", b"git's own target")
    repo.git("notes", "--ref=prov", "add", "-m", "from git", extra)
    assert Notes(open_repo(repo)).read(extra) == [b"from git"]
    assert len(dict(Notes(open_repo(repo)).items())) == 301


@pytest.mark.parametrize("ofs_delta", [True, False], ids=["ofs-delta", "ref-delta"])
def test_everything_readable_after_gc(make_repo, object_format: str, ofs_delta: bool) -> None:
    repo = make_repo(object_format)
    lines = [f"line {i}: {'x' * 40}\n" for i in range(200)]
    for rev in range(25):
        lines[rev * 7 % 200] = f"changed in revision {rev}\n"
        repo.commit(f"rev{rev}", {"big.txt": "".join(lines)})
    api.init(repo.path)
    api.capture("HEAD", repo.path)
    api.capture("HEAD~3", repo.path)
    before = api.show("HEAD~3", repo.path)
    repo.git("-c", f"repack.useDeltaBaseOffset={str(ofs_delta).lower()}", "gc", "-q", "--prune=now")
    loose = [d for d in os.listdir(repo.path / ".git/objects") if len(d) == 2]
    assert loose == [], "gc packed every object"
    verify = repo.git("verify-pack", "-v", *[str(p) for p in (repo.path / ".git/objects/pack").glob("*.idx")])
    assert any(len(line.split()) == 7 for line in verify.splitlines()), "git made deltas"
    odb = DiskObjectDatabase(str(repo.path / ".git/objects"), open_repo(repo).fmt)
    versions = repo.git("rev-list", "--all", "--objects").split("\n")
    blobs = [line.split()[0] for line in versions if line.endswith(" big.txt")]
    assert len(blobs) == 25
    for oid in blobs:
        expected = subprocess.run(["git", "cat-file", "blob", oid], cwd=repo.path, capture_output=True, check=True).stdout
        assert odb.read(oid) == ("blob", expected)
    # every object in the pack, whatever its type
    batch = repo.git("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
    expected_types = dict(line.split() for line in batch.splitlines())
    assert set(odb.all_ids()) == set(expected_types)
    for oid, kind in expected_types.items():
        assert odb.read(oid)[0] == kind
    assert api.show("HEAD~3", repo.path) == before
    assert api.capture("HEAD~3", repo.path).created is False
    assert api.Repository(repo.path).verify().ok
    # prov writes loose objects and loose refs on top of packed ones; git agrees
    api.capture("HEAD~1", repo.path)
    repo.fsck()


def test_packed_short_ids_and_too_long_hex(make_repo, object_format: str) -> None:
    repo = make_repo(object_format, commits=3)
    repo.git("gc", "-q", "--prune=now")
    git = open_repo(repo)
    head = repo.git("rev-parse", "HEAD").strip()
    assert git.resolve(head[:7]) == head
    assert git.resolve(head[:7] + "~1") == repo.git("rev-parse", "HEAD~1").strip()
    for extra in ("0", "00", "abc"):
        with pytest.raises(UnknownRevisionError):
            git.resolve(head + extra)


@pytest.fixture
def history(repo: GitRepo) -> GitRepo:
    """main: c0 - c1 - c2 - merge(c2, side) - c4, with tags and a reflog."""
    repo.commit("c1")
    repo.commit("c2")
    repo.git("tag", "light")
    repo.git("tag", "-a", "-m", "annotated", "v1.0")
    repo.git("checkout", "-q", "-b", "side", "HEAD~1")
    repo.commit("s1")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge side", "side")
    repo.commit("c4")
    repo.git("tag", "-a", "-m", "nested", "v2-tag-of-tag", "v1.0")
    return repo


@pytest.mark.parametrize(
    "rev",
    [
        "HEAD", "main", "side", "refs/heads/side", "heads/side", "light", "v1.0", "tags/v1.0",
        "v2-tag-of-tag", "HEAD~2", "HEAD~1^2", "HEAD^^2", "HEAD^1^1", "HEAD~1^2~1", "v1.0~1",
        "v1.0^{commit}", "v1.0^{}", "main@{0}", "main@{1}", "HEAD@{2}", "@", ":/merge side", "@{-1}",
    ],
)
def test_revisions_resolve_like_git_rev_parse(history: GitRepo, rev: str) -> None:
    named = history.git("rev-parse", "--verify", "--end-of-options", rev).strip()
    expected = history.git("rev-parse", "--verify", f"{named}^{{commit}}").strip()
    assert open_repo(history).resolve(rev) == expected


def test_short_ids_resolve_like_git(history: GitRepo) -> None:
    git = open_repo(history)
    for full in history.git("rev-list", "--all").split():
        short = history.git("rev-parse", "--short", full).strip()
        assert git.resolve(short) == full
        assert git.resolve(short + "^0") == full


def test_unknown_revisions(history: GitRepo) -> None:
    git = open_repo(history)
    for rev in ("nosuch", "HEAD~99", "HEAD^3", "main@{99}", "deadbeef", "HEAD:file-c0.txt"):
        with pytest.raises(UnknownRevisionError):
            git.resolve(rev)


def colliding_commits(repo: GitRepo, fmt_name: str, width: int = 4) -> tuple[str, list[bytes]]:
    """Two commit objects whose ids share the first ``width`` hex digits."""
    git = open_repo(repo)
    tree = repo.git("rev-parse", "HEAD^{tree}").strip()
    seen: dict[str, bytes] = {}
    i = 0
    while True:
        body = encode_commit(tree, [], "A <a@x> 1700000000 +0000", f"collide {i}")
        oid = git.fmt.hash_object("commit", body)
        other = seen.setdefault(oid[:width], body)
        if other is not body:
            return oid[:width], [other, body]
        i += 1


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packed"])
def test_ambiguous_short_id(repo: GitRepo, object_format: str, packed: bool) -> None:
    prefix, bodies = colliding_commits(repo, object_format)
    for n, body in enumerate(bodies):
        oid = subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=repo.path, input=body, capture_output=True, check=True
        ).stdout.decode().strip()
        assert oid.startswith(prefix)
        repo.git("branch", f"collide{n}", oid)
    if packed:
        repo.git("gc", "-q", "--prune=now")
    proc = subprocess.run(["git", "rev-parse", "--verify", f"{prefix}^{{commit}}"], cwd=repo.path, capture_output=True, text=True)
    assert proc.returncode != 0 and "ambiguous" in proc.stderr
    with pytest.raises(AmbiguousRevisionError, match="ambiguous"):
        open_repo(repo).resolve(prefix)
    with pytest.raises(AmbiguousRevisionError):
        open_repo(repo).resolve(prefix + "~0")


_WRITER = textwrap.dedent(
    """
    import sys, time
    from gitprov.store.notes import Notes, merge_note_lines
    from gitprov.store.repo import GitRepository
    path, start, *commits = sys.argv[1:]
    while time.time() < float(start):
        time.sleep(0.001)
    notes = Notes(GitRepository.open(path))
    for commit in commits:
        notes.add({commit: [b"writer %s" % commit.encode()]})
    """
)


def test_concurrent_writers_all_notes_land(make_repo) -> None:
    repo = make_repo("sha1", commits=12)
    commits = repo.git("rev-list", "HEAD").split()
    import time

    start = str(time.time() + 1.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(repo.path), start, *commits[i::4]], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    listed = {line.split()[1] for line in repo.git("notes", "--ref=prov", "list").splitlines()}
    assert listed == set(commits)
    for commit in commits:
        assert repo.git("notes", "--ref=prov", "show", commit).strip() == f"writer {commit}"
    assert len(repo.git("rev-list", "refs/notes/prov").split()) == len(commits)
    assert not list((repo.path / ".git/refs/notes").glob("*.lock"))
    repo.fsck()


def test_linked_worktree_shares_provenance(repo: GitRepo) -> None:
    worktree = repo.path.parent / f"{repo.path.name}-wt"
    repo.git("worktree", "add", "-q", "-b", "wt", str(worktree))
    wt = GitRepo(worktree)
    head = wt.commit("on the worktree branch")
    git = GitRepository.open(str(worktree / "sub" if (worktree / "sub").exists() else worktree))
    assert git.work_tree == str(worktree)
    assert git.head() == head
    assert git.common_dir == str(repo.path / ".git")
    assert api.capture("HEAD", worktree).commit == head
    assert api.show("wt", repo.path).captures, "the main work tree sees the worktree's capture"
    assert api.show("main", worktree).captures == []
    assert wt.git("notes", "--ref=prov", "show", head).strip()
    repo.fsck()


def test_notes_follow_amend_and_verify_accepts_linked_copies(repo: GitRepo) -> None:
    """``prov init`` makes git copy notes on rewrite; a copied capture is valid once
    the rewrite link (written by the post-rewrite hook) is in the note too."""
    from gitprov import codec
    from gitprov.model import RewriteLink
    from gitprov.schema import current_pin

    api.init(repo.path, hooks=False)
    old = api.capture("HEAD", repo.path).commit
    repo.git("commit", "-q", "--amend", "-m", "amended")
    new = repo.git("rev-parse", "HEAD").strip()
    copied = api.show("HEAD", repo.path).captures
    assert [c.commit for c in copied] == [old], "git copied the note (notes.rewriteRef)"
    report = api.Repository(repo.path).verify()
    assert any("not its own" in p for p in report.problems), "an unexplained copy is reported"
    link = RewriteLink(old=old, new=new, how="amend", recorded_at="2026-01-01T00:00:00Z", schema=current_pin())
    Notes(open_repo(repo)).add({new: [codec.encode(link)], old: [codec.encode(link)]})
    assert api.Repository(repo.path).verify().problems == []
    repo.fsck()


def test_shallow_clone_history_ends_where_git_says(make_repo, tmp_path, object_format: str) -> None:
    origin = make_repo(object_format, commits=5)
    clone = tmp_path / "shallow"
    run_git(tmp_path, "clone", "-q", "--depth", "2", f"file://{origin.path}", str(clone))
    api.capture("HEAD", clone)
    entries = api.log(None, clone)
    assert [e.commit for e in entries] == run_git(clone, "rev-list", "HEAD").split()
    assert entries[0].captures and len(entries) == 2
    assert api.show("HEAD~1", clone).commit == run_git(clone, "rev-parse", "HEAD~1").strip()
    with pytest.raises(UnknownRevisionError):
        open_repo(GitRepo(clone)).resolve("HEAD~2")


def test_objects_through_alternates(repo: GitRepo, tmp_path) -> None:
    repo.commit("c1")
    shared = tmp_path / "shared"
    run_git(tmp_path, "clone", "-q", "--shared", str(repo.path), str(shared))
    assert (shared / ".git/objects/info/alternates").exists()
    head = run_git(shared, "rev-parse", "HEAD").strip()
    assert api.capture("HEAD~1", shared).created
    assert api.show(head[:9], shared).commit == head
    assert [e.commit for e in api.log(None, shared)] == run_git(shared, "rev-list", "HEAD").split()
    GitRepo(shared).fsck()


# -- reflogs: what prov logs, git reads ------------------------------------------------------


def _run(path, name: str) -> str:
    with api.Repository(path).start_run(name=name, code=False, environment=False) as run:
        run.log_metric("loss", 1.0)
    return run.id


def test_git_reflog_lists_prov_updates_newest_first(repo: GitRepo) -> None:
    api.init(repo.path, hooks=False)
    runs = [_run(repo.path, f"r{i}") for i in range(3)]
    git = open_repo(repo)
    for ref in ("refs/prov/ledger", "refs/notes/prov"):
        ours = git.refs.reflog(ref)
        shown = repo.git("reflog", "show", "--format=%H %gs", ref).splitlines()
        assert shown == [f"{e.new} {e.message}" for e in reversed(ours)]
        assert shown[0].split()[0] == repo.git("rev-parse", ref).strip()
    messages = repo.git("reflog", "show", "--format=%gs", "refs/prov/ledger").splitlines()
    assert messages == [f"prov: run {r[:12]} finished" for r in reversed(runs)] + ["prov: initialise ledger"]
    head = repo.git("rev-parse", "HEAD").strip()  # three runs at one commit: its note written once
    assert repo.git("reflog", "show", "--format=%gs", "refs/notes/prov").splitlines() == [
        f"prov: list the runs of {head[:12]} in refs/prov/ledger"]
    assert repo.git("reflog", "show", "--format=%gn <%ge>", "refs/prov/ledger").splitlines()[0] == "Test User <test@example.com>"
    repo.fsck()


def test_gc_keeps_what_only_a_reflog_reaches_until_it_expires(repo: GitRepo) -> None:
    api.init(repo.path, hooks=False)
    _run(repo.path, "r")
    git = open_repo(repo)
    old = git.refs.read("refs/prov/ledger")
    root = git.odb.write("commit", encode_commit(git.read_commit(old).tree, [], "Prov <p@x> 1700000000 +0000", "squashed"))
    assert git.refs.compare_and_swap("refs/prov/ledger", old, root, "prov: squash the ledger")
    assert old not in repo.git("rev-list", "--all").split(), "only the reflog reaches the old tip"
    repo.git("gc", "--prune=now", "--quiet")
    assert repo.git("cat-file", "-t", old).strip() == "commit", "the reflog kept it through gc"
    repo.fsck()
    repo.git("reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all")
    repo.git("gc", "--prune=now", "--quiet")
    gone = subprocess.run(["git", "cat-file", "-e", old], cwd=repo.path, capture_output=True)
    assert gone.returncode != 0, "gone once its reflog entry expired"


def test_init_gives_an_existing_ledger_a_reflog_git_appends_to(repo: GitRepo) -> None:
    api.init(repo.path, hooks=False)
    logs = repo.path / ".git" / "logs" / "refs" / "prov"
    for log in logs.iterdir():  # a repository prov initialised before it kept reflogs
        log.unlink()
    api.init(repo.path, hooks=False)
    assert (logs / "ledger").read_text() == "", "created empty: the ledger did not move"
    tip = repo.git("rev-parse", "refs/prov/ledger").strip()
    moved = repo.git("commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "by git").strip()
    repo.git("update-ref", "-m", "by git", "refs/prov/ledger", moved, tip)  # git appends to it ...
    run_id = _run(repo.path, "r")  # ... and so does prov
    assert repo.git("reflog", "show", "--format=%gs", "refs/prov/ledger").splitlines() == [
        f"prov: run {run_id[:12]} finished", "by git"]


def test_core_log_all_ref_updates_false_logs_nothing_new(repo: GitRepo) -> None:
    repo.git("config", "core.logAllRefUpdates", "false")
    api.init(repo.path, hooks=False)
    _run(repo.path, "r")
    assert not (repo.path / ".git" / "logs" / "refs" / "prov").exists()
    assert not (repo.path / ".git" / "logs" / "refs" / "notes").exists()
    assert subprocess.run(["git", "reflog", "exists", "refs/prov/ledger"], cwd=repo.path).returncode != 0


@pytest.mark.parametrize(("value", "bare", "mode"), [
    (None, False, "true"), (None, True, "false"), ("always", False, "always"), ("Always", True, "always"),
    ("false", False, "false"), ("true", True, "true"), ("yes", False, "true"), ("0", False, "false"),
])
def test_core_log_all_ref_updates_is_read_as_git_reads_it(make_repo, value: str | None, bare: bool, mode: str) -> None:
    repo = make_repo(bare=bare)
    if value is not None:
        repo.git("config", "core.logAllRefUpdates", value)
    assert GitRepository.open(str(repo.path), require_work_tree=False).refs.log_updates == mode


def test_deleting_a_ref_as_git_does(repo: GitRepo) -> None:
    git = open_repo(repo)
    head = git.head()
    repo.git("tag", "-a", "-m", "annotated", "v1")
    for name in ("refs/prov/packed", "refs/prov/loose"):
        assert git.refs.compare_and_swap(name, None, head, "create")
    repo.git("pack-refs", "--all")  # both only in packed-refs from now on
    second = repo.commit("second")
    assert git.refs.compare_and_swap("refs/prov/loose", head, second, "move")  # loose again, and packed
    assert git.refs.delete("refs/prov/packed", head)
    listed = repo.git("show-ref", "--dereference").split()
    assert "refs/prov/packed" not in listed and "refs/tags/v1^{}" in listed, "other refs and peeled tags kept"
    assert subprocess.run(["git", "reflog", "exists", "refs/prov/packed"], cwd=repo.path).returncode != 0
    assert subprocess.run(["git", "reflog", "exists", "refs/prov/loose"], cwd=repo.path).returncode == 0
    assert not git.refs.delete("refs/prov/loose", head), "the loose value, not the packed one, counts"
    assert git.refs.delete("refs/prov/loose", second)
    assert "refs/prov/loose" not in (repo.path / ".git" / "packed-refs").read_text(), "its packed entry too"
    assert not (repo.path / ".git" / "logs" / "refs" / "prov").exists(), "empty log directories removed"
    assert not (repo.path / ".git" / "refs" / "prov").exists(), "and empty ref directories"
    assert not git.refs.delete("refs/prov/never/there", head)
    assert not (repo.path / ".git" / "refs" / "prov").exists(), "a delete that finds nothing leaves nothing"
    assert repo.git("for-each-ref", "refs/prov/") == ""
    repo.fsck()
