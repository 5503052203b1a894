"""Merging two ledgers (and two notes trees) without losing a record.

The rules (DESIGN.md §3, ``docs/design/collaboration.md``):

- run directories: union; a run on one side only is kept as it is;
- ``record``: immutable, and its bytes name the run, so both sides hold the same bytes;
- ``series/…`` and ``observations/…`` chunks: union of names (``<writer>-<seq>`` never
  collide between writers); so are ``summaries/<key>/<writer>``;
- ``state``: the copy with the higher ``(lamport, writer)`` wins (the bytes break a
  tie); a tombstone (``deleted``) on either side wins;
- a file both sides changed differently (``artifacts/<key>``, ``code.patch``): the
  version the winning state describes (artifact sha256, patch blob id), else the
  higher blob id.

Every rule is a function of the two inputs' contents only, so the merge is commutative,
associative and idempotent, and clones that exchanged everything hold byte-identical
ledger trees.

Format 4's log (``store/ledger_log.py``) is merged by the same rules, applied to what
both lines wrote since their merge base (``merge_logs``): the merge commit holds those
resolutions, and the fold reads the rest from the two lines.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .. import codec
from ..errors import DataError
from ..keys import key_from_name
from ..model import RunState
from ..store.objects import MODE_TREE, TreeEntry
from ..store.odb import ObjectDatabase
from ..store.repo import GitRepository
from ..store.trees import build_tree, merge_trees, walk_blobs

__all__ = ["merge_ledger_trees", "merge_logs", "merge_run_dirs", "merge_states"]


def merge_ledger_trees(odb: ObjectDatabase, ours: str | None, theirs: str | None) -> str | None:
    """The union of two ledger trees by the rules above."""

    def resolve(path: str, mine: TreeEntry, other: TreeEntry) -> TreeEntry | None:
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "runs" and mine.is_tree and other.is_tree:
            return TreeEntry(MODE_TREE, parts[2], merge_run_dirs(odb, parts[2], mine.oid, other.oid))
        if mine.is_tree and other.is_tree:
            return None
        if mine.is_tree != other.is_tree:
            raise DataError(f"ledger entry {path} is a file on one side and a directory on the other")
        return max(mine, other, key=lambda e: e.oid)

    return merge_trees(odb, ours, theirs, resolve)


def merge_states(ours: bytes, theirs: bytes) -> bytes:
    """Two copies of a run's ``state``: the later ``(lamport, writer)`` wins, a tombstone
    on either side wins."""
    if ours == theirs:
        return ours
    a = codec.decode(ours, RunState, "run state")
    b = codec.decode(theirs, RunState, "run state")
    winner_bytes, winner = max((ours, a), (theirs, b), key=lambda p: (p[1].lamport, p[1].writer, p[0]))
    if (a.deleted or b.deleted) and not winner.deleted:
        import msgspec

        return codec.encode(msgspec.structs.replace(winner, deleted=True))
    return winner_bytes


def merge_run_dirs(odb: ObjectDatabase, run_id: str, ours: str, theirs: str) -> str:
    """The union of two copies of one run directory."""
    mine = dict(walk_blobs(odb, ours))
    other = dict(walk_blobs(odb, theirs))
    merged = dict(mine)
    conflicts = []
    for path, oid in other.items():
        have = merged.get(path)
        if have is None:
            merged[path] = oid
        elif have != oid:
            conflicts.append(path)
    if "record" in conflicts:
        raise DataError(f"run {run_id[:12]}: two different records under one id")
    state = None
    if "state" in conflicts:
        data = merge_states(odb.read_typed(mine["state"], "blob"), odb.read_typed(other["state"], "blob"))
        merged["state"] = odb.write("blob", data)
        conflicts.remove("state")
    if conflicts:
        state = codec.decode(odb.read_typed(merged["state"], "blob"), RunState, "run state") if "state" in merged else None
    for path in conflicts:
        merged[path] = _pick(odb, path, mine[path], other[path], state)
    return build_tree(odb, merged) or ours


def _pick(odb: ObjectDatabase, path: str, a: str, b: str, state: RunState | None) -> str:
    """Of two versions of a file, the one the winning state describes, else the higher id."""
    wanted = _described(path, state)
    if wanted is not None:
        for oid in (a, b):
            if wanted == oid or wanted == hashlib.sha256(odb.read_typed(oid, "blob")).hexdigest():
                return oid
    return max(a, b)


def _described(path: str, state: RunState | None) -> str | None:
    if state is None:
        return None
    if path.startswith("artifacts/") and path.count("/") == 1:
        ref = state.artifacts.get(key_from_name(path.split("/", 1)[1]))
        return ref.sha256 if ref is not None else None
    if path == "code.patch":
        code: Any = state.attributes.get("prov.code")
        return code.get("patch") if isinstance(code, dict) else None
    return None



def merge_logs(repo: GitRepository, ours: str, theirs: str, ours_is_log: bool, theirs_is_log: bool,
               folded: tuple[list[str], dict[str, str]] | None = None) -> str | None:
    """The tree of the commit merging two ledger tips of which one at least is format 4's
    log: both logs, a log commit holding the resolutions of the entries both lines wrote
    differently since their merge base, or None when ours wrote nothing since then that
    theirs lacks (theirs is the merge: a fast-forward, as format 3 takes a tree that
    holds all of ours; two clones' first ``prov init`` share no history); a log and a tip
    of format 3 (a clone that had not upgraded yet), a checkpoint of every run of both.
    ``folded``: the merge bases of the two logs and what ``theirs`` wrote above them, as
    validation read them (``Verdict.fold``), else found here."""
    from ..store import ledger_log as log

    if ours_is_log and theirs_is_log:
        bases, other = folded if folded is not None else (log.merge_bases(repo, ours, theirs), None)
        mine = log.fold_since(repo, ours, bases)
        if other is None:
            other = log.fold_since(repo, theirs, bases)
        if all(other.get(name) == oid for name, oid in mine.items()):
            return None
        both = {name: (oid, other[name]) for name, oid in mine.items() if name in other and other[name] != oid}

        blobs = {run: oid for side in (other, mine) for name, oid in side.items() if (run := log.is_run_blob(name))}

        def run_blob(run_id: str) -> str | bytes | None:
            found = blobs.get(run_id)  # the line that wrote it since the base (both: resolved before asked)
            if found is None:  # neither line wrote it since the base: the base's version
                view = log.LogView(repo, ours)
                parts = view.run_parts(run_id)
                return log.encode_run_blob(*parts) if parts is not None else None
            return found

        return log.log_tree(repo, _resolve(repo, both, run_blob))
    log_tip, tree_tip = (ours, theirs) if ours_is_log else (theirs, ours)
    merged: dict[str, bytes | str] = dict(log.fold_since(repo, log_tip, None))
    conflicts: dict[str, tuple[bytes | str, bytes | str]] = {}
    with repo.odb.batch():  # format 3's runs as run blobs, stored as they are made (names and ids held)
        for name, value in log.stored_checkpoint(repo, repo.read_commit(tree_tip).tree)[0].items():
            have = merged.setdefault(name, value)
            if have != value:
                conflicts[name] = (have, value)
        blobs = {run: value for name, value in merged.items() if (run := log.is_run_blob(name))}
        merged.update(_resolve(repo, conflicts, blobs.get))
        return log.checkpoint_tree(repo, merged)


def _merge_kept(a: dict[str, bytes], b: dict[str, bytes], state_bytes: bytes) -> dict[str, bytes]:
    """The artifacts two copies of a run blob hold: both sides' (a key is the run's own),
    one key with two contents as the winning state describes, else the greater."""
    merged = {**b, **a}
    conflicts = [key for key in a if key in b and a[key] != b[key]]
    if conflicts:
        state = codec.decode(state_bytes, RunState, "run state")
        for key in conflicts:
            ref = state.artifacts.get(key_from_name(key))
            wanted = ref.sha256 if ref is not None else None
            merged[key] = next((v for v in (a[key], b[key]) if hashlib.sha256(v).hexdigest() == wanted),
                               max(a[key], b[key]))
    return merged


def _oid(repo: GitRepository, value: bytes | str) -> str:
    return value if isinstance(value, str) else repo.fmt.hash_object("blob", value)


def _content(repo: GitRepository, value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else repo.odb.read_typed(value, "blob")


def _resolve(repo: GitRepository, both: dict[str, tuple[bytes | str, bytes | str]],
             run_blob: Any) -> dict[str, bytes | str]:
    """``{name: the merged version}`` of log entries written differently on two lines
    (blob ids, or content): run blobs by the state rule (one record an id), chunks and
    summaries never (a name is one writer's), artifacts and the code patch as the
    winning state describes. ``run_blob(run id)``: a run's blob when it is not among them."""
    from ..store import ledger_log as log

    out: dict[str, bytes | str] = {}
    resolved: dict[str, bytes] = {}  # run id -> its merged blob
    hash_blob = repo.fmt.hash_object
    for name, (a, b) in sorted(both.items()):
        if (run_id := log.is_run_blob(name)) is not None:
            try:
                record_a, state_a, kept_a = log.run_blob_parts(_content(repo, a), run_id, hash_blob)
                record_b, state_b, kept_b = log.run_blob_parts(_content(repo, b), run_id, hash_blob)
            except ValueError as exc:
                raise DataError(f"{exc}; run 'prov verify'") from None
            if record_a != record_b:
                raise DataError(f"run {run_id[:12]}: two different records under one id")
            state = merge_states(state_a, state_b)
            out[name] = resolved[run_id] = log.encode_run_blob(record_a, state, _merge_kept(kept_a, kept_b, state))
    for name, (a, b) in sorted(both.items()):
        if name in out:
            continue
        where = log.file_of(name)
        if where is None:  # not a run's entry (validation refuses them): the higher id
            out[name] = max(_oid(repo, a), _oid(repo, b))
            continue
        run_id, path = where
        if path.split("/", 1)[0] in ("series", "observations", "summaries"):
            raise DataError(f"run {run_id[:12]}: {path} has two different contents (one writer's name)")
        blob = resolved.get(run_id) or run_blob(run_id)
        state = None
        if blob is not None:
            try:
                state = codec.decode(log.decode_run_blob(_content(repo, blob), run_id, hash_blob)[1], RunState,
                                     "run state")
            except (ValueError, DataError):
                state = None
        out[name] = _pick(repo.odb, path, _oid(repo, a), _oid(repo, b), state)
    return out
