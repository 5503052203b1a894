"""The merge of ledgers and notes is commutative, associative and idempotent, and any
interleaving of writes and exchanges on three clones converges to byte-identical trees.

Clones are simulated on one in-memory object database (objects are content-addressed,
so sharing it changes nothing): each clone is a ledger tree plus a writer id, and every
write is what git-prov's run layer writes (records, states with lamport clocks, chunks,
artifacts with their descriptors, tombstones).
"""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitprov import codec
from gitprov.errors import DataError
from gitprov.exchange.merge import merge_ledger_trees, merge_states
from gitprov.model import ArtifactRef, CodeVersion, RunRecord, RunState
from gitprov.runs.series import encode_metric_chunk
from gitprov.schema import current_pin
from gitprov.store.ledger import run_dir
from gitprov.store.notes import Notes, build_notes_tree, merge_notes_trees, note_entries, split_note
from gitprov.store.objects import SHA1, SHA256
from gitprov.store.repo import GitRepository
from gitprov.store.trees import edit_tree, read_path, walk_blobs

PIN = current_pin()
FORMAT = b'{"format_version":1,"kind":"ledger"}'


class Clone:
    def __init__(self, odb, writer: str, tree: str | None) -> None:
        self.odb, self.writer, self.tree, self.seq = odb, writer, tree, 0

    def runs(self) -> list[str]:
        return sorted(path.split("/")[2] for path, _ in walk_blobs(self.odb, self.tree) if path.endswith("/record"))

    def state(self, run: str) -> RunState:
        entry = read_path(self.odb, self.tree, f"{run_dir(run)}/state")
        return codec.decode(self.odb.read_typed(entry.oid, "blob"), RunState)

    def write(self, run: str, changes: dict[str, bytes]) -> None:
        self.tree = edit_tree(self.odb, self.tree, {f"{run_dir(run)}/{p}": d for p, d in changes.items()})

    def bump(self, run: str, **fields) -> bytes:
        old = self.state(run)
        return codec.encode(msgspec.structs.replace(old, lamport=old.lamport + 1, writer=self.writer, **fields))


def apply(clones: list[Clone], op: tuple) -> None:
    kind, i, arg = op
    clone = clones[i]
    if kind == "sync":
        other = clones[arg % len(clones)]
        clone.tree = merge_ledger_trees(clone.odb, clone.tree, other.tree)
        return
    if kind == "new":
        record = codec.encode(RunRecord(created=f"2026-11-22T00:00:{arg % 60:02d}.000000Z", nonce=f"{i:02x}{arg:014x}",
                                        name=f"r{arg}", code=CodeVersion(commit="a" * 40), schema=PIN))
        run = clone.odb.fmt.hash_object("blob", record)
        state = codec.encode(RunState(lamport=1, writer=clone.writer, name=f"r{arg}", status="running"))
        clone.write(run, {"record": record, "state": state})
        return
    runs = clone.runs()
    if not runs:
        return
    run = runs[arg % len(runs)]
    if kind == "tag":
        tags = {**clone.state(run).tags, f"t{arg % 3}": f"{clone.writer}{arg}"}
        clone.write(run, {"state": clone.bump(run, tags=tags)})
    elif kind == "chunk":
        clone.seq += 1
        chunk = encode_metric_chunk([clone.seq], [1_700_000_000_000 + arg], [float(arg)])
        clone.write(run, {f"series/loss/{clone.writer}-{clone.seq:08d}": chunk, "state": clone.bump(run)})
    elif kind == "artifact":
        content = f"weights {clone.writer} {arg}".encode()
        ref = ArtifactRef(key="model", sha256=hashlib.sha256(content).hexdigest(), size=len(content))
        artifacts = {**clone.state(run).artifacts, "model": ref}
        clone.write(run, {"artifacts/model": content, "state": clone.bump(run, artifacts=artifacts)})
    elif kind == "finish":
        clone.write(run, {"state": clone.bump(run, status="finished")})
    elif kind == "delete":
        clone.write(run, {"state": clone.bump(run, deleted=True)})


OPS = st.tuples(st.sampled_from(["new", "new", "tag", "chunk", "artifact", "finish", "delete", "sync", "sync"]),
                st.integers(0, 2), st.integers(0, 10_000))


def fresh(fmt=SHA1) -> list[Clone]:
    odb = GitRepository.memory(fmt).odb
    base = edit_tree(odb, None, {"format": FORMAT})
    return [Clone(odb, f"{w:08x}", base) for w in (0xA1, 0xB2, 0xC3)]


def full_exchange(clones: list[Clone]) -> None:
    for _ in range(2):
        for a in clones:
            for b in clones:
                a.tree = merge_ledger_trees(a.odb, a.tree, b.tree)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(OPS, max_size=40))
def test_three_clones_converge_to_identical_trees(ops) -> None:
    clones = fresh()
    for op in ops:
        apply(clones, op)
    created = {run for c in clones for run in c.runs()}
    full_exchange(clones)
    assert len({c.tree for c in clones}) == 1
    assert set(clones[0].runs()) == created  # nothing lost


@SETTINGS
@given(st.lists(OPS, max_size=30))
def test_merge_is_commutative_associative_idempotent(ops) -> None:
    clones = fresh()
    for op in ops:
        apply(clones, op)
    odb = clones[0].odb
    a, b, c = (cl.tree for cl in clones)
    merge = lambda x, y: merge_ledger_trees(odb, x, y)  # noqa: E731
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a
    ab = merge(a, b)
    assert merge(ab, a) == ab  # merging again changes nothing


@SETTINGS
@given(st.lists(OPS, max_size=30))
def test_chunks_and_tombstones_survive_any_merge(ops) -> None:
    clones = fresh()
    for op in ops:
        apply(clones, op)
    chunks = {p for c in clones for p, _ in walk_blobs(c.odb, c.tree) if "/series/" in p}
    deleted = {run for c in clones for run in c.runs() if c.state(run).deleted}
    full_exchange(clones)
    merged = clones[0]
    assert chunks <= {p for p, _ in walk_blobs(merged.odb, merged.tree)}
    assert deleted <= {run for run in merged.runs() if merged.state(run).deleted}


def test_the_later_state_wins_and_its_artifact_with_it() -> None:
    clones = fresh(SHA256)
    a, b, _ = clones
    apply(clones, ("new", 0, 7))
    b.tree = a.tree
    run = a.runs()[0]
    apply(clones, ("artifact", 0, 1))  # a: lamport 2
    apply(clones, ("tag", 1, 1))  # b: lamport 2 (concurrent)
    apply(clones, ("artifact", 1, 2))  # b: lamport 3, overwrites the artifact
    merged = Clone(a.odb, "x", merge_ledger_trees(a.odb, a.tree, b.tree))
    state = merged.state(run)
    assert state.lamport == 3 and state.writer == b.writer
    blob = read_path(a.odb, merged.tree, f"{run_dir(run)}/artifacts/model").oid
    assert hashlib.sha256(a.odb.read_typed(blob, "blob")).hexdigest() == state.artifacts["model"].sha256


def test_state_tie_is_broken_by_writer_then_bytes() -> None:
    x = codec.encode(RunState(lamport=3, writer="aaaaaaaa", name="x"))
    y = codec.encode(RunState(lamport=3, writer="bbbbbbbb", name="y"))
    assert merge_states(x, y) == merge_states(y, x) == y
    dead = codec.encode(RunState(lamport=1, writer="aaaaaaaa", deleted=True))
    merged = codec.decode(merge_states(y, dead), RunState)
    assert merged.deleted and merged.name == "y"


def test_two_records_under_one_id_are_refused() -> None:
    clones = fresh()
    apply(clones, ("new", 0, 1))
    a, b, _ = clones
    run = a.runs()[0]
    b.tree = edit_tree(b.odb, b.tree, {f"{run_dir(run)}/record": b"forged", f"{run_dir(run)}/state": b"{}"})
    with pytest.raises(DataError, match="two different records"):
        merge_ledger_trees(a.odb, a.tree, b.tree)


# -- notes ---------------------------------------------------------------------------
def _commit_ids(seed: int, n: int) -> list[str]:
    return [hashlib.sha1(f"{seed}-{i}".encode()).hexdigest() for i in range(n)]


NOTE_OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 599), st.integers(0, 3)), max_size=700)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(NOTE_OPS)
def test_notes_merge_laws_and_canonical_layout(ops) -> None:
    repo = GitRepository.memory()
    commits = _commit_ids(1, 600)
    notes = [Notes(repo, f"refs/notes/c{i}") for i in range(3)]
    for clone, which, line in ops:
        notes[clone].add({commits[which]: [b'{"line":%d}' % line]})
    a, b, c = (repo.read_commit(n.tip()).tree if n.tip() else None for n in notes)
    merge = lambda x, y: merge_notes_trees(repo.odb, x, y)  # noqa: E731
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a
    for tree in (a, b, c):  # what Notes.add builds incrementally is the canonical layout
        assert tree == build_notes_tree(repo.odb, dict(note_entries(repo.odb, tree)))
    merged = merge(merge(a, b), c)
    expected: dict[str, set[bytes]] = {}
    for _clone, which, line in ops:
        expected.setdefault(commits[which], set()).add(b'{"line":%d}' % line)
    got = {cm: set(split_note(repo.odb.read_typed(blob, "blob"))) for cm, blob in note_entries(repo.odb, merged)}
    assert got == expected


def test_notes_fan_out_past_256() -> None:
    repo = GitRepository.memory()
    odb = repo.odb
    blob = odb.write("blob", b"x\n")
    tree = build_notes_tree(odb, dict.fromkeys(_commit_ids(2, 300), blob))
    from gitprov.store.trees import read_tree

    top = read_tree(odb, tree)
    assert all(e.is_tree and len(e.name) == 2 for e in top.values())
    assert len(dict(note_entries(odb, tree))) == 300
