"""The log's commits: the trees a transaction, a merge and a checkpoint write, and the
fold that reads the ledger back from them (in Python, or through git)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator

from ...errors import DataError
from ..objects import MODE_BLOB, MODE_TREE, TreeEntry, encode_tree
from ..repo import GitRepository
from ..trees import edit_tree, read_tree
from .names import (
    CHECKPOINT_MARKER,
    LOG_MARKER,
    RESERVED,
    SENTINEL,
    SENTINEL_RECORD,
    SENTINEL_STATE,
    is_run_blob,
    run_of,
)

__all__ = ["changed_since", "checkpoint", "checkpoint_tree", "fold", "fold_above", "fold_since", "fold_with_git",
           "is_ancestor", "log_tree", "merge", "merge_base", "merge_bases", "resolutions", "run_blobs_since",
           "transaction", "walk"]


def _sentinel_changes(fmt_hash: Callable[[str, bytes], str]) -> dict[str, bytes]:
    sid = fmt_hash("blob", SENTINEL_RECORD)
    return {f"{SENTINEL}/{sid[:2]}/{sid}/record": SENTINEL_RECORD, f"{SENTINEL}/{sid[:2]}/{sid}/state": SENTINEL_STATE}


def _tree(repo: GitRepository, marker: bytes, entries: dict[str, bytes | str]) -> str:
    changes: dict[str, bytes | str | None] = {"format": marker, **_sentinel_changes(repo.fmt.hash_object)}
    changes.update(entries)
    tree = edit_tree(repo.odb, None, changes)
    assert tree is not None
    return tree


def _flat_tree(repo: GitRepository, marker: bytes, entries: dict[str, bytes | str]) -> str:
    """``_tree`` of entries at the root only (a transaction's, a merge's), encoded at
    once: a transaction's tree is the hot path of every run's write."""
    odb = repo.odb
    sentinel = ""
    for kind, data in _sentinel_objects(repo):
        sentinel = odb.write(kind, data)  # the same objects each time: the pack keeps one
    root = [TreeEntry(MODE_BLOB, "format", odb.write("blob", marker)), TreeEntry(MODE_TREE, SENTINEL, sentinel)]
    root += [TreeEntry(MODE_BLOB, name, value if isinstance(value, str) else odb.write("blob", value))
             for name, value in entries.items()]
    return odb.write("tree", encode_tree(root))


_sentinels: dict[str, list[tuple[str, bytes]]] = {}  # object format -> the runs/ sentinel's objects, its root last


def _sentinel_objects(repo: GitRepository) -> list[tuple[str, bytes]]:
    objects = _sentinels.get(repo.fmt.name)
    if objects is None:
        record, state = repo.fmt.hash_object("blob", SENTINEL_RECORD), repo.fmt.hash_object("blob", SENTINEL_STATE)
        run = encode_tree([TreeEntry(MODE_BLOB, "record", record), TreeEntry(MODE_BLOB, "state", state)])
        shard = encode_tree([TreeEntry(MODE_TREE, record, repo.fmt.hash_object("tree", run))])
        top = encode_tree([TreeEntry(MODE_TREE, record[:2], repo.fmt.hash_object("tree", shard))])
        objects = _sentinels[repo.fmt.name] = [("blob", SENTINEL_RECORD), ("blob", SENTINEL_STATE), ("tree", run),
                                               ("tree", shard), ("tree", top)]
    return objects


def log_tree(repo: GitRepository, entries: dict[str, bytes | str]) -> str:
    """The tree of a transaction holding ``entries``."""
    bad = [name for name in entries if run_of(name) is None]
    if bad:
        raise ValueError(f"not a ledger entry name: {bad[0]!r}")
    return _flat_tree(repo, LOG_MARKER, entries)


def checkpoint_tree(repo: GitRepository, entries: dict[str, bytes | str]) -> str:
    """The tree of a checkpoint holding ``entries``: every entry of the ledger, sharded
    by the run id's first two characters."""
    return _tree(repo, CHECKPOINT_MARKER, {f"{name[:2]}/{name}": oid for name, oid in entries.items()})


def _commit(repo: GitRepository, tree: str, parents: list[str], identity: str, message: str) -> str:
    from ..objects import encode_commit

    return repo.odb.write("commit", encode_commit(tree, parents, identity, message))


def transaction(repo: GitRepository, tip: str | None, entries: dict[str, bytes | str], identity: str,
                message: str) -> str:
    """A log commit on ``tip`` holding ``entries`` (content, or the id of a stored blob)."""
    return _commit(repo, log_tree(repo, entries), [tip] if tip else [], identity, message)


def merge(repo: GitRepository, ours: str, theirs: str, resolved: dict[str, str], identity: str, message: str) -> str:
    """A merge commit of ``ours`` and ``theirs`` holding ``resolved``: a blob id for every
    entry ``resolutions`` names."""
    return _commit(repo, _flat_tree(repo, LOG_MARKER, dict(resolved)), [ours, theirs], identity, message)


def checkpoint(repo: GitRepository, tip: str, identity: str, message: str) -> str:
    """A checkpoint commit on ``tip``: every entry of the fold at ``tip``, sharded by the
    run id's first two characters."""
    return _commit(repo, checkpoint_tree(repo, dict(fold(repo, tip))), [tip], identity, message)


def _kind(repo: GitRepository, tree: str, markers: dict[str, str]) -> str:
    entry = read_tree(repo.odb, tree).get("format")
    return markers.get(entry.oid, "other") if entry is not None and not entry.is_tree else "other"


def walk(repo: GitRepository, tip: str | None, stop: frozenset[str] = frozenset()) -> Iterator[tuple[str, str, str]]:
    """``(commit, kind, tree)`` of the commits whose entries the fold reads, newest
    first, each after all its children; ``kind`` is ``log`` or ``checkpoint``. Every
    commit reachable from ``tip`` is walked, for the order (a commit below a checkpoint
    can also be reached around it); the ancestors of a checkpoint are left out, since it
    holds everything they wrote, and so are commits of another format and those in
    ``stop`` and below."""
    if tip is None or tip in stop:
        return
    markers = {repo.fmt.hash_object("blob", LOG_MARKER): "log",
               repo.fmt.hash_object("blob", CHECKPOINT_MARKER): "checkpoint"}
    info: dict[str, tuple[str, tuple[str, ...]]] = {}
    children: dict[str, int] = {tip: 0}
    order = [tip]
    for oid in order:  # discover, breadth first
        commit = repo.read_commit(oid)
        parents = tuple(p for p in commit.parents if p not in stop)
        info[oid] = (commit.tree, parents)
        for parent in parents:
            if parent not in children:
                children[parent] = 0
                order.append(parent)
            children[parent] += 1
    superseded: set[str] = set()
    ready = [tip]
    while ready:
        oid = ready.pop()
        tree, parents = info[oid]
        kind = "superseded" if oid in superseded else _kind(repo, tree, markers)
        if kind in ("log", "checkpoint"):
            yield oid, kind, tree
        if kind in ("checkpoint", "superseded"):
            superseded.update(parents)
        for parent in reversed(parents):
            children[parent] -= 1
            if children[parent] == 0:
                ready.append(parent)


def _entries(repo: GitRepository, kind: str, tree: str) -> Iterable[tuple[str, str]]:
    if kind == "log":
        return ((name, e.oid) for name, e in read_tree(repo.odb, tree).items() if name not in RESERVED)
    if kind == "checkpoint":
        return _checkpoint_entries(repo, tree)
    return ()


def _checkpoint_entries(repo: GitRepository, tree: str) -> Iterator[tuple[str, str]]:
    """A checkpoint's entries, shard by shard: each shard read once (not cached), and the
    pack pages read let go of every 16 shards (a checkpoint of 100,000 runs spreads its
    shards over the packs: 190 MiB of pages read, otherwise)."""
    for k, (shard, s) in enumerate(read_tree(repo.odb, tree).items()):
        if shard not in RESERVED:
            yield from ((name, e.oid) for name, e in read_tree(repo.odb, s.oid, keep=False).items())
        if k % 16 == 15:
            repo.odb.drop_pages()


def fold(repo: GitRepository, tip: str | None, stop: frozenset[str] = frozenset()) -> dict[str, str]:
    """``{entry name: blob id}``: the ledger at ``tip`` (with ``stop``: what the commits
    above ``stop`` wrote)."""
    out: dict[str, str] = {}
    for _oid, kind, tree in walk(repo, tip, stop):
        for name, oid in _entries(repo, kind, tree):
            out.setdefault(name, oid)
    return out


def _tree_entries(data: bytes, raw_len: int) -> Iterator[tuple[bytes, bytes]]:
    """``(name, raw id)`` of a tree object's entries."""
    i = 0
    while i < len(data):
        nul = data.index(b"\0", i)
        yield data[data.index(b" ", i) + 1:nul], data[nul + 1:nul + 1 + raw_len]
        i = nul + 1 + raw_len


#: ``git rev-list --parents --format=%T``: each commit's line, then its tree's
_COMMIT_LINE = re.compile(rb"^commit ([^\n]+)\n", re.M)
_TREE_LINE = re.compile(rb"^[0-9a-f]+\n", re.M)


def fold_with_git(repo: GitRepository, tip: str, since: str | list[str] | None = None,
                  checkpoints: list[tuple[str, list[str]]] | None = None) -> dict[str, str] | None:
    """``fold`` through git: ``git rev-list --topo-order --parents`` orders the commits
    and names their trees (``%T``), and one ``git cat-file --batch`` reads those trees
    as they are folded (at 100,000 runs about 1.6 s, where ``fold`` in Python takes
    10.5 s; asking cat-file for ``<commit>^{tree}`` instead made it read every commit
    again: 1.8 s of its time, not 0.5, and 2.1 s in all). ``since``: only what the commits
    not reachable from it wrote (a cache folded at ``since`` brought up to ``tip``:
    these entries replace its own; several: what none of them reaches). ``checkpoints``:
    ``(commit, parents)`` of each checkpoint read is added to it. None when git cannot be asked (an in-memory
    repository, no git binary): ``fold`` then."""
    import threading

    from .. import catfile, gitbin

    git_dir = repo.common_dir or repo.git_dir
    if git_dir is None:
        return None
    # bounded pack windows: the walk touches commits all over the packs (185 -> 52 MB of git's memory)
    stops = [since] if isinstance(since, str) else since or []
    listing = gitbin.run([*catfile.BOUNDED, "rev-list", "--topo-order", "--parents", "--format=%T", tip,
                          *(f"^{stop}" for stop in stops)], git_dir=git_dir)
    if listing.returncode != 0:
        return None
    text = listing.stdout  # "commit <id> <parent>…\n<tree>\n" for each commit, read where it lies
    trees = b"".join(_TREE_LINE.findall(text))  # what cat-file is asked, in the commits' order
    line = 2 * repo.fmt.raw_len + 1
    commits = text.count(b"commit ")  # never inside a line of hex
    if len(trees) != commits * line or text.count(b"\n") != 2 * commits:
        raise DataError(f"git rev-list listed the ledger's history at {tip[:12]} in a form git-prov does not read")
    proc = catfile.start(repo)
    if proc is None:
        return None

    def feed() -> None:
        try:
            step = 4096 * line
            for start in range(0, len(trees), step):
                proc.stdin.write(trees[start:start + step])
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    threading.Thread(target=feed, name="prov-log-fold", daemon=True).start()
    raw_len = repo.fmt.raw_len
    markers = {bytes.fromhex(repo.fmt.hash_object("blob", LOG_MARKER)): "log",
               bytes.fromhex(repo.fmt.hash_object("blob", CHECKPOINT_MARKER)): "checkpoint"}
    superseded: set[bytes] = set()
    out: dict[str, str] = {}
    try:
        for match in _COMMIT_LINE.finditer(text):
            commit, *parents = match.group(1).split()
            header = catfile.read_header(proc.stdout)
            if header is None or header.type != "tree":
                raise DataError(f"git cannot read the tree of ledger commit {commit.decode()}")
            data = proc.stdout.read(header.size + 1)[:-1]
            if commit in superseded:
                superseded.update(parents)
                continue
            entries = dict(_tree_entries(data, raw_len))
            kind = markers.get(entries.get(b"format", b""), "other")
            if kind == "checkpoint":
                superseded.update(parents)
                if checkpoints is not None:
                    checkpoints.append((commit.decode(), [p.decode() for p in parents]))
                for shard, oid in entries.items():
                    if shard not in (b"format", b"runs"):
                        for name, blob in _tree_entries(repo.odb.read_typed(oid.hex(), "tree"), raw_len):
                            out.setdefault(name.decode(), blob.hex())
            elif kind == "log":
                for name, blob in entries.items():
                    if name not in (b"format", b"runs"):
                        out.setdefault(name.decode(), blob.hex())
    finally:
        proc.stdout.close()
        proc.wait()
    return out


def _ancestors(repo: GitRepository, tip: str) -> set[str]:
    seen = {tip}
    todo = [tip]
    while todo:
        for parent in repo.read_commit(todo.pop()).parents:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def merge_base(repo: GitRepository, a: str, b: str) -> frozenset[str]:
    """Every common ancestor of ``a`` and ``b`` (what ``changed_since`` leaves out)."""
    return frozenset(_ancestors(repo, a) & _ancestors(repo, b))


def changed_since(repo: GitRepository, tip: str, common: frozenset[str]) -> dict[str, str]:
    """The entries the commits above ``common`` wrote (their newest versions)."""
    return fold(repo, tip, common)


def resolutions(repo: GitRepository, ours: str, theirs: str) -> dict[str, tuple[str, str]]:
    """``{name: (our blob id, their blob id)}`` of the entries both sides wrote, with
    different contents, since their merge base: what a merge commit must resolve."""
    common = merge_base(repo, ours, theirs)
    mine, other = changed_since(repo, ours, common), changed_since(repo, theirs, common)
    return {name: (oid, other[name]) for name, oid in mine.items() if name in other and other[name] != oid}


def is_ancestor(repo: GitRepository, old: str, new: str) -> bool:
    """Whether commit ``old`` is ``new`` or one of its ancestors (git's answer on disk)."""
    git_dir = repo.common_dir or repo.git_dir
    if git_dir is None:
        return old in _ancestors(repo, new)
    from .. import gitbin

    return gitbin.run(["merge-base", "--is-ancestor", old, new], git_dir=git_dir).returncode == 0


def fold_since(repo: GitRepository, tip: str, since: str | list[str] | None,
               checkpoints: list[tuple[str, list[str]]] | None = None) -> dict[str, str]:
    """The entries the commits above ``since`` (one commit or several) wrote (all of
    the fold without it): through git when it can be asked, else in Python.
    ``checkpoints``: as ``fold_with_git``'s."""
    folded = fold_with_git(repo, tip, since, checkpoints)
    if folded is None:
        stops = [since] if isinstance(since, str) else since or []
        stop = frozenset(c for s in stops for c in _ancestors(repo, s))
        folded = {}
        for oid, kind, tree in walk(repo, tip, stop):
            if kind == "checkpoint" and checkpoints is not None:
                checkpoints.append((oid, [p for p in repo.read_commit(oid).parents if p not in stop]))
            for name, blob in _entries(repo, kind, tree):
                folded.setdefault(name, blob)
    return folded


def merge_bases(repo: GitRepository, a: str, b: str) -> list[str]:
    """The best common ancestors of ``a`` and ``b`` (``git merge-base --all``; in memory,
    every common ancestor)."""
    git_dir = repo.common_dir or repo.git_dir
    if git_dir is None:
        return sorted(merge_base(repo, a, b))
    from .. import gitbin

    proc = gitbin.run(["merge-base", "--all", a, b], git_dir=git_dir, text=True)
    if proc.returncode not in (0, 1):
        raise DataError(f"git cannot find the merge base of ledger commits {a[:12]} and {b[:12]}: "
                        f"{gitbin.failure(proc)}")
    return proc.stdout.split()


#: commits a fold above a known one reads in this process before it asks git instead
_NEAR = 512


def fold_above(repo: GitRepository, tip: str, old: str | None) -> dict[str, str] | None:
    """The fold of the commits above ``old`` when every line of history from ``tip``
    reaches ``old`` within ``_NEAR`` commits (a ledger that grew by a few transactions,
    the common case after a write or a small pull), read in this process: no git
    process to start. ``old`` None: the whole fold, when the history is that short (a
    new repository's). None otherwise (the caller asks git)."""
    seen = {tip}
    todo = [tip]
    while todo:
        oid = todo.pop()
        if oid == old:
            continue
        parents = repo.read_commit(oid).parents
        if (not parents and old is not None) or len(seen) > _NEAR:
            return None  # a line that does not come back to ``old``, or too many commits
        for parent in parents:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return fold(repo, tip, frozenset({old}) if old is not None else frozenset())


def run_blobs_since(repo: GitRepository, tip: str, since: str) -> list[tuple[str, str]] | None:
    """``(run id, run blob id)`` of the runs the commits above ``since`` wrote, in id
    order; None when ``since`` is not an ancestor of ``tip``."""
    if not is_ancestor(repo, since, tip):
        return None
    return sorted((run, oid) for name, oid in fold_since(repo, tip, since).items() if (run := is_run_blob(name)))
