"""Format 4's ledger kept as a log (``docs/design/data-model.md``, "The proposal: a
ledger kept as a log"). Read and written through ``store.ledger.Ledger`` when a
ledger's tip is of this layout; nothing makes a new ledger of it yet.

Each commit's tree holds what its transaction wrote, at the root beside ``format`` and
the constant ``runs/`` sentinel::

    <id>^<commit>               the run blob (record, state, artifacts up to ``INLINE_LIMIT``)
                                of a run made at ``<commit>``
    <id>                        the run blob of a run made at no commit
    <id>=<key>=<writer>-<seq>   a metric chunk        (and ``!`` observations, ``+`` summaries,
    <id>@<key>                  an artifact            ``#patch`` the code patch)

The ledger at a commit is the **fold** of the commits reachable from it: walking them
newest first in topological order (a commit after all its children), the first
version met of each entry is its current one. That is well defined because a merge
commit holds the resolution of every entry both of its sides wrote, with different
contents, since their merge base: an entry only one side wrote has its older versions
at or below the base, which the walk meets after both sides. A **checkpoint** commit
holds every entry of the ledger at that commit, sharded (``<xx>/<name>``); the fold
takes it whole and reads nothing below it (the walk still passes through, for the
order: a commit below a checkpoint can be reached around it too). A commit of another
format (format 3, before the upgrade) is not read: its runs are in the checkpoint or
merge that replaced it.

Bytes and git objects only: which of two versions wins is decided above this layer
(``exchange``), and given here as resolutions.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import DataError
from .objects import MODE_BLOB, TreeEntry
from .repo import GitRepository
from .trees import edit_tree, read_tree

__all__ = ["CHECKPOINT_MARKER", "LOG_MARKER", "SENTINEL", "changed_since", "checkpoint", "checkpoint_entries",
           "decode_run_blob", "encode_run_blob", "entry_name", "file_of", "fold", "log_entries", "run_blob_name",
           "is_run_blob", "link_of", "fold_since", "merge_bases", "is_ancestor", "log_tree", "run_blobs_since", "checkpoint_tree", "merge", "merge_base", "fold_with_git", "resolutions", "run_of", "transaction", "walk",
           "FoldCache", "LogView"]

LOG_MARKER = b'{"format_version":4,"kind":"ledger","layout":"log","requires":"git-prov>=0.4.0"}'
CHECKPOINT_MARKER = b'{"format_version":4,"kind":"ledger","layout":"checkpoint","requires":"git-prov>=0.4.0"}'
#: a run of format 4 under ``runs/``, where a release of format 3 lists runs: it stops
#: there with its "newer than this git-prov reads" line instead of listing none
_SENTINEL_RECORD = b'{"format_version":4,"kind":"run-record","requires":"git-prov>=0.4.0"}'
_SENTINEL_STATE = b'{"format_version":4,"kind":"run-state","requires":"git-prov>=0.4.0"}'
SENTINEL = "runs"
_RESERVED = ("format", SENTINEL)
_NAME = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})(?:[=!+@#^].*)?$")
_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
#: artifacts up to this size that a transaction writes as content are kept in the run
#: blob (an entry and an object less a run); larger ones, or ones already stored, as
#: ``<id>@<key>``
INLINE_LIMIT = 4096
#: a run's files as format 3 names them (``runs/<xx>/<id>/…``) -> the separator of
#: their entry in the log; ``None``: the file is inside the run blob
_FOLDERS = {"series": "=", "observations": "!", "summaries": "+"}
_SEPARATORS = {sep: folder for folder, sep in _FOLDERS.items()}


def run_of(name: str) -> str | None:
    """The run an entry name belongs to (``<id>`` or ``<id>`` and a separator), else None."""
    m = _NAME.match(name)
    return m.group(1) if m else None


def entry_name(run_id: str, path: str) -> str | None:
    """The log's entry for a run's file as format 3 names it in the run's directory
    (``series/<key>/<chunk>`` -> ``<id>=<key>=<chunk>``); None for ``record`` and
    ``state``, which are inside the run blob."""
    if path in ("record", "state"):
        return None
    if path == "code.patch":
        return f"{run_id}#patch"
    folder, _, rest = path.partition("/")
    if folder == "artifacts" and rest and "/" not in rest:
        return f"{run_id}@{rest}"
    key, _, leaf = rest.partition("/")
    if folder in _FOLDERS and key and leaf and "/" not in leaf and "=" not in key:
        return f"{run_id}{_FOLDERS[folder]}{key}={leaf}"
    raise ValueError(f"not a file of a run: {path!r}")


def file_of(name: str) -> tuple[str, str] | None:
    """``(run id, the file as format 3 names it)`` of a log entry (``<id>`` alone is the
    run blob: ``(id, "")``); None for a name that is not a run's."""
    run_id = run_of(name)
    if run_id is None:
        return None
    rest = name[len(run_id):]
    if not rest:
        return run_id, ""
    sep, body = rest[0], rest[1:]
    if sep == "^":
        return (run_id, "") if _ID.match(body) else None  # the run blob, named with its commit
    if sep == "#":
        return (run_id, "code.patch") if body == "patch" else None
    if sep == "@":
        return (run_id, f"artifacts/{body}") if body and "/" not in body else None
    key, eq, leaf = body.partition("=")
    if not key or not eq or not leaf or "/" in body:
        return None
    return run_id, f"{_SEPARATORS[sep]}/{key}/{leaf}"


def run_blob_name(run_id: str, commit: str | None) -> str:
    """The entry of a run's blob: its id, and the commit it was made at (the run's link
    to its commit, which never changes)."""
    return f"{run_id}^{commit}" if commit else run_id


def is_run_blob(name: str) -> str | None:
    """The run id when ``name`` is a run blob's entry, else None."""
    where = file_of(name)
    return where[0] if where is not None and where[1] == "" else None


def link_of(name: str) -> tuple[str, str] | None:
    """``(run id, commit)`` of a run blob's entry that names its commit, else None."""
    run_id = run_of(name)
    if run_id is None or name[len(run_id):len(run_id) + 1] != "^" or not _ID.match(name[len(run_id) + 1:]):
        return None
    return run_id, name[len(run_id) + 1:]


def encode_run_blob(record: bytes, state: bytes, artifacts: dict[str, bytes] | None = None) -> bytes:
    """The run blob: msgpack of the record's and the state's canonical bytes, and the
    artifacts kept in it by their name in the log (none: no such part)."""
    import msgspec

    blob: dict[str, Any] = {"record": record, "state": state}
    if artifacts:
        blob["artifacts"] = dict(sorted(artifacts.items()))
    return msgspec.msgpack.encode(blob)


def decode_run_blob(data: bytes, run_id: str, hash_blob: Callable[[str, bytes], str]) -> tuple[bytes, bytes]:
    """``(record, state)`` of a run blob, its record checked against the run id (the
    blob id of the record's bytes); ``ValueError`` when it is not one."""
    return run_blob_parts(data, run_id, hash_blob)[:2]  # type: ignore[return-value]


def run_blob_parts(data: bytes, run_id: str,
                   hash_blob: Callable[[str, bytes], str]) -> tuple[bytes, bytes, dict[str, bytes]]:
    """``(record, state, artifacts)`` of a run blob, as ``decode_run_blob`` checks it."""
    import msgspec

    try:
        obj = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"run blob of {run_id[:12]} is not msgpack: {exc}") from None
    if not isinstance(obj, dict) or not {"record", "state"} <= set(obj) <= {"record", "state", "artifacts"}:
        raise ValueError(f"run blob of {run_id[:12]} is not a record and a state")
    record, state, artifacts = obj["record"], obj["state"], obj.get("artifacts", {})
    if not (isinstance(record, bytes) and isinstance(state, bytes) and isinstance(artifacts, dict)
            and all(isinstance(k, str) and "/" not in k and isinstance(v, bytes) for k, v in artifacts.items())):
        raise ValueError(f"run blob of {run_id[:12]} holds a part of the wrong type")
    if hash_blob("blob", record) != run_id:
        raise ValueError(f"run blob of {run_id[:12]} holds the record of another run")
    return record, state, artifacts


def _sentinel_changes(fmt_hash: Callable[[str, bytes], str]) -> dict[str, bytes]:
    sid = fmt_hash("blob", _SENTINEL_RECORD)
    return {f"{SENTINEL}/{sid[:2]}/{sid}/record": _SENTINEL_RECORD, f"{SENTINEL}/{sid[:2]}/{sid}/state": _SENTINEL_STATE}


def _tree(repo: GitRepository, marker: bytes, entries: dict[str, bytes | str]) -> str:
    changes: dict[str, bytes | str | None] = {"format": marker, **_sentinel_changes(repo.fmt.hash_object)}
    changes.update(entries)
    tree = edit_tree(repo.odb, None, changes)
    assert tree is not None
    return tree


def log_tree(repo: GitRepository, entries: dict[str, bytes | str]) -> str:
    """The tree of a transaction holding ``entries``."""
    bad = [name for name in entries if run_of(name) is None]
    if bad:
        raise ValueError(f"not a ledger entry name: {bad[0]!r}")
    return _tree(repo, LOG_MARKER, entries)


def checkpoint_tree(repo: GitRepository, entries: dict[str, bytes | str]) -> str:
    """The tree of a checkpoint holding ``entries``: every entry of the ledger, sharded
    by the run id's first two characters."""
    return _tree(repo, CHECKPOINT_MARKER, {f"{name[:2]}/{name}": oid for name, oid in entries.items()})


def _commit(repo: GitRepository, tree: str, parents: list[str], identity: str, message: str) -> str:
    from .objects import encode_commit

    return repo.odb.write("commit", encode_commit(tree, parents, identity, message))


def transaction(repo: GitRepository, tip: str | None, entries: dict[str, bytes | str], identity: str,
                message: str) -> str:
    """A log commit on ``tip`` holding ``entries`` (content, or the id of a stored blob)."""
    return _commit(repo, log_tree(repo, entries), [tip] if tip else [], identity, message)


def merge(repo: GitRepository, ours: str, theirs: str, resolved: dict[str, str], identity: str, message: str) -> str:
    """A merge commit of ``ours`` and ``theirs`` holding ``resolved``: a blob id for every
    entry ``resolutions`` names."""
    return _commit(repo, _tree(repo, LOG_MARKER, dict(resolved)), [ours, theirs], identity, message)


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
        return ((name, e.oid) for name, e in read_tree(repo.odb, tree).items() if name not in _RESERVED)
    if kind == "checkpoint":
        return ((name, e.oid) for shard, s in read_tree(repo.odb, tree).items() if shard not in _RESERVED
                for name, e in read_tree(repo.odb, s.oid).items())
    return ()


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


def fold_with_git(repo: GitRepository, tip: str, since: str | list[str] | None = None,
                  checkpoints: list[tuple[str, list[str]]] | None = None) -> dict[str, str] | None:
    """``fold`` through git: ``git rev-list --topo-order --parents`` orders the commits
    and one ``git cat-file --batch`` reads their trees as they are folded (at 100,000
    runs 2.9 s, where ``fold`` in Python takes 10.5 s). ``since``: only what the commits
    not reachable from it wrote (a cache folded at ``since`` brought up to ``tip``:
    these entries replace its own; several: what none of them reaches). ``checkpoints``:
    ``(commit, parents)`` of each checkpoint read is added to it. None when git cannot be asked (an in-memory
    repository, no git binary): ``fold`` then."""
    import threading

    from . import catfile, gitbin

    git_dir = repo.common_dir or repo.git_dir
    if git_dir is None:
        return None
    # bounded pack windows: the walk touches commits all over the packs (185 -> 52 MB of git's memory)
    stops = [since] if isinstance(since, str) else since or []
    listing = gitbin.run([*catfile.BOUNDED, "rev-list", "--topo-order", "--parents", tip,
                          *(f"^{stop}" for stop in stops)], git_dir=git_dir)
    proc = catfile.start(repo) if listing.returncode == 0 else None
    if proc is None:
        return None
    commits = [line.split() for line in listing.stdout.splitlines()]

    def feed() -> None:
        try:
            for start in range(0, len(commits), 4096):
                proc.stdin.write(b"".join(b"%s^{tree}\n" % c[0] for c in commits[start:start + 4096]))
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
        for commit, *parents in commits:
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
    from . import gitbin

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
    from . import gitbin

    proc = gitbin.run(["merge-base", "--all", a, b], git_dir=git_dir, text=True)
    if proc.returncode not in (0, 1):
        raise DataError(f"git cannot find the merge base of ledger commits {a[:12]} and {b[:12]}: "
                        f"{gitbin.failure(proc)}")
    return proc.stdout.split()


#: commits a fold above a known one reads in this process before it asks git instead
_NEAR = 512


def _fold_above(repo: GitRepository, tip: str, old: str) -> dict[str, str] | None:
    """The fold of the commits above ``old`` when every line of history from ``tip``
    reaches ``old`` within ``_NEAR`` commits (a ledger that grew by a few transactions,
    the common case after a write or a small pull), read in this process: no git
    process to start. None otherwise (the caller asks git)."""
    seen = {tip}
    todo = [tip]
    while todo:
        oid = todo.pop()
        if oid == old:
            continue
        parents = repo.read_commit(oid).parents
        if not parents or len(seen) > _NEAR:
            return None  # a line that does not come back to ``old``, or too many commits
        for parent in parents:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return fold(repo, tip, frozenset({old}))


def run_blobs_since(repo: GitRepository, tip: str, since: str) -> list[tuple[str, str]] | None:
    """``(run id, run blob id)`` of the runs the commits above ``since`` wrote, in id
    order; None when ``since`` is not an ancestor of ``tip``."""
    if not is_ancestor(repo, since, tip):
        return None
    return sorted((run, oid) for name, oid in fold_since(repo, tip, since).items() if (run := is_run_blob(name)))


class LogView:
    """The ledger at one commit of a log, answering what ``store.ledger.Ledger`` answers
    about one run and one commit from format 3's tree. With a ``FoldCache``, brought to
    ``tip`` and asked run by run; without, folded once, when first asked."""

    def __init__(self, repo: GitRepository, tip: str | None,
                 cache: FoldCache | Callable[[], FoldCache] | None = None) -> None:
        self.repo, self.tip = repo, tip
        self._cache = cache  # opened (a callable) and brought to ``tip`` when first asked
        self._current = False
        self._runs: dict[str, dict[str, str]] | None = None
        self._links: dict[str, set[str]] = {}

    @property
    def cache(self) -> FoldCache | None:
        if callable(self._cache):
            self._cache = self._cache()
            self._cache.update(self.tip)  # once: the view is of one tip
        elif self._cache is not None and not self._current:
            self._cache.update(self.tip)
        self._current = True
        return self._cache

    def _fold(self) -> dict[str, dict[str, str]]:
        if self._runs is None:
            runs: dict[str, dict[str, str]] = {}
            for name, oid in (fold_since(self.repo, self.tip, None) if self.tip else {}).items():
                if (where := file_of(name)) is not None:
                    runs.setdefault(where[0], {})[where[1]] = oid
                if (link := link_of(name)) is not None:
                    self._links.setdefault(link[1], set()).add(link[0])
            self._runs = runs
        return self._runs

    def files(self, run_id: str) -> dict[str, str]:
        """``{the file as format 3 names it: blob id}`` of one run ("": the run blob)."""
        if self.cache is None:
            return self._fold().get(run_id, {})
        return {where[1]: oid for name, oid in self.cache.entries_of(run_id).items()
                if (where := file_of(name)) is not None}

    def run_parts(self, run_id: str) -> tuple[bytes, bytes] | None:
        """``(record, state)`` of a run, None when the ledger has no such run."""
        parts = self.run_blob(run_id)
        return None if parts is None else parts[:2]  # type: ignore[return-value]

    def run_blob(self, run_id: str) -> tuple[bytes, bytes, dict[str, bytes]] | None:
        """``(record, state, artifacts kept in it)`` of a run, None when there is none."""
        cache = self.cache
        oid = cache.run_blob_of(run_id) if cache is not None else self.files(run_id).get("")
        if oid is None:
            return None
        try:
            return run_blob_parts(self.repo.odb.read_typed(oid, "blob"), run_id, self.repo.fmt.hash_object)
        except ValueError as exc:
            raise DataError(f"{exc}; run 'prov verify'") from None

    def run_file(self, run_id: str, name: str) -> bytes | None:
        if name in ("record", "state") or name.startswith("artifacts/"):
            parts = self.run_blob(run_id)
            if parts is None:
                return None
            if name in ("record", "state"):
                return parts[0] if name == "record" else parts[1]
            if (inline := parts[2].get(name[len("artifacts/"):])) is not None:
                return inline
        oid = self.files(run_id).get(name)
        return None if oid is None else self.repo.odb.read_typed(oid, "blob")

    def run_folder(self, run_id: str, name: str) -> dict[str, TreeEntry]:
        """A folder's entries; an artifact kept in the run blob is listed with the id git
        gives its content (no object of its own: read it with ``run_file``)."""
        prefix = name.rstrip("/") + "/"
        out = {path[len(prefix):]: TreeEntry(MODE_BLOB, path[len(prefix):], oid)
               for path, oid in self.files(run_id).items()
               if path.startswith(prefix) and "/" not in path[len(prefix):]}
        if prefix == "artifacts/" and (parts := self.run_blob(run_id)) is not None:
            for key, content in parts[2].items():
                out[key] = TreeEntry(MODE_BLOB, key, self.repo.fmt.hash_object("blob", content))
        return out

    def run_version(self, run_id: str) -> str | None:
        files = self.files(run_id)
        if "" not in files:
            return None
        listing = "".join(f"{path}\0{oid}\n" for path, oid in sorted(files.items())).encode()
        return self.repo.fmt.hash_object("blob", listing)

    def run_ids_with_prefix(self, prefix: str) -> list[str]:
        if self.cache is not None:
            return sorted({run for name in self.cache.names_with_prefix(prefix) if (run := is_run_blob(name))})
        return sorted(run_id for run_id, files in self._fold().items() if run_id.startswith(prefix) and "" in files)

    def run_ids_at(self, commit: str) -> list[str]:
        """The ids of the runs made at ``commit``, sorted."""
        if self.cache is not None:
            return self.cache.runs_at(commit)
        self._fold()
        return sorted(self._links.get(commit, ()))

    def stray_names(self) -> list[tuple[str, str]]:
        """``(entry, why)`` of the entries of the ledger that are no run's blob nor file,
        or the files of a run the ledger has no blob of."""
        cache = self.cache
        names = [name for (name,) in cache.db.execute("SELECT name FROM entries")] if cache is not None \
            else list(fold_since(self.repo, self.tip, None) if self.tip else {})
        runs = {run for name in names if (run := is_run_blob(name))}
        out = []
        for name in names:
            where = file_of(name)
            if where is None:
                out.append((name, "is not a file of a run"))
            elif where[0] not in runs:
                out.append((name, f"is a file of run {where[0][:12]}, which the ledger has no record of"))
        return out

    def commits_with_runs(self) -> list[str]:
        """The commits runs were made at, sorted."""
        if self.cache is not None:
            return self.cache.commits()
        self._fold()
        return sorted(self._links)

    def run_blobs(self) -> Iterator[tuple[str, str]]:
        """``(run id, run blob id)`` of every run, in id order."""
        if self.cache is not None:
            yield from self.cache.run_blobs()
            return
        yield from sorted((run_id, files[""]) for run_id, files in self._fold().items() if "" in files)


def log_entries(changes: dict[str, bytes | str | None], current: Callable[[str, str], Any],
                read_blob: Callable[[str], bytes], kept_out: dict[str, dict[str, bytes]] | None = None,
                ) -> dict[str, bytes | str]:
    """A transaction's entries for ``changes`` named as format 3 names them
    (``runs/<xx>/<id>/<file>``, ``commits/<xx>/<commit>/<xx>/<id>``): a run's record or
    state makes a new run blob (the other part from ``current(run id, "record" or
    "state")``), named with the commit its record names (a commit's entry adds nothing
    more); an artifact given as content up to ``INLINE_LIMIT`` goes into the run blob
    (with those it holds already, ``current(run id, "artifacts")``); every other file is
    an entry (``kept_out``: each written run blob's artifacts, by run). The log only ever
    adds versions: a change that removes a path is refused (``ValueError``), as is a
    path of no run."""
    out: dict[str, bytes | str] = {}
    parts: dict[str, dict[str, bytes]] = {}
    inline: dict[str, dict[str, bytes | None]] = {}  # run -> artifacts into (bytes) or out of (None) its blob
    for path, value in changes.items():
        if path == "format":
            continue
        if value is None:
            raise ValueError(f"the ledger's log cannot remove {path!r}: it only adds versions")
        segments = path.split("/")
        if segments[0] == "runs" and len(segments) >= 4 and _ID.match(segments[2]) \
                and segments[1] == segments[2][:2]:
            run_id, name = segments[2], "/".join(segments[3:])
            if name in ("record", "state"):
                parts.setdefault(run_id, {})[name] = value if isinstance(value, bytes) else read_blob(value)
            elif name.startswith("artifacts/") and isinstance(value, bytes) and len(value) <= INLINE_LIMIT:
                entry_name(run_id, name)  # a name the log has (else ValueError)
                inline.setdefault(run_id, {})[name[len("artifacts/"):]] = value
            else:
                out[entry_name(run_id, name) or ""] = value
                if name.startswith("artifacts/"):  # an entry from now on: not in the blob any more
                    inline.setdefault(run_id, {})[name[len("artifacts/"):]] = None
        elif segments[0] == "commits" and len(segments) == 5 and _ID.match(segments[2]) and _ID.match(segments[4]):
            pass  # the run blob's name says it, from the record
        else:
            raise ValueError(f"not a path of the ledger: {path!r}")
    for run_id in inline:
        parts.setdefault(run_id, {})
    for run_id, new in parts.items():
        first = "record" in new  # a run's first write: it has no artifacts in the ledger yet
        for part in ("record", "state"):
            if part not in new:
                old = current(run_id, part)
                if old is None:
                    raise DataError(f"run {run_id[:12]} has no {part} in the ledger to write beside its "
                                    f"{'state' if part == 'record' else 'record'}")
                new[part] = old
        kept = {} if first else dict(current(run_id, "artifacts") or {})
        for key, content in inline.get(run_id, {}).items():
            if content is None:
                kept.pop(key, None)
            else:
                kept[key] = content
        out[run_blob_name(run_id, record_commit(new["record"]))] = encode_run_blob(new["record"], new["state"], kept)
        if kept_out is not None:
            kept_out[run_id] = kept
    return out


def record_commit(record: bytes) -> str | None:
    """The commit a run's record says it was made at (its ``code.commit``), if any."""
    import msgspec

    try:
        code = msgspec.json.decode(record).get("code")
    except (msgspec.DecodeError, AttributeError):
        return None
    commit = code.get("commit") if isinstance(code, dict) else None
    return commit if isinstance(commit, str) and _ID.match(commit) else None


def checkpoint_entries(repo: GitRepository, tree: str | None) -> dict[str, bytes | str]:
    """Every run of a format-3 ledger ``tree`` under the log's names: a new run blob a
    run, every other file and each commit's link by the blob id it has. A file the log
    has no name for, or a run without its record or state, is not carried over (``prov
    verify`` of format 3 names them; the format-3 commits stay in the history)."""
    odb = repo.odb
    root = read_tree(odb, tree)
    out: dict[str, bytes | str] = {}

    def files(oid: str, prefix: str) -> Iterator[tuple[str, str]]:
        for name, e in read_tree(odb, oid, keep=False).items():
            if e.is_tree:
                yield from files(e.oid, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", e.oid

    runs = root.get("runs")
    for shard in (read_tree(odb, runs.oid, keep=False).values() if runs is not None and runs.is_tree else ()):
        for run_id, run in (read_tree(odb, shard.oid, keep=False).items() if shard.is_tree else ()):
            if not run.is_tree or not _ID.match(run_id):
                continue
            entries = dict(files(run.oid, ""))
            if "record" not in entries or "state" not in entries:
                continue
            for path, oid in entries.items():
                if path not in ("record", "state"):
                    with contextlib.suppress(ValueError):
                        out[entry_name(run_id, path) or ""] = oid
            record = odb.read_typed(entries["record"], "blob")
            out[run_blob_name(run_id, record_commit(record))] = encode_run_blob(
                record, odb.read_typed(entries["state"], "blob"))
    out.pop("", None)
    return out


class FoldCache:
    """The fold at one tip, kept (``{entry name: blob id}``, and the runs of each commit
    from the link entries): on disk in ``.git/prov/ledger-fold.sqlite`` (local, never
    pushed, rebuilt from the ledger when missing, damaged or of another version), in
    memory for an in-memory repository. ``update`` brings it to a new tip by folding only
    the commits above the one it holds when that one is an ancestor
    (``fold_with_git(since=)``: their entries replace its own), and folds from nothing
    when the ledger moved any other way (a history rewritten, a cache of another
    ledger). One process updates it at a time; the others wait and find it done."""

    FILE = "ledger-fold.sqlite"
    VERSION = "2"

    def __init__(self, repo: GitRepository) -> None:
        import os

        self.repo = repo
        git_dir = repo.common_dir or repo.git_dir
        self.path = ":memory:"
        if git_dir is not None:
            os.makedirs(os.path.join(git_dir, "prov"), exist_ok=True)
            self.path = os.path.join(git_dir, "prov", self.FILE)
        try:
            self.db = self._open()
        except sqlite3.DatabaseError:  # not a database, or damaged: it is only a cache
            os.remove(self.path)
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=600, check_same_thread=False)
        try:
            db.executescript(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
                "CREATE TABLE IF NOT EXISTS entries (name TEXT PRIMARY KEY, oid BLOB) WITHOUT ROWID;"
                "CREATE TABLE IF NOT EXISTS links (commit_id TEXT, run TEXT, PRIMARY KEY (commit_id, run)) WITHOUT ROWID;")
            row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            if row is None or row[0] != self.VERSION:
                db.executescript("BEGIN IMMEDIATE; DELETE FROM entries; DELETE FROM links; DELETE FROM meta;"
                                 f"INSERT INTO meta VALUES ('version', '{self.VERSION}'); COMMIT;")
        except BaseException:
            db.close()
            raise
        return db

    def tip(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'tip'").fetchone()
        return row[0] if row else None

    def update(self, tip: str | None) -> None:
        """Hold the fold at ``tip`` (None: an empty ledger)."""
        if self.tip() == tip:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")  # another process folding the same commits: wait for it
        try:
            old = self.tip()
            if old != tip:
                self._update(old, tip)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _update(self, old: str | None, tip: str | None) -> None:
        changed = _fold_above(self.repo, tip, old) if old is not None and tip is not None else None
        since = old if changed is not None else None
        if changed is None:
            since = old if old is not None and tip is not None and is_ancestor(self.repo, old, tip) else None
            changed = fold_since(self.repo, tip, since) if tip is not None else {}
        db = self.db
        if since is None:
            db.execute("DELETE FROM entries")
            db.execute("DELETE FROM links")
        db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?)",
                       ((name, bytes.fromhex(oid)) for name, oid in changed.items()))
        db.executemany("INSERT OR IGNORE INTO links VALUES (?, ?)",
                       ((link[1], link[0]) for name in changed if "^" in name and (link := link_of(name))))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('tip', ?)", (tip,))

    def entries_of(self, run_id: str) -> dict[str, str]:
        """``{entry name: blob id}`` of one run (its names all start with its id)."""
        rows = self.db.execute("SELECT name, oid FROM entries WHERE name >= ? AND name < ?", (run_id, run_id + "\x7f"))
        size = len(run_id)
        return {name: oid.hex() for name, oid in rows if len(name) == size or name[size] in "=!+@#^"}

    def run_blob_of(self, run_id: str) -> str | None:
        """The blob id of a run's blob (its entry ``<id>`` or ``<id>^<commit>``), by the key."""
        row = self.db.execute("SELECT oid FROM entries WHERE name = ? OR (name > ? AND name < ?) LIMIT 1",
                              (run_id, run_id + "^", run_id + "_")).fetchone()
        return row[0].hex() if row else None

    def names_with_prefix(self, prefix: str) -> list[str]:
        rows = self.db.execute("SELECT name FROM entries WHERE name >= ? AND name < ?", (prefix, prefix + "\x7f"))
        return [name for (name,) in rows]

    def runs_at(self, commit: str) -> list[str]:
        return [run for (run,) in self.db.execute("SELECT run FROM links WHERE commit_id = ? ORDER BY run", (commit,))]

    def commits(self) -> list[str]:
        return [c for (c,) in self.db.execute("SELECT DISTINCT commit_id FROM links ORDER BY commit_id")]

    def run_blobs(self) -> Iterator[tuple[str, str]]:
        """``(run id, run blob id)`` of every run, in id order (read as they are used)."""
        for name, oid in self.db.execute("SELECT name, oid FROM entries WHERE length(name) IN (40, 64) "
                                         "OR instr(name, '^') > 0 ORDER BY name"):
            if (run := is_run_blob(name)) is not None:
                yield run, oid.hex()

    def items(self) -> dict[str, str]:
        return {name: oid.hex() for name, oid in self.db.execute("SELECT name, oid FROM entries")}

    def close(self) -> None:
        self.db.close()
