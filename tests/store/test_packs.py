"""Packs prov writes (one per transaction): the real git binary reads every object,
``git fsck --strict``, ``git verify-pack`` and ``git index-pack`` accept them, in SHA-1
and SHA-256 repositories. What happens when they pile up: ``test_maintenance.py``."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitprov.errors import UsageError
from gitprov.store import packs
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
    back gives every offset."""
    fmt = GitRepository.memory().fmt
    ids = [bytes([i * 37 % 256]) * fmt.raw_len for i in range(6)]
    offsets = [12, 3 << 30, 5000, (1 << 31) - 1, 1 << 31, 9 << 32]
    crcs = [i * 1_000_003 for i in range(6)]
    (tmp_path / "p.idx").write_bytes(packs._encode_idx(fmt, ids, crcs, offsets, b"\x00" * fmt.raw_len))
    index = Pack(str(tmp_path / "p.idx"), fmt)
    assert [index.offset_of(raw.hex()) for raw in ids] == offsets


def test_memory_twin_batches_are_plain_writes() -> None:
    db = MemoryObjectDatabase(GitRepository.memory().fmt)
    with db.batch():
        oid = db.write("blob", b"x")
        db.flush()
    assert db.read(oid) == ("blob", b"x")


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


def test_a_read_survives_packs_vanishing_under_it_more_than_once(repo: GitRepo, monkeypatch) -> None:
    """Repacks one after another (git's geometric roll-ups) can delete a pack a reader
    just listed, and the pack it rescanned to: every read rescans again until it finds
    the object, as git does."""
    git = GitRepository.open(str(repo.path))
    with git.odb.batch():
        written = write_some(git, "gone")
    repo.git("update-ref", "refs/prov/test", written[-1][0])
    directory = git.odb.pack_directory
    stale = directory.listing()  # lists the pack about to be repacked away
    repo.git("repack", "-a", "-d", "-q")  # its objects now live in another pack only
    real = directory.listing
    rescans = []

    def late_rescan(**options):  # the first rescans still see the vanished pack
        rescans.append(1)
        return stale if len(rescans) < 3 else real(**options)

    monkeypatch.setattr(directory, "listing", late_rescan)
    directory.packs = stale
    for oid, kind, data in written:
        assert git.odb.read(oid) == (kind, data)
    assert len(rescans) >= 3


def test_a_read_skips_a_pack_whose_data_is_gone_but_index_remains(repo: GitRepo) -> None:
    """git's repack removes an old pack's ``.pack`` before its ``.idx``: a reader that
    rescans in between still lists the index, and must look past it to the new pack
    rather than fail on the same missing file at every rescan."""
    git = GitRepository.open(str(repo.path))
    with git.odb.batch():
        written = write_some(git, "half")
    repo.git("update-ref", "refs/prov/test", written[-1][0])
    stale = git.odb.pack_directory.rescan()
    old_idx = {p.pack_path[:-5] + ".idx": Path(p.pack_path[:-5] + ".idx").read_bytes() for p in stale}
    repo.git("repack", "-a", "-d", "-q")
    for path, data in old_idx.items():  # the moment between git's two unlinks
        with open(path, "wb") as f:
            f.write(data)
        assert not os.path.exists(path[:-4] + ".pack")
    for oid, kind, data in written:
        assert git.odb.read(oid) == (kind, data)


def test_positions_ask_each_pack_only_for_the_ids_not_found_yet(repo: GitRepo, monkeypatch) -> None:
    """The largest pack first; a smaller one is asked only for the ids the larger did not
    hold (a cold build's record ids were looked up in every pack), and each id still gets
    the pack and offset it lies at."""
    git = GitRepository.open(str(repo.path))
    with git.odb.batch():
        big = write_some(git, "big", 20)
    with git.odb.batch():
        small = write_some(git, "small", 3)
    raws = [bytes.fromhex(oid) for oid, _, _ in small[:2] + big[:5]] + [bytes(20)]
    asked: dict[str, int] = {}
    real = Pack.offsets_of

    def offsets_of(pack, wanted):
        asked[pack.pack_path] = len(wanted)
        return real(pack, wanted)

    monkeypatch.setattr(Pack, "offsets_of", offsets_of)
    packs, where = git.odb.pack_directory.positions(raws)
    by_size = sorted(packs, key=lambda p: -p.count)
    assert len(packs) == 2 and asked == {by_size[0].pack_path: 8, by_size[1].pack_path: 3}  # 5 found in the big one
    assert where[-1] == -1
    for raw, at in zip(raws[:-1], where[:-1], strict=True):
        pack = packs[at >> 48]
        assert pack.offset_of(raw.hex()) == at & ((1 << 48) - 1)
