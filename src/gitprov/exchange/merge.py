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
from ..store.trees import build_tree, merge_trees, walk_blobs

__all__ = ["merge_ledger_trees", "merge_run_dirs", "merge_states"]


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

