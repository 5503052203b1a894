"""One conformance suite for the store, run against the in-memory twin and a real
on-disk repository, in SHA-1 and SHA-256 repositories."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov.errors import ConcurrentUpdateError, UnknownRevisionError
from gitprov.store import refs as refs_module
from gitprov.store.ledger import Ledger, run_dir, run_link_path
from gitprov.store.notes import NOTES_REF, Notes, merge_note_lines
from gitprov.store.objects import (
    MODE_BLOB,
    MODE_TREE,
    TreeEntry,
    decode_commit,
    decode_tree,
    encode_commit,
    encode_tree,
)
from gitprov.store.repo import GitRepository
from gitprov.store.transaction import commit_on_ref
from gitprov.store.trees import read_tree, walk_blobs

IDENT = "Test User <test@example.com> 1700000000 +0000"


@pytest.fixture(params=["memory", "disk"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(backend: str, object_format: str, make_repo) -> GitRepository:
    """An empty repository: the memory twin or a real ``git init`` on disk."""
    if backend == "memory":
        from gitprov.store.objects import format_named

        return GitRepository.memory(format_named(object_format))
    real = make_repo(object_format, commits=0)
    return GitRepository.open(str(real.path))


def git_id(algo: str, kind: str, data: bytes) -> str:
    return hashlib.new(algo, b"%s %d\x00" % (kind.encode(), len(data)) + data).hexdigest()


def make_commit(repo: GitRepository, message: str, parents: tuple[str, ...] = (), files: dict | None = None) -> str:
    blob = repo.odb.write("blob", message.encode())
    entries = [TreeEntry(MODE_BLOB, name, repo.odb.write("blob", data)) for name, data in (files or {}).items()]
    tree = repo.odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, "msg.txt", blob), *entries]))
    return repo.odb.write("commit", encode_commit(tree, parents, IDENT, message))


def make_history(repo: GitRepository, n: int, ref: str = "refs/heads/main") -> list[str]:
    commits: list[str] = []
    for i in range(n):
        commits.append(make_commit(repo, f"c{i}", tuple(commits[-1:])))
    assert repo.refs.compare_and_swap(ref, None, commits[-1])
    return commits


# -- objects ----------------------------------------------------------------------


def test_object_format_matches_repository(store: GitRepository, object_format: str) -> None:
    assert store.fmt.name == object_format
    assert store.fmt.hex_len == {"sha1": 40, "sha256": 64}[object_format]


@pytest.mark.parametrize("data", [b"", b"hello\n", bytes(range(256)) * 40])
def test_blob_round_trip_and_id(store: GitRepository, object_format: str, data: bytes) -> None:
    oid = store.odb.write("blob", data)
    assert oid == git_id(object_format, "blob", data)
    assert store.odb.contains(oid)
    assert store.odb.read(oid) == ("blob", data)
    assert store.odb.read_typed(oid, "blob") == data
    assert store.odb.write("blob", data) == oid  # idempotent


def test_tree_round_trip_and_canonical_order(store: GitRepository, object_format: str) -> None:
    odb = store.odb
    blob = odb.write("blob", b"x")
    sub = odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, "inner", blob)]))
    # git sorts a tree named "a" as "a/", after the blob "a.txt" ('.' < '/')
    entries = [TreeEntry(MODE_TREE, "a", sub), TreeEntry(MODE_BLOB, "a.txt", blob), TreeEntry(MODE_BLOB, "ü", blob)]
    data = encode_tree(list(reversed(entries)))
    tree = odb.write("tree", data)
    assert tree == git_id(object_format, "tree", data)
    assert list(decode_tree(odb.read_typed(tree, "tree"), store.fmt)) == ["a.txt", "a", "ü"]
    assert read_tree(odb, tree)["a"] == TreeEntry(MODE_TREE, "a", sub)
    assert sorted(walk_blobs(odb, tree)) == [("a.txt", blob), ("a/inner", blob), ("ü", blob)]


def test_commit_round_trip_and_id(store: GitRepository, object_format: str) -> None:
    first = make_commit(store, "first")
    second = make_commit(store, "second line\n\nbody", (first,))
    data = store.odb.read_typed(second, "commit")
    assert second == git_id(object_format, "commit", data)
    commit = store.read_commit(second)
    assert commit.parents == (first,)
    assert commit.summary == "second line"
    assert commit.committer_time == 1700000000
    assert decode_commit(data).tree == commit.tree
    assert store.odb.read_typed(commit.tree, "tree")


def test_missing_and_wrongly_typed_objects_are_data_errors(store: GitRepository) -> None:
    from gitprov.errors import DataError

    blob = store.odb.write("blob", b"not a commit")
    with pytest.raises(DataError, match="expected a commit"):
        store.read_commit(blob)
    missing = "0" * store.fmt.hex_len
    assert not store.odb.contains(missing)
    with pytest.raises(DataError, match="missing"):
        store.odb.read(missing)


# -- refs and revisions ------------------------------------------------------------


def test_compare_and_swap(store: GitRepository) -> None:
    a, b, c = (make_commit(store, m) for m in "abc")
    refs = store.refs
    assert refs.read("refs/prov/test") is None
    assert refs.compare_and_swap("refs/prov/test", None, a)
    assert not refs.compare_and_swap("refs/prov/test", None, b), "create must fail when the ref exists"
    assert refs.compare_and_swap("refs/prov/test", a, b)
    assert not refs.compare_and_swap("refs/prov/test", a, c), "stale old value must lose"
    assert refs.read("refs/prov/test") == b
    assert refs.list("refs/prov/") == {"refs/prov/test": b}


# -- reflogs ------------------------------------------------------------------------------


def test_reflog_records_each_update_in_gits_format(store: GitRepository) -> None:
    a, b = (make_commit(store, m) for m in "ab")
    refs, zero = store.refs, "0" * store.fmt.hex_len
    assert refs.reflog("refs/prov/test") == []
    assert refs.compare_and_swap("refs/prov/test", None, a, "prov: first\n\n  second  line ")
    assert not refs.compare_and_swap("refs/prov/test", None, b, "lost"), "a lost race logs nothing"
    assert refs.compare_and_swap("refs/prov/test", a, a, "no-op"), "an update to the same value succeeds"
    assert refs.compare_and_swap("refs/prov/test", a, b)
    log = refs.reflog("refs/prov/test")
    assert [(e.old, e.new, e.message) for e in log] == [(zero, a, "prov: first second line"), (a, b, "")]
    name, _, rest = log[0].committer.partition(" <")
    email, _, when = rest.partition("> ")
    epoch, tz = when.split(" ")
    assert (name, email) == ("Test User", "test@example.com")  # the committer of prov's commits
    assert epoch.isdigit() and len(tz) == 5 and tz[0] in "+-"


@pytest.mark.parametrize(("mode", "logged"), [
    ("true", {"HEAD", "refs/heads/x", "refs/remotes/o/x", "refs/notes/x", "refs/prov/x", "refs/prov-remotes/o/prov/x"}),
    ("always", {"HEAD", "refs/heads/x", "refs/remotes/o/x", "refs/notes/x", "refs/prov/x", "refs/prov-remotes/o/prov/x",
                "refs/tags/x", "refs/other/x"}),
    ("false", set()),
])
def test_core_log_all_ref_updates_decides_which_reflogs_an_update_creates(store: GitRepository, mode: str,
                                                                           logged: set[str]) -> None:
    names = ["refs/heads/x", "refs/remotes/o/x", "refs/notes/x", "refs/prov/x", "refs/prov-remotes/o/prov/x",
             "refs/tags/x", "refs/other/x"]
    store.refs.log_updates = mode
    commit = make_commit(store, "c")
    for name in names:
        assert store.refs.compare_and_swap(name, None, commit, f"create {name}")
    have = {name for name in names if store.refs.reflog(name)}
    assert have == logged - {"HEAD"}
    assert {name for name in [*names, "HEAD"] if store.refs.autocreates_reflog(name)} == logged


def test_an_existing_reflog_is_appended_to_whatever_the_setting(store: GitRepository) -> None:
    refs = store.refs
    a, b = (make_commit(store, m) for m in "ab")
    refs.log_updates = "false"
    assert not refs.ensure_reflog("refs/other/x"), "with false, no reflog is created"
    refs.log_updates = "always"
    assert refs.ensure_reflog("refs/other/x") and refs.reflog("refs/other/x") == []
    refs.log_updates = "false"
    assert refs.compare_and_swap("refs/other/x", None, a, "one")
    assert refs.compare_and_swap("refs/other/x", a, b, "two")
    assert [e.message for e in refs.reflog("refs/other/x")] == ["one", "two"]


def test_updating_the_current_branch_logs_head_too(store: GitRepository) -> None:
    if store.git_dir is not None:  # on disk, HEAD points at refs/heads/main (init.defaultBranch)
        assert store.refs.symbolic_target("HEAD") == "refs/heads/main"
    a = make_commit(store, "a")
    assert store.refs.compare_and_swap("refs/heads/main", None, a, "commit (initial): a")
    assert store.refs.compare_and_swap("refs/heads/other", None, a, "branch: other")
    assert [e.message for e in store.refs.reflog("HEAD")] == ["commit (initial): a"]


def test_delete_removes_the_ref_and_its_reflog(store: GitRepository) -> None:
    refs = store.refs
    a, b = (make_commit(store, m) for m in "ab")
    assert refs.compare_and_swap("refs/prov/gone", None, a, "create")
    assert not refs.delete("refs/prov/gone", b), "a stale old value loses"
    assert not refs.delete("refs/prov/missing", a)
    assert refs.read("refs/prov/gone") == a and len(refs.reflog("refs/prov/gone")) == 1
    assert refs.delete("refs/prov/gone", a)
    assert refs.read("refs/prov/gone") is None and refs.reflog("refs/prov/gone") == []
    assert refs.list("refs/prov/") == {}
    assert refs.compare_and_swap("refs/prov/gone", None, b, "again"), "a deleted ref can be created again"
    assert [(e.new, e.message) for e in refs.reflog("refs/prov/gone")] == [(b, "again")], "with a fresh reflog"


_NAMES = ["refs/prov/a", "refs/notes/b", "refs/heads/main", "refs/other/c"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["swap", "stale", "delete", "ensure", "mode"]), st.sampled_from(_NAMES),
                          st.integers(0, 2), st.sampled_from(["true", "always", "false"])), max_size=15))
def test_memory_and_disk_reflogs_agree(make_repo, ops: list[tuple[str, str, int, str]]) -> None:
    """The same updates on the twin and on disk: the same refs, the same reflogs."""
    disk = GitRepository.open(str(make_repo("sha1", commits=0).path))
    memory = GitRepository.memory()
    commits = [make_commit(disk, f"c{i}") for i in range(3)]
    assert [make_commit(memory, f"c{i}") for i in range(3)] == commits
    for n, (op, name, i, mode) in enumerate(ops):
        answers = []
        for repo in (memory, disk):
            refs, current = repo.refs, repo.refs.read(name)
            if op == "swap":
                answers.append(refs.compare_and_swap(name, current, commits[i], f"op {n}"))
            elif op == "stale":
                stale = commits[i] if commits[i] != current else None
                answers.append(refs.compare_and_swap(name, stale, commits[(i + 1) % 3], f"op {n}"))
            elif op == "delete":
                answers.append(refs.delete(name, current or commits[i]))
            elif op == "ensure":
                answers.append(refs.ensure_reflog(name))
            else:
                refs.log_updates = mode
        assert len(set(answers)) <= 1, answers
        for name_ in [*_NAMES, "HEAD"]:
            assert memory.refs.read(name_) == disk.refs.read(name_)
            assert [e[:2] + e[3:] for e in memory.refs.reflog(name_)] == [e[:2] + e[3:] for e in disk.refs.reflog(name_)]


def test_transactions_log_their_commit_messages(store: GitRepository) -> None:
    ledger = Ledger(store, layout="tree")  # any paths: format 3's tree
    first = ledger.apply({"a": b"1"}, "prov: one")
    second = ledger.apply({"a": b"2"}, "prov: two")
    log = store.refs.reflog(ledger.ref)
    assert [(e.new, e.message) for e in log] == [(first, "prov: one"), (second, "prov: two")]
    assert log[1].old == first


def test_head_and_revisions(store: GitRepository) -> None:
    from gitprov.errors import EmptyRepositoryError

    with pytest.raises(EmptyRepositoryError):
        store.head()
    commits = make_history(store, 4)
    assert store.head() == commits[-1]
    assert store.resolve("HEAD") == commits[-1]
    assert store.resolve("main") == commits[-1]
    assert store.resolve("refs/heads/main") == commits[-1]
    assert store.resolve("HEAD~2") == commits[1]
    assert store.resolve("HEAD^") == commits[2]
    assert store.resolve("main~1^") == commits[1]
    assert store.resolve("HEAD^0") == commits[-1]
    assert store.resolve(commits[0][:10]) == commits[0]
    assert store.resolve(commits[0].upper()) == commits[0]
    with pytest.raises(UnknownRevisionError):
        store.resolve("HEAD~9")
    with pytest.raises(UnknownRevisionError):
        store.resolve("-x")
    assert store.walk([commits[-1]]) == commits[::-1]
    assert store.walk([commits[-1]], [commits[1]]) == commits[:1:-1]
    assert store.resolve_range(f"{commits[1][:12]}..main") == ([commits[-1]], [commits[1]])


def test_too_long_hex_is_unknown_not_a_crash(store: GitRepository) -> None:
    commits = make_history(store, 1)
    for extra in ("0", "00", "abc"):
        with pytest.raises(UnknownRevisionError):
            store.resolve(commits[0] + extra)


# -- notes -------------------------------------------------------------------------


def test_notes_add_read_items(store: GitRepository) -> None:
    a, b = make_commit(store, "a"), make_commit(store, "b")
    notes = Notes(store)
    assert notes.tip() is None
    assert notes.read(a) == []
    assert list(notes.items()) == []
    tip = notes.add({a: [b'{"x":1}'], b: [b'{"y":2}']})
    assert tip == store.refs.read(NOTES_REF)
    assert notes.read(a) == [b'{"x":1}']
    assert notes.read(b) == [b'{"y":2}']
    items = dict(notes.items())
    assert set(items) == {a, b}
    assert store.odb.read_typed(items[a], "blob") == b'{"x":1}\n'
    assert store.read_commit(tip).parents == ()
    tip2 = notes.add({a: [b'{"z":3}']})
    assert store.read_commit(tip2).parents == (tip,)
    assert notes.read(a, tip) == [b'{"x":1}'], "reading an older tip still works"


def test_notes_merge_lines_sorted_and_unique(store: GitRepository) -> None:
    a = make_commit(store, "a")
    notes = Notes(store)
    notes.add({a: [b"line-b", b"line-a"]})
    notes.add({a: [b"line-a", b"line-c"]})
    assert notes.read(a) == [b"line-a", b"line-b", b"line-c"]
    blob = dict(notes.items())[a]
    assert store.odb.read_typed(blob, "blob") == b"line-a\nline-b\nline-c\n"
    assert merge_note_lines([b"b", b"a"], [b"a"]) == b"a\nb\n"
    tip = notes.tip()
    assert notes.add({a: [b"line-b"]}) == tip, "adding known lines writes no new notes commit"


def test_notes_fan_out_over_256(store: GitRepository) -> None:
    fmt = store.fmt
    notes = Notes(store)
    first = {fmt.hash_object("blob", b"%d" % i): [b"n%d" % i] for i in range(260)}
    notes.add(first)
    root = read_tree(store.odb, store.read_commit(notes.tip()).tree)
    assert all(e.is_tree and len(e.name) == 2 for e in root.values()), "the level must be split"
    # more notes after the split land in the existing subtrees or at the root
    more = {fmt.hash_object("blob", b"more %d" % i): [b"m%d" % i] for i in range(40)}
    notes.add(more)
    every = {**first, **more}
    assert len(every) == 300
    items = dict(notes.items())
    assert set(items) == set(every)
    for oid, lines in every.items():
        assert notes.read(oid) == lines
    # a further line for a note that now lives in a subtree merges into it
    target = next(iter(first))
    notes.add({target: [b"extra"]})
    assert notes.read(target) == sorted([b"extra", *first[target]])
    assert len(dict(notes.items())) == 300


# -- ledger ------------------------------------------------------------------------


def test_ledger_apply_read_list_and_run_ids(store: GitRepository) -> None:
    ledger = Ledger(store)
    assert ledger.tip() is None
    assert ledger.read_file("format") is None
    assert list(ledger.run_ids()) == []
    run_a = store.fmt.hash_object("blob", b"run a")
    run_b = store.fmt.hash_object("blob", b"run b")
    fmt_blob = b'{"format_version":1,"kind":"ledger"}'
    tip1 = ledger.apply(
        {f"{run_dir(run_a)}/record": b"A", f"{run_dir(run_a)}/state": b"sA", f"{run_dir(run_b)}/record": b"B"},
        "two runs",
        fmt_blob,
    )
    assert ledger.tip() == tip1
    assert ledger.read_file("format") == fmt_blob
    assert ledger.read_file(f"{run_dir(run_a)}/record") == b"A"
    assert ledger.read_file(f"{run_dir(run_a)}/nope") is None
    assert ledger.read_file(run_dir(run_a)) is None, "a directory is not a file"
    assert set(ledger.list_dir(run_dir(run_a))) == {"record", "state"}
    assert set(ledger.list_dir("")) == {"format", "runs"}
    assert ledger.list_dir("runs/zz") == {}
    assert sorted(ledger.run_ids()) == sorted([run_a, run_b])
    # deleting a run removes its now-empty shard too; the old tip stays readable
    tip2 = ledger.apply({f"{run_dir(run_b)}/record": None}, "drop b", fmt_blob)
    assert list(ledger.run_ids()) == [run_a]
    if run_a[:2] != run_b[:2]:
        assert run_b[:2] not in ledger.list_dir("runs")
    assert sorted(ledger.run_ids(tip1)) == sorted([run_a, run_b])
    assert store.read_commit(tip2).parents == (tip1,)
    assert ledger.apply({}, "no change", fmt_blob) == tip2, "an unchanged tree writes no commit"


def test_ledger_reads_one_run_and_the_runs_of_one_commit(store: GitRepository) -> None:
    """What readers of one run ask the ledger, where the format lays the run out (a
    format of another layout answers the same questions: tests/store/test_ledger_layouts.py)."""
    ledger = Ledger(store, layout="tree")
    run_a = store.fmt.hash_object("blob", b"run a")
    run_b = run_a[:6] + ("0" if run_a[6] != "0" else "1") + run_a[7:]  # shares a 6-character prefix
    commit = "c" * store.fmt.hex_len
    tip1 = ledger.apply({f"{run_dir(run_a)}/record": b"A", f"{run_dir(run_a)}/state": b"sA",
                         f"{run_dir(run_a)}/series/loss/w-1": b"chunk", f"{run_dir(run_b)}/record": b"B",
                         run_link_path(commit, run_a): b"A"}, "two runs")
    assert ledger.run_file(run_a, "state") == b"sA"
    assert ledger.run_file(run_a, "series") is None, "a folder is not a file"
    assert ledger.run_file(run_b, "state") is None
    assert ledger.run_file("f" * store.fmt.hex_len, "record") is None
    assert set(ledger.run_folder(run_a, "series/loss")) == {"w-1"}
    assert ledger.run_folder(run_a, "artifacts") == {}
    assert ledger.run_ids_with_prefix(run_a[:6]) == sorted([run_a, run_b])
    assert ledger.run_ids_with_prefix(run_a) == [run_a]
    assert ledger.has_runs_at(commit) and not ledger.has_runs_at("d" * store.fmt.hex_len)
    assert list(ledger.iter_commit_run_ids(commit)) == [run_a]
    version = ledger.run_version(run_a)
    assert version is not None and ledger.run_version("f" * store.fmt.hex_len) is None
    ledger.apply({f"{run_dir(run_b)}/state": b"sB"}, "another run changed")
    assert ledger.run_version(run_a) == version, "the version changes with the run only"
    ledger.apply({f"{run_dir(run_a)}/state": b"sA2"}, "the run changed")
    assert ledger.run_version(run_a) != version
    assert ledger.run_file(run_a, "state", tip1) == b"sA", "an older tip reads as it was"


# -- transactions --------------------------------------------------------------------


def test_commit_on_ref_retries_when_another_writer_moves_the_ref(store: GitRepository) -> None:
    ref = "refs/prov/ledger"
    odb = store.odb
    base = commit_on_ref(store, ref, lambda tree, tip: odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, "base", odb.write("blob", b"0"))])), "base")
    seen_trees: list[str | None] = []

    def build(tree: str | None, tip: str | None) -> str | None:
        seen_trees.append(tree)
        if len(seen_trees) == 1:  # another writer wins the race meanwhile
            other_tree = odb.write("tree", encode_tree([*read_tree(odb, tree).values(), TreeEntry(MODE_BLOB, "theirs", odb.write("blob", b"t"))]))
            other = odb.write("commit", encode_commit(other_tree, [base], IDENT, "theirs"))
            assert store.refs.compare_and_swap(ref, base, other)
        entries = read_tree(odb, tree)
        entries["mine"] = TreeEntry(MODE_BLOB, "mine", odb.write("blob", b"m"))
        return odb.write("tree", encode_tree(entries))

    tip = commit_on_ref(store, ref, build, "mine")
    assert len(seen_trees) == 2
    commit = store.read_commit(tip)
    assert set(read_tree(odb, commit.tree)) == {"base", "theirs", "mine"}, "the other writer's work is kept"
    other = commit.parents[0]
    assert store.read_commit(other).parents == (base,)
    assert store.refs.read(ref) == tip


def test_commit_on_ref_gives_up_when_the_ref_never_settles(store: GitRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitprov.store import transaction

    monkeypatch.setattr(transaction, "MAX_ATTEMPTS", 3)
    odb = store.odb
    counter = iter(range(100))

    def build(tree: str | None, tip: str | None) -> str:
        n = next(counter)
        current = store.refs.read("refs/prov/x")
        intruder = make_commit(store, f"intruder {n}")
        assert store.refs.compare_and_swap("refs/prov/x", current, intruder)
        return odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, "f", odb.write("blob", b"%d" % n))]))

    with pytest.raises(ConcurrentUpdateError):
        commit_on_ref(store, "refs/prov/x", build, "never")


# -- disk-only details ------------------------------------------------------------------


def test_disk_objects_are_zlib_loose_objects(make_repo, object_format: str) -> None:
    repo = GitRepository.open(str(make_repo(object_format, commits=0).path))
    oid = repo.odb.write("blob", b"loose\n")
    with open(repo.odb._loose_path(oid), "rb") as f:
        assert zlib.decompress(f.read()) == b"blob 6\x00loose\n"


def test_disk_compare_and_swap_respects_a_held_lock(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = GitRepository.open(str(make_repo("sha1", commits=1).path))
    head = repo.head()
    monkeypatch.setattr(refs_module, "_LOCK_WAIT_SECONDS", 0.05)
    lock = repo.refs._path("refs/prov/locked") + ".lock"
    import os

    os.makedirs(os.path.dirname(lock), exist_ok=True)
    open(lock, "w").close()
    with pytest.raises(ConcurrentUpdateError, match="locked"):
        repo.refs.compare_and_swap("refs/prov/locked", None, head)
    assert os.path.exists(lock), "someone else's lock is never removed"
    assert repo.refs.read("refs/prov/locked") is None
