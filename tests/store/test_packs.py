"""Packs prov writes (one per transaction) and merges: the real git binary reads every
object, ``git fsck --strict`` and ``git verify-pack`` accept them, and ``git gc`` /
``git repack`` work on the repository afterwards, in SHA-1 and SHA-256 repositories."""

from __future__ import annotations

import os
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitprov.errors import UsageError
from gitprov.store import packs
from gitprov.store.ledger import Ledger
from gitprov.store.objects import MODE_BLOB, TreeEntry, encode_commit, encode_tree
from gitprov.store.odb import MemoryObjectDatabase
from gitprov.store.packfile import Pack
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo

pytestmark = pytest.mark.gitbin


def pack_dir(repo: GitRepo):
    return repo.path / ".git" / "objects" / "pack"


def idx_files(repo: GitRepo) -> list[str]:
    return sorted(n for n in os.listdir(pack_dir(repo)) if n.endswith(".idx")) if pack_dir(repo).exists() else []


def loose_count(repo: GitRepo) -> int:
    out = repo.git("count-objects", "-v")
    return int(dict(line.split(": ") for line in out.splitlines())["count"])


def write_some(git: GitRepository, tag: str, n: int = 5) -> list[tuple[str, str, bytes]]:
    """Blobs, a tree and a commit: every object kind prov writes."""
    written = []
    entries = []
    for i in range(n):
        data = f"{tag} blob {i}\n".encode() * (i + 1)
        oid = git.odb.write("blob", data)
        written.append((oid, "blob", data))
        entries.append(TreeEntry(MODE_BLOB, f"f{i}", oid))
    tree = encode_tree(entries)
    written.append((git.odb.write("tree", tree), "tree", tree))
    commit = encode_commit(written[-1][0], [], "Prov <p@x> 1700000000 +0000", f"{tag}\n")
    written.append((git.odb.write("commit", commit), "commit", commit))
    return written


def test_a_batch_is_one_pack_git_reads(repo: GitRepo) -> None:
    git = GitRepository.open(str(repo.path))
    before = loose_count(repo)
    with git.odb.batch():
        written = write_some(git, "one")
        with git.odb.batch():  # nested: joins the outer batch
            written += write_some(git, "nested")
        # readable by this thread before the pack exists
        assert git.odb.read(written[0][0]) == ("blob", written[0][2])
        assert idx_files(repo) == []
    assert loose_count(repo) == before
    [idx] = idx_files(repo)
    repo.git("verify-pack", str(pack_dir(repo) / idx))
    for oid, kind, data in written:
        assert repo.git("cat-file", "-t", oid).strip() == kind
        assert GitRepository.open(str(repo.path)).odb.read(oid) == (kind, data)  # a fresh reader too
    blob_oid, _, blob = written[0]
    assert repo.git("cat-file", "blob", blob_oid).encode() == blob
    repo.git("update-ref", "refs/prov/test", written[-1][0])  # reachable: fsck checks connectivity
    repo.fsck()


def test_a_batch_that_raises_still_stores_its_objects(repo: GitRepo) -> None:
    """A caller may hold the ids (a run's chunks) and retry after the error."""
    git = GitRepository.open(str(repo.path))
    with pytest.raises(UsageError), git.odb.batch():
        oid = git.odb.write("blob", b"stored all the same\n")
        raise UsageError("stop")
    assert len(idx_files(repo)) == 1
    assert repo.git("cat-file", "-p", oid) == "stored all the same\n"


def test_flush_inside_a_batch_makes_objects_durable(repo: GitRepo) -> None:
    git = GitRepository.open(str(repo.path))
    with git.odb.batch():
        oid = git.odb.write("blob", b"flushed early\n")
        git.odb.flush()
        assert repo.git("cat-file", "-p", oid) == "flushed early\n"
        late = git.odb.write("blob", b"flushed at exit\n")
    assert len(idx_files(repo)) == 2
    assert repo.git("cat-file", "-p", late) == "flushed at exit\n"


def test_small_packs_are_merged_and_git_gc_still_works(repo: GitRepo) -> None:
    git = GitRepository.open(str(repo.path))
    other = GitRepository.open(str(repo.path))  # a reader whose pack list goes stale
    written = []
    tips = []
    for i in range(3 * packs.MERGE_AT):
        with git.odb.batch():
            objs = write_some(git, f"t{i}", n=2)
        git.odb.maintain()  # what a transaction does once its refs moved
        written += objs
        tips.append(objs[-1][0])
        if i == 2:
            assert other.odb.read(objs[0][0])[0] == "blob"  # loads the packs of that moment
        assert len(idx_files(repo)) <= packs.MERGE_AT + 1
    assert len(idx_files(repo)) < 3 * packs.MERGE_AT
    for oid, kind, data in written:
        assert other.odb.read(oid) == (kind, data)  # the packs it knew were merged away
    batch = "\n".join(oid for oid, _, _ in written) + "\n"
    listed = repo.git("cat-file", "--batch-check", input=batch)
    assert "missing" not in listed and len(listed.splitlines()) == len(written)
    for n, tip in enumerate(tips):
        repo.git("update-ref", f"refs/prov/t{n}", tip)
    for idx in idx_files(repo):
        repo.git("verify-pack", str(pack_dir(repo) / idx))
    repo.fsck()
    repo.git("gc", "-q", "--prune=now")
    repo.git("repack", "-a", "-d", "-q")
    repo.fsck()
    assert loose_count(repo) == 0
    for oid, kind, data in written:
        assert other.odb.read(oid) == (kind, data)  # after git's repack deleted every pack it knew


def test_transactions_keep_the_pack_count_bounded(repo: GitRepo) -> None:
    git = GitRepository.open(str(repo.path))
    ledger = Ledger(git)
    loose = loose_count(repo)  # the first commit's
    for i in range(3 * packs.MERGE_AT):
        ledger.apply({f"runs/{i:02x}/r{i}/state": b"%d" % i}, f"t{i}", b"{}")
    assert len(idx_files(repo)) <= packs.MERGE_AT
    assert loose_count(repo) == loose
    assert len(ledger.list_dir("runs")) == 3 * packs.MERGE_AT
    repo.fsck()


def test_packs_git_made_are_not_merged(tmp_path) -> None:
    d = tmp_path / "pack"
    d.mkdir()
    counts = {str(d / f"pack-{i:040x}.idx"): 10 for i in range(packs.MERGE_AT + 3)}
    (d / f"pack-{0:040x}.keep").write_text("")
    (d / f"pack-{1:040x}.promisor").write_text("")
    chosen = packs.mergeable_packs(str(d), counts)
    assert len(chosen) == packs.MERGE_AT + 1
    assert not {str(d / f"pack-{i:040x}.idx") for i in (0, 1)} & set(chosen)
    assert packs.mergeable_packs(str(d), dict(list(counts.items())[: packs.MERGE_AT])) == []


def test_geometric_merging_keeps_large_packs() -> None:
    big = {f"/p/pack-big{i}.idx": 1000 * 4**i for i in range(4)}  # a geometric progression
    small = {f"/p/pack-small{i}.idx": 30 for i in range(packs.MERGE_AT)}
    chosen = set(packs.mergeable_packs("/nonexistent", {**big, **small}))
    assert chosen == set(small)


def test_pack_bytes_match_git_index_pack(repo: GitRepo, tmp_path) -> None:
    """git's own index-pack, given only prov's .pack, computes the .idx prov wrote."""
    fmt = GitRepository.open(str(repo.path)).fmt
    db = MemoryObjectDatabase(fmt)
    objects = [(db.write("blob", b"x" * n), packs.pack_entry("blob", b"x" * n)) for n in (0, 1, 15, 16, 200, 70_000)]
    pack, idx, name = packs.encode_pack(fmt, objects)
    (tmp_path / "p.pack").write_bytes(pack)
    repo.git("index-pack", f"--object-format={fmt.name}", "-o", str(tmp_path / "git.idx"), str(tmp_path / "p.pack"))
    assert (tmp_path / "git.idx").read_bytes() == idx


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([0, 1, 2, 100, 65534, 65535, 65536, 65537, 131070, 131071, 200_000]) | st.integers(0, 3000), st.binary(max_size=64))
def test_stored_is_a_zlib_stream_of_the_data(size: int, seed: bytes) -> None:
    data = (seed or b"\x00") * (size // max(1, len(seed)) + 1)
    data = data[:size]
    stream = packs.stored(data)
    inflater = zlib.decompressobj()
    assert inflater.decompress(stream) == data
    assert inflater.eof and not inflater.unused_data
    assert len(stream) == len(data) + 6 + 5 * max(1, -(-size // 0xFFFF))


def test_trees_stored_in_several_blocks_are_read_by_git(repo: GitRepo, tmp_path) -> None:
    """A tree of 100 KB (two stored blocks) and an empty one, stored at level 0 in a
    pack: git reads them, ``git index-pack`` computes the same index, fsck is clean."""
    git = GitRepository.open(str(repo.path))
    with git.odb.batch():
        blob = git.odb.write("blob", b"shared\n")
        entries = [TreeEntry(MODE_BLOB, f"file-{i:05d}-{'x' * 20}", blob) for i in range(2500)]
        big = encode_tree(entries)
        assert len(big) > 0xFFFF
        tree = git.odb.write("tree", big)
        empty = git.odb.write("tree", b"")
        outer = git.odb.write("tree", encode_tree([TreeEntry("40000", "big", tree), TreeEntry("40000", "empty", empty)]))
        commit = git.odb.write("commit", encode_commit(outer, [], "Prov <p@x> 1700000000 +0000", "trees\n"))
    repo.git("update-ref", "refs/prov/trees", commit)
    assert repo.git("cat-file", "-s", tree).strip() == str(len(big))
    assert repo.git("ls-tree", tree).count("\n") == 2500
    [idx] = idx_files(repo)
    repo.git("verify-pack", str(pack_dir(repo) / idx))
    repo.git("index-pack", f"--object-format={git.fmt.name}", "-o", str(tmp_path / "git.idx"), str(pack_dir(repo) / idx.replace(".idx", ".pack")))
    assert (tmp_path / "git.idx").read_bytes() == (pack_dir(repo) / idx).read_bytes()
    assert GitRepository.open(str(repo.path)).odb.read(tree) == ("tree", big)
    repo.fsck()


def test_an_index_of_a_pack_past_2_gib_round_trips(tmp_path) -> None:
    """Offsets past 2 GiB go to the index's table of 64-bit offsets; reading the index
    back gives every offset and crc32, by id and in pack order."""
    fmt = GitRepository.memory().fmt
    ids = [bytes([i * 37 % 256]) * fmt.raw_len for i in range(6)]
    offsets = [12, 3 << 30, 5000, (1 << 31) - 1, 1 << 31, 9 << 32]
    crcs = [i * 1_000_003 for i in range(6)]
    (tmp_path / "p.idx").write_bytes(packs._encode_idx(fmt, ids, crcs, offsets, b"\x00" * fmt.raw_len))
    index = Pack(str(tmp_path / "p.idx"), fmt)
    assert [index.offset_of(raw.hex()) for raw in ids] == offsets
    rows = sorted(zip(offsets, ids, crcs, strict=True))
    assert index.by_offset() == tuple(tuple(column) for column in zip(*rows, strict=True))


def test_memory_twin_batches_are_plain_writes() -> None:
    db = MemoryObjectDatabase(GitRepository.memory().fmt)
    with db.batch():
        oid = db.write("blob", b"x")
        db.flush()
    assert db.read(oid) == ("blob", b"x")


def git_made_packs(repo: GitRepo, ofs_delta: bool) -> tuple[str, str]:
    """Two packs git wrote, ``(with deltas, kept)``: the first holds ten revisions of a
    file (deltas against each other), the second has a ``.keep`` file."""
    lines = [f"line {i}: {'x' * 40}\n" for i in range(200)]
    for rev in range(10):
        lines[rev * 7 % 200] = f"changed in revision {rev}\n"
        repo.commit(f"rev{rev}", {"big.txt": "".join(lines)})
    repo.git("-c", f"repack.useDeltaBaseOffset={str(ofs_delta).lower()}", "repack", "-d", "-q")
    [deltas] = idx_files(repo)
    verify = repo.git("verify-pack", "-v", str(pack_dir(repo) / deltas))
    assert any(len(line.split()) == 7 for line in verify.splitlines()), "git made deltas"
    repo.commit("kept")
    repo.git("repack", "-d", "-q")
    [kept] = set(idx_files(repo)) - {deltas}
    (pack_dir(repo) / kept.replace(".idx", ".keep")).write_text("")
    return deltas, kept


def all_objects(repo: GitRepo) -> dict[str, tuple[str, bytes]]:
    """Every object of the repository as git reads it: ``{oid: (type, data)}``."""
    listed = repo.git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=repo.path, input=listed.encode(), capture_output=True, check=True).stdout
    objects = {}
    while out:
        header, _, out = out.partition(b"\n")
        oid, kind, size = header.decode().split()
        objects[oid] = (kind, out[: int(size)])
        out = out[int(size) + 1 :]
    return objects


@pytest.mark.parametrize("window", [None, 300], ids=["one-read", "windows"])
@pytest.mark.parametrize("ofs_delta", [True, False], ids=["ofs-delta", "ref-delta"])
def test_a_merge_copies_entries_resolves_deltas_and_keeps_one_copy(repo: GitRepo, tmp_path, monkeypatch, window, ofs_delta) -> None:
    """Prov's packs (with copies of one another's objects and of objects git packed)
    and a pack git made with deltas are merged into one: every object once, whole,
    read by git as before; ``git index-pack`` computes the very index prov wrote. A
    ``.keep`` pack is left as it is. ``windows``: the old packs are read 300 bytes at a
    time (an entry larger than that alone) and the new one written in small pieces."""
    reads: list[int] = []
    if window:
        monkeypatch.setattr(packs, "_MERGE_WINDOW", window)
        monkeypatch.setattr(packs, "_BUFFER_BYTES", 1000)
        pread = os.pread
        monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append(n) or pread(fd, n, at))
    deltas, kept = git_made_packs(repo, ofs_delta)
    kept_bytes = (pack_dir(repo) / kept.replace(".idx", ".pack")).read_bytes()
    git = GitRepository.open(str(repo.path))
    big = repo.git("cat-file", "blob", "HEAD~3:big.txt").encode()
    tips = []
    for i in range(packs.MERGE_AT):
        with git.odb.batch():
            git.odb.write("blob", big)  # also in git's pack (maybe as a delta)
            git.odb.write("blob", os.urandom(1000))  # larger than a window
            tips.append(write_some(git, f"t{i % 4}", n=3)[-1][0])  # every fourth batch repeats one
    for n, tip in enumerate(tips):
        repo.git("update-ref", f"refs/prov/t{n}", tip)
    before = all_objects(repo)
    assert len(idx_files(repo)) == packs.MERGE_AT + 2
    git.odb.maintain()
    if window:
        assert len(reads) > 2 * packs.MERGE_AT and max(reads) < 1100, "a window or one entry at a time"
    merged = (set(idx_files(repo)) - {kept}).pop()
    assert set(idx_files(repo)) == {kept, merged}
    assert (pack_dir(repo) / kept.replace(".idx", ".pack")).read_bytes() == kept_bytes
    verify = repo.git("verify-pack", "-v", str(pack_dir(repo) / merged))
    assert not [line for line in verify.splitlines() if len(line.split()) == 7], "every entry whole"
    merged_pack = pack_dir(repo) / merged.replace(".idx", ".pack")
    fmt = git.fmt.name
    repo.git("index-pack", f"--object-format={fmt}", "-o", str(tmp_path / "git.idx"), str(merged_pack))
    assert (tmp_path / "git.idx").read_bytes() == (pack_dir(repo) / merged).read_bytes()
    listed = [line.split()[0] for line in verify.splitlines() if line.split()[0] in before]
    assert len(listed) == len(set(listed)), "one copy of each object"
    assert all_objects(repo) == before
    fresh = GitRepository.open(str(repo.path))
    for oid, obj in before.items():
        assert fresh.odb.read(oid) == obj
    repo.fsck()


def test_a_merge_that_fails_leaves_the_old_packs(repo: GitRepo, monkeypatch) -> None:
    """The old packs are removed only once the new one is complete: a merge that fails
    while writing the index (a full disk) changes nothing and leaves no temporary file."""
    git = GitRepository.open(str(repo.path))
    written = []
    for i in range(packs.MERGE_AT + 1):
        with git.odb.batch():
            written += write_some(git, f"f{i}", n=2)
    listing = sorted(os.listdir(pack_dir(repo)))

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(packs, "_encode_idx", full_disk)
    git.odb.maintain()
    assert sorted(os.listdir(pack_dir(repo))) == listing
    for oid, kind, data in written:
        assert GitRepository.open(str(repo.path)).odb.read(oid) == (kind, data)
