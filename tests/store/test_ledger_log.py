"""Format 4's log (``store/ledger_log.py``): the fold of any history of transactions,
merges and checkpoints on several clones is the tree a materialized three-way merge
gives: an entry one side wrote since the merge base comes from that side, one both
sides wrote differently from the merge commit's resolution (here the higher blob id).

The reference keeps every commit's whole tree and merges trees; the log keeps only what
each commit wrote and folds. Both run on one in-memory object database."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov.errors import DataError
from gitprov.store import ledger_log as log
from gitprov.store.ledger_log import history
from gitprov.store.repo import GitRepository

IDENT = "T <t@example.com> 1700000000 +0000"
RUNS = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(3)]


class Reference:
    """Every commit's whole tree, its parents, and the names it wrote."""

    def __init__(self) -> None:
        self.tree: dict[str, dict[str, str]] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.wrote: dict[str, set[str]] = {}

    def add(self, commit: str, parents: tuple[str, ...], tree: dict[str, str], wrote: set[str]) -> None:
        self.tree[commit], self.parents[commit], self.wrote[commit] = tree, parents, wrote

    def ancestors(self, commit: str) -> set[str]:
        seen, todo = {commit}, [commit]
        while todo:
            for parent in self.parents[todo.pop()]:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    def written_above(self, tip: str, common: set[str]) -> set[str]:
        return {name for c in self.ancestors(tip) - common for name in self.wrote[c]}

    def merged(self, ours: str, theirs: str) -> tuple[dict[str, str], dict[str, str]]:
        """The three-way merge of two commits' trees, and the resolutions in it."""
        common = self.ancestors(ours) & self.ancestors(theirs)
        mine, other = self.written_above(ours, common), self.written_above(theirs, common)
        a, b = self.tree[ours], self.tree[theirs]
        tree = dict(a)
        resolved = {}
        for name in other:
            if name not in mine:
                tree[name] = b[name]
            elif a[name] != b[name]:
                tree[name] = resolved[name] = max(a[name], b[name])
        return tree, resolved


@pytest.fixture
def repo() -> GitRepository:
    return GitRepository.memory()


OPS = st.lists(st.one_of(
    st.tuples(st.just("run"), st.integers(0, 2), st.integers(0, 2)),    # a new version of a run blob
    st.tuples(st.just("chunk"), st.integers(0, 2), st.integers(0, 2)),  # a new chunk of a run
    st.tuples(st.just("pull"), st.integers(0, 2), st.integers(0, 2)),   # clone i merges clone j's tip
    st.tuples(st.just("checkpoint"), st.integers(0, 2), st.just(0)),
), max_size=40)


def play(repo: GitRepository, ops, tips: list[str], blob, step=None) -> list[str]:
    """``ops`` played on three clones' ``tips`` (each starts at one of them): a new
    version of a run blob or a chunk, a checkpoint, or clone i merging clone j's tip (a
    fast-forward, or nothing, when one tip is the other's ancestor). ``step(kind, new,
    parents, written)`` after each new commit (``written``: its entries, or a merge's
    resolutions; None for a checkpoint)."""
    seq = [0, 0, 0]
    for kind, i, x in ops:
        tip = tips[i]
        if kind in ("run", "chunk"):
            seq[i] += 1
            name = RUNS[x] if kind == "run" else f"{RUNS[x]}=loss={i:08x}-{seq[i]:08d}"
            written = {name: blob(name)}
            parents = (tip,)
            tips[i] = log.transaction(repo, tip, written, IDENT, kind)
        elif kind == "checkpoint":
            written, parents = None, (tip,)
            tips[i] = log.checkpoint(repo, tip, IDENT, "checkpoint")
        else:
            theirs = tips[x]
            if log.is_ancestor(repo, theirs, tip):
                continue
            if log.is_ancestor(repo, tip, theirs):
                tips[i] = theirs  # a fast-forward
                continue
            written = {name: max(pair) for name, pair in log.resolutions(repo, tip, theirs).items()}
            parents = (tip, theirs)
            tips[i] = log.merge(repo, tip, theirs, written, IDENT, "merge")
        if step is not None:
            step(kind, tips[i], parents, written)
    return tips


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_fold_of_any_history_is_the_three_way_merged_tree(repo, ops):
    ref = Reference()
    counter = iter(range(10**6))

    def blob(text: str) -> str:
        return repo.odb.write("blob", f"{text} {next(counter)}".encode())

    def step(kind, new, parents, written) -> None:
        if kind == "checkpoint":
            ref.add(new, parents, dict(ref.tree[parents[0]]), set(ref.tree[parents[0]]))
        elif kind == "pull":
            tree, resolved = ref.merged(*parents)
            assert written == resolved
            ref.add(new, parents, tree, set(resolved))
        else:
            ref.add(new, parents, {**ref.tree[parents[0]], **written}, set(written))
        assert log.fold(repo, new) == ref.tree[new]

    first = {RUNS[0]: blob("run")}
    root = log.transaction(repo, None, first, IDENT, "first")
    ref.add(root, (), dict(first), set(first))
    for tip in play(repo, ops, [root, root, root], blob, step):
        assert log.fold(repo, tip) == ref.tree[tip]


def test_a_transaction_holds_its_own_entries_beside_the_marker_and_the_sentinel(repo):
    a = log.transaction(repo, None, {RUNS[0]: b"run 0", f"{RUNS[0]}=loss=0000000a-00000001": b"chunk"}, IDENT, "a")
    b = log.transaction(repo, a, {RUNS[1]: b"run 1"}, IDENT, "b")
    from gitprov.store.trees import read_tree

    names = set(read_tree(repo.odb, repo.read_commit(b).tree))
    assert names == {"format", "runs", RUNS[1]}
    assert set(log.fold(repo, b)) == {RUNS[0], RUNS[1], f"{RUNS[0]}=loss=0000000a-00000001"}
    assert log.run_of(f"{RUNS[0]}=loss=0000000a-00000001") == RUNS[0]
    assert log.run_of("format") is None
    with pytest.raises(ValueError, match="not a ledger entry name"):
        log.transaction(repo, b, {"runs/ab/x": b"no"}, IDENT, "bad")


KEYS = st.text(alphabet="abcXYZ019-_.~ %", min_size=1, max_size=12).filter(lambda k: k.strip() == k)
FILES = st.one_of(
    st.just("code.patch"),
    KEYS.map(lambda k: f"artifacts/{k}"),
    st.tuples(st.sampled_from(["series", "observations", "summaries"]), KEYS,
              st.from_regex(r"[0-9a-f]{8}(-[0-9]{8})?", fullmatch=True)).map(lambda t: "/".join(t)),
)


@given(path=FILES, run=st.sampled_from(RUNS))
def test_a_runs_files_and_the_logs_entries_name_each_other(path, run):
    name = log.entry_name(run, path)
    assert name is not None and log.run_of(name) == run
    assert log.file_of(name) == (run, path)


def test_names_that_are_not_a_runs_files():
    assert log.entry_name(RUNS[0], "record") is None and log.entry_name(RUNS[0], "state") is None
    assert log.file_of(RUNS[0]) == (RUNS[0], "")
    for path in ("series/loss", "artifacts/a/b", "nope/x/y", "series/a=b/w-1", ""):
        with pytest.raises(ValueError, match="not a file of a run"):
            log.entry_name(RUNS[0], path)
    for name in ("format", "runs", RUNS[0][:39], RUNS[0] + "#other", RUNS[0] + "@", RUNS[0] + "=loss",
                 RUNS[0] + "=loss=", RUNS[0] + "@a/b", RUNS[0] + "x"):
        assert log.file_of(name) is None, name


def test_the_run_blob_holds_record_and_state_checked_against_the_run_id(repo):
    record = b'{"kind":"run-record","name":"a"}'
    run = repo.fmt.hash_object("blob", record)
    data = log.encode_run_blob(record, b'{"kind":"run-state"}')
    assert log.decode_run_blob(data, run, repo.fmt.hash_object) == (record, b'{"kind":"run-state"}')
    other = repo.fmt.hash_object("blob", b"another record")
    with pytest.raises(ValueError, match="the record of another run"):
        log.decode_run_blob(data, other, repo.fmt.hash_object)
    import msgspec

    for bad in (b"\xc1", data[:-3], b"\x80", msgspec.msgpack.encode({"record": record, "state": 1}),
                msgspec.msgpack.encode({"record": record, "state": b"", "more": b""})):
        with pytest.raises(ValueError, match="run blob of"):
            log.decode_run_blob(bad, run, repo.fmt.hash_object)


def test_a_run_blobs_name_says_the_commit_the_run_was_made_at():
    commit = "c" * 40
    name = log.run_blob_name(RUNS[0], commit)
    assert name == f"{RUNS[0]}^{commit}" and log.run_blob_name(RUNS[0], None) == RUNS[0]
    assert log.link_of(name) == (RUNS[0], commit) and log.run_of(name) == RUNS[0]
    assert log.file_of(name) == (RUNS[0], "") and log.is_run_blob(name) == RUNS[0] == log.is_run_blob(RUNS[0])
    for bad in (RUNS[0] + "^", RUNS[0] + "^" + "c" * 39, RUNS[0] + "=x=y", "format"):
        assert log.link_of(bad) is None and log.is_run_blob(bad) is None, bad


def test_changes_named_as_format_3_names_them_become_the_logs_entries(repo):
    from gitprov.store.ledger import run_dir, run_link_path

    record, state = b'{"kind":"run-record"}', b'{"kind":"run-state"}'
    run = repo.fmt.hash_object("blob", record)
    commit = "c" * 40
    entries = log.log_entries({f"{run_dir(run)}/record": record, f"{run_dir(run)}/state": state,
                               f"{run_dir(run)}/series/loss/0000000a-00000001": b"chunk",
                               f"{run_dir(run)}/artifacts/model": "a" * 40, run_link_path(commit, run): run,
                               "format": b"ignored"}, lambda _run, _part: None, lambda _oid: b"")
    assert entries == {run: log.encode_run_blob(record, state),  # the record names no commit: nor does its blob
                       f"{run}=loss=0000000a-00000001": b"chunk", f"{run}@model": "a" * 40}
    later = log.log_entries({f"{run_dir(run)}/state": b"later"},
                            lambda r, part: {"record": record, "state": state}.get(part) if r == run else None,
                            lambda _oid: b"")
    assert later == {run: log.encode_run_blob(record, b"later")}
    small, big = b"s" * log.INLINE_LIMIT, b"b" * (log.INLINE_LIMIT + 1)
    kept = log.log_entries({f"{run_dir(run)}/artifacts/small": small, f"{run_dir(run)}/artifacts/big": big},
                           lambda r, part: {"record": record, "state": state, "artifacts": {"old": b"o"}}[part],
                           lambda _oid: b"")
    assert kept == {run: log.encode_run_blob(record, state, {"old": b"o", "small": small}), f"{run}@big": big}
    moved = log.log_entries({f"{run_dir(run)}/artifacts/old": "a" * 40},
                            lambda r, part: {"record": record, "state": state, "artifacts": {"old": b"o"}}[part],
                            lambda _oid: b"")
    assert moved == {run: log.encode_run_blob(record, state), f"{run}@old": "a" * 40}, "an entry from now on"
    made_at = b'{"code":{"commit":"%s"},"kind":"run-record"}' % commit.encode()
    other = repo.fmt.hash_object("blob", made_at)
    assert set(log.log_entries({f"{run_dir(other)}/record": made_at, f"{run_dir(other)}/state": state},
                               lambda _run, _part: None, lambda _oid: b"")) == {f"{other}^{commit}"}
    with pytest.raises(DataError, match="has no record"):
        log.log_entries({f"{run_dir(run)}/state": b"s"}, lambda _run, _part: None, lambda _oid: b"")
    for bad in ({f"{run_dir(run)}/state": None}, {"elsewhere/x": b""}, {f"{run_dir(run)}/nope/x/y/z": b""},
                {f"runs/zz/{run}/state": b""}):
        with pytest.raises(ValueError):
            log.log_entries(bad, lambda _run, _part: None, lambda _oid: b"")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_the_fold_through_git_is_the_fold(tmp_path_factory, make_repo, ops):
    """``fold_with_git`` (git orders the commits and reads the trees) on a real
    repository gives what ``fold`` gives, checkpoints and merges included."""
    real = make_repo("sha1", commits=0)
    repo = GitRepository.open(str(real.path))
    counter = iter(range(10**6))
    first = log.transaction(repo, None, {RUNS[0]: repo.odb.write("blob", b"run 0")}, IDENT, "first")
    tips = play(repo, ops, [first] * 3, lambda name: repo.odb.write("blob", f"{name} {next(counter)}".encode()))
    cache = log.FoldCache(repo)
    for tip in [*tips, tips[0], *reversed(tips)]:  # forward when it can, from nothing when it cannot
        cache.update(tip)
        assert cache.items() == log.fold(repo, tip)
    cache.close()
    for tip in tips:
        assert log.fold_with_git(repo, tip) == log.fold(repo, tip)
        assert log.fold_with_git(repo, tip, since=tip) == {}  # no commit above it: git lists none
    for older, newer in ((tips[0], tips[1]), (tips[1], tips[2]), (tips[2], tips[0])):
        since = log.fold_with_git(repo, newer, since=older)
        assert since == log.fold(repo, newer, log.merge_base(repo, older, older))
        if older in log.merge_base(repo, older, newer):  # a cache at ``older`` brought up to ``newer``
            assert {**log.fold(repo, older), **since} == log.fold(repo, newer)
    assert log.fold_with_git(GitRepository.memory(), tips[0]) is None


def test_the_fold_cache_is_kept_and_brought_forward(make_repo, monkeypatch):
    """Reopened, the cache holds its tip's fold without folding again; moved forward, it
    folds only the new commits; one run's entries are read by their id."""
    real = make_repo("sha1", commits=0)
    repo = GitRepository.open(str(real.path))
    tip = log.transaction(repo, None, {RUNS[0]: b"run 0", f"{RUNS[0]}=loss=0000000a-00000001": b"c"}, IDENT, "a")
    tip = log.transaction(repo, tip, {RUNS[1]: b"run 1"}, IDENT, "b")
    cache = log.FoldCache(repo)
    cache.update(tip)
    cache.close()
    seen = []
    real_fold = log.fold_with_git
    monkeypatch.setattr(history, "fold_with_git", lambda r, t, since=None, *rest: seen.append(since) or real_fold(r, t, since))
    cache = log.FoldCache(repo)
    cache.update(tip)
    assert seen == [] and cache.tip() == tip
    assert cache.entries_of(RUNS[0]) == {RUNS[0]: repo.fmt.hash_object("blob", b"run 0"),
                                         f"{RUNS[0]}=loss=0000000a-00000001": repo.fmt.hash_object("blob", b"c")}
    newer = log.transaction(repo, tip, {RUNS[0]: b"run 0, later"}, IDENT, "c")
    cache.update(newer)
    assert seen == [], "a few commits above: folded in this process"
    assert cache.entries_of(RUNS[0])[RUNS[0]] == repo.fmt.hash_object("blob", b"run 0, later")
    assert cache.items() == log.fold(repo, newer)
    monkeypatch.setattr(history, "_NEAR", 0)
    newest = log.transaction(repo, newer, {RUNS[1]: b"run 1, later"}, IDENT, "d")
    cache.update(newest)
    assert seen == [newer], "more: git folds the commits above the cache's"
    assert cache.items() == log.fold(repo, newest)
    cache.update(None)
    assert cache.items() == {} and cache.tip() is None


def test_the_fold_cache_of_an_in_memory_repository_folds_in_python(repo):
    tip = log.transaction(repo, None, {RUNS[0]: b"run 0"}, IDENT, "a")
    other = log.transaction(repo, None, {RUNS[1]: b"run 1"}, IDENT, "b")
    cache = log.FoldCache(repo)
    cache.update(tip)
    newer = log.transaction(repo, tip, {RUNS[2]: b"run 2"}, IDENT, "c")
    for t in (newer, other, tip):
        cache.update(t)
        assert cache.items() == log.fold(repo, t)


@pytest.mark.parametrize("cached", [True, False])
def test_a_view_says_which_runs_it_holds_without_reading_them(repo, cached):
    """``has_run`` and ``run_ids`` answer from the names alone (these "run blobs" would not
    decode); a run with a chunk but no run blob is not held; with a fold cache, the
    listing is given only when the ledger holds at most that many entries."""
    linked = f"{RUNS[2]}^{'c' * 40}"
    tip = log.transaction(repo, None, {RUNS[0]: b"not a run blob", f"{RUNS[1]}=loss=0000000a-00000001": b"c",
                                       linked: b"nor this"}, IDENT, "a")
    view = log.LogView(repo, tip, log.FoldCache(repo) if cached else None)
    assert [view.has_run(run) for run in RUNS] == [True, False, True]
    assert view.run_ids(at_most=3) == {RUNS[0], RUNS[2]}
    assert view.run_ids(at_most=2) == (None if cached else {RUNS[0], RUNS[2]})
