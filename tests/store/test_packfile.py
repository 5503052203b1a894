"""The pack reader (store/packfile.py) on packs the real git wrote: every object of a
``git repack -adf`` pack, with chains of ``OFS_DELTA`` or ``REF_DELTA`` entries, reads
back as ``git cat-file`` gives it; and the delta decoder on hand-made deltas."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitprov.errors import DataError, MissingObjectError
from gitprov.store import packfile
from gitprov.store.packfile import Pack, apply_delta
from gitprov.store.repo import GitRepository
from tests.conftest import GitRepo
from tests.store.test_packs import all_objects, idx_files, pack_dir

_OFS_DELTA, _REF_DELTA = 6, 7


def repacked(repo: GitRepo, ofs_delta: bool) -> Pack:
    """The one pack ``git repack -adf`` makes of 30 revisions of a file (long delta
    chains: each revision changes a few lines of the last)."""
    lines = [f"line {i}: {'y' * 50}\n" for i in range(300)]
    for rev in range(30):
        lines[rev * 11 % 300] = f"revision {rev} changed this line\n"
        repo.commit(f"rev{rev}", {"big.txt": "".join(lines), "small.txt": f"{rev}\n"})
    repo.git("-c", f"repack.useDeltaBaseOffset={str(ofs_delta).lower()}",
             "repack", "-a", "-d", "-f", "-q", "--depth=50", "--window=250")
    [idx] = idx_files(repo)
    return Pack(str(pack_dir(repo) / idx), GitRepository.open(str(repo.path)).fmt)


def verify_pack(repo: GitRepo, pack: Pack) -> dict[str, tuple[int, int]]:
    """``{oid: (offset, delta chain depth)}`` as ``git verify-pack -v`` lists them."""
    listed = {}
    for line in repo.git("verify-pack", "-v", pack.pack_path[:-5] + ".idx").splitlines():
        fields = line.split()
        if len(fields) in (5, 7) and len(fields[0]) == pack.fmt.hex_len:
            listed[fields[0]] = (int(fields[4]), int(fields[5]) if len(fields) == 7 else 0)
    return listed


@pytest.mark.gitbin
@pytest.mark.parametrize("ofs_delta", [True, False], ids=["ofs-delta", "ref-delta"])
def test_every_object_of_a_pack_git_made_reads_as_git_reads_it(repo: GitRepo, ofs_delta: bool) -> None:
    pack = repacked(repo, ofs_delta)
    expected = all_objects(repo)
    listed = verify_pack(repo, pack)
    assert set(listed) == set(expected) and pack.count == len(expected)
    assert max(depth for _, depth in listed.values()) >= 3, "git made delta chains"
    kinds = {(pack.pack[offset] >> 4) & 7 for offset, _ in listed.values()}
    assert (_OFS_DELTA in kinds, _REF_DELTA in kinds) == (ofs_delta, not ofs_delta)

    bases: list[str] = []

    def read_base(oid: str) -> tuple[str, bytes]:
        bases.append(oid)
        offset = pack.offset_of(oid)
        assert offset is not None
        return pack.read_at(offset, read_base)

    for oid, obj in expected.items():
        assert pack.offset_of(oid) == listed[oid][0]
        assert pack.read_at(listed[oid][0], read_base) == obj
    assert bool(bases) == (not ofs_delta), "REF_DELTA bases come from the caller, OFS_DELTA bases from the pack"


@pytest.fixture(params=["native", "python"])
def bulk_applier(request, monkeypatch):
    """What applies deltas in bulk reads (``Pack.read_kept``): dulwich's compiled code,
    then ``apply_delta`` as where dulwich has none."""
    monkeypatch.setattr(packfile, "_bulk", None)
    if request.param == "python":
        monkeypatch.setattr(packfile, "native_apply_delta", lambda: None)
    applier = packfile._bulk_applier()
    assert (applier is apply_delta) == (request.param == "python")
    return applier


@pytest.mark.gitbin
@pytest.mark.parametrize("ofs_delta", [True, False], ids=["ofs-delta", "ref-delta"])
def test_many_blobs_read_at_once_read_as_git_reads_them(repo: GitRepo, monkeypatch, ofs_delta: bool,
                                                        bulk_applier) -> None:
    pack = repacked(repo, ofs_delta)
    expected = {oid: data for oid, (kind, data) in all_objects(repo).items() if kind == "blob"}
    odb = GitRepository.open(str(repo.path)).odb
    in_pack_order = sorted(expected, key=lambda oid: verify_pack(repo, pack)[oid][0])
    monkeypatch.setattr(packfile, "BASE_CACHE_BYTES", 4096)  # bases dropped as they are read
    for order in (in_pack_order, in_pack_order[::-1], sorted(expected)):
        packfile._BASES.clear()
        packfile._base_bytes = 0
        assert list(odb.read_blobs([bytes.fromhex(oid) for oid in order])) == [expected[oid] for oid in order]
        assert sum(len(data) for _, data in packfile._BASES.values()) == packfile._base_bytes <= 4096
        pack.drop_pages()  # read again from the system's cache when needed
    loose = repo.git("hash-object", "-w", "--stdin", input="a loose blob\n").strip()
    some = in_pack_order[:3]
    assert list(odb.read_blobs([bytes.fromhex(oid) for oid in [*some, loose]])) == \
        [*(expected[oid] for oid in some), b"a loose blob\n"]
    tree = repo.git("rev-parse", "HEAD^{tree}").strip()
    with pytest.raises(DataError, match=f"{tree} is a tree, expected a blob"):
        list(odb.read_blobs([bytes.fromhex(tree)]))
    with pytest.raises(MissingObjectError):
        list(odb.read_blobs([bytes.fromhex(some[0]), bytes(len(bytes.fromhex(some[0])))]))


@pytest.mark.gitbin
def test_the_index_lists_what_git_lists(repo: GitRepo) -> None:
    pack = repacked(repo, ofs_delta=True)
    listed = verify_pack(repo, pack)
    assert pack.ids() == sorted(bytes.fromhex(oid) for oid in listed)
    assert {oid: pack.offset_of(oid) for oid in listed} == {oid: offset for oid, (offset, _) in listed.items()}
    some = next(iter(listed))
    for prefix in (some[:1], some[:4], some):
        assert pack.ids_with_prefix(prefix) == {oid for oid in listed if oid.startswith(prefix)}
    assert pack.offset_of("0" * pack.fmt.hex_len) is None


@pytest.mark.gitbin
@pytest.mark.parametrize("few", [0, 10**9], ids=["bucket-read-once", "search-each"])
def test_many_offsets_at_once_are_the_offsets_one_by_one(repo: GitRepo, monkeypatch, few: int) -> None:
    pack = repacked(repo, ofs_delta=True)
    listed = sorted(verify_pack(repo, pack))
    monkeypatch.setattr(Pack, "FEW", few)
    near = bytes.fromhex(listed[0])
    absent = [bytes(len(near)), b"\xff" * len(near), near[:-1] + bytes([near[-1] ^ 0xFF])]  # one in a bucket in use
    wanted = sorted({*(bytes.fromhex(oid) for oid in listed[::3]), *absent})
    assert list(pack.offsets_of(wanted)) == [-1 if (at := pack.offset_of(raw.hex())) is None else at for raw in wanted]
    assert -1 in pack.offsets_of(wanted)


@pytest.mark.gitbin
def test_an_index_of_version_1_is_refused(repo: GitRepo, tmp_path) -> None:
    pack = repacked(repo, ofs_delta=True)
    repo.git("index-pack", "--index-version=1", "-o", str(tmp_path / "v1.idx"), pack.pack_path)
    with pytest.raises(DataError, match="only version 2"):
        Pack(str(tmp_path / "v1.idx"), pack.fmt)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def encode_delta(base: bytes, ops: list[tuple[int, int] | bytes]) -> tuple[bytes, bytes]:
    """``(delta, expected result)`` for ``ops``: ``(offset, size)`` copies from
    ``base``, bytes are inserted; offsets and sizes use only their nonzero bytes, as
    git encodes them, and a size of 0x10000 is written as none."""
    body, result = bytearray(), bytearray()
    for op in ops:
        if isinstance(op, bytes):
            body += bytes([len(op)]) + op
            result += op
            continue
        offset, size = op
        result += base[offset : offset + size]
        cmd, args = 0x80, bytearray()
        for i in range(4):
            if (offset >> 8 * i) & 0xFF:
                cmd |= 1 << i
                args.append((offset >> 8 * i) & 0xFF)
        for i in range(3):
            if ((0 if size == 0x10000 else size) >> 8 * i) & 0xFF:
                cmd |= 0x10 << i
                args.append((size >> 8 * i) & 0xFF)
        body += bytes([cmd]) + args
    return varint(len(base)) + varint(len(result)) + bytes(body), bytes(result)


@st.composite
def deltas(draw) -> tuple[bytes, bytes, bytes]:
    base = draw(st.binary(min_size=1, max_size=600))
    ops: list[tuple[int, int] | bytes] = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            ops.append(draw(st.binary(min_size=1, max_size=127)))
        else:
            offset = draw(st.integers(0, len(base) - 1))
            ops.append((offset, draw(st.integers(1, len(base) - offset))))
    delta, result = encode_delta(base, ops)
    return base, delta, result


@settings(max_examples=200, deadline=None)
@given(deltas())
def test_a_delta_applies_its_copies_and_inserts(case: tuple[bytes, bytes, bytes]) -> None:
    base, delta, result = case
    assert apply_delta(base, delta) == result


def test_long_offsets_and_the_implicit_size_of_a_copy() -> None:
    base = bytes(range(256)) * 600  # 153,600 bytes
    ops: list[tuple[int, int] | bytes] = [(0x010003, 0x10000), (0x20000, 0x100), b"x", (0, 1)]
    delta, result = encode_delta(base, ops)
    assert apply_delta(base, delta) == result
    assert len(result) == 0x10000 + 0x100 + 2


@settings(max_examples=200, deadline=None)
@given(deltas())
def test_the_bulk_applier_applies_a_delta_as_apply_delta_does(case: tuple[bytes, bytes, bytes]) -> None:
    base, delta, result = case
    packfile._bulk = None
    assert packfile._bulk_applier() is not apply_delta, "dulwich's compiled code is there (a required dependency)"
    assert packfile._bulk_applier()(base, delta) == result


@pytest.mark.parametrize("applier", ["apply_delta", "bulk"])
def test_a_malformed_delta_is_a_data_error(applier: str, monkeypatch) -> None:
    monkeypatch.setattr(packfile, "_bulk", None)
    apply = apply_delta if applier == "apply_delta" else packfile._bulk_applier()
    base = b"0123456789"
    delta, _ = encode_delta(base, [(2, 3)])
    with pytest.raises(DataError, match="base has the wrong size"):
        apply(base + b"!", delta)
    with pytest.raises(DataError, match="invalid delta"):
        apply(base, delta[:2] + b"\x00")
    with pytest.raises(DataError, match="result has the wrong size|invalid delta"):
        apply(base, delta[:1] + varint(4) + delta[2:])
    with pytest.raises(DataError, match="invalid delta|result has the wrong size"):  # a copy past the base's end
        apply(base, varint(10) + varint(20) + bytes([0x90, 20]))
    with pytest.raises((DataError, IndexError)):  # a truncated header: Pack.read_at says DataError
        apply(base, b"\x8a")
