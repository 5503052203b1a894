"""Reading a pack as it streams in (``store/packstream.py``): on packs git itself makes,
every blob it gives is one git holds, with git's content, deltas resolved; on damaged
or hostile bytes it ends with ``PackStreamError`` (never another error, never a hang,
never more memory than its bounds), and what it gave before is still right."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from gitprov.store import packstream
from gitprov.store.packstream import PackStreamError, scan_blobs
from tests.conftest import run_git


@pytest.fixture(autouse=True, params=["native", "python"])
def deltas_applied(request, monkeypatch) -> str:
    """Every test twice: deltas applied by dulwich's compiled code (when it is there, as
    in a pull) and by the Python loop (where it is not)."""
    if request.param == "python":
        monkeypatch.setattr(packstream, "native_apply_delta", lambda: None)
    else:
        assert packstream.native_apply_delta() is not None
    return request.param


def _pack(tmp_path: Path, object_format: str = "sha1", blobs: int = 60) -> tuple[bytes, dict[str, bytes]]:
    """A pack git makes of a repository holding similar JSON blobs (deltas), a big
    incompressible blob and trees; and every blob's content as git reads it."""
    repo = tmp_path / f"src-{object_format}"
    run_git(tmp_path, "init", "-q", f"--object-format={object_format}", str(repo))
    rng = random.Random(3)
    shared = {f"p{j}": rng.random() for j in range(60)}
    for i in range(blobs):
        body = {"kind": "run-state", "name": f"run-{i:04d}", "params": {**shared, "lr": rng.random()}}
        (repo / f"f{i:03d}.json").write_text(repr(body))
    (repo / "big.bin").write_bytes(rng.randbytes(300_000))
    run_git(repo, "add", "-A")
    run_git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs", "--delta-base-offset", "--window=50"],
                          cwd=repo, input=b"HEAD\n", capture_output=True, check=True).stdout
    listing = run_git(repo, "ls-tree", "-r", "HEAD").split("\n")
    oids = [line.split()[2] for line in listing if line]
    contents = {oid: subprocess.run(["git", "cat-file", "blob", oid], cwd=repo, capture_output=True,
                                    check=True).stdout for oid in oids}
    return pack, contents


def _scan(data: bytes, **kw) -> list[tuple[str, bytes]]:
    return [(oid.hex(), content) for oid, content in scan_blobs(io.BytesIO(data).read, **kw)]


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_every_blob_of_a_git_pack_is_read_with_its_id(tmp_path: Path, object_format: str) -> None:
    pack, contents = _pack(tmp_path, object_format)
    got = dict(_scan(pack, hash_name=object_format))
    assert {k: v for k, v in contents.items() if len(v) <= 1 << 20} == got
    assert any(b"run-state" in v for v in got.values())
    # the pack has blob deltas (git's own listing says): they were resolved, not skipped
    (tmp_path / "p.pack").write_bytes(pack)
    subprocess.run(["git", "index-pack", f"--object-format={object_format}", str(tmp_path / "p.pack")],
                   cwd=tmp_path, capture_output=True, check=True)
    listing = subprocess.run(["git", "verify-pack", f"--object-format={object_format}", "-v", str(tmp_path / "p.idx")],
                             cwd=tmp_path, capture_output=True, check=True, text=True).stdout
    assert sum(1 for line in listing.splitlines() if " blob " in line and len(line.split()) >= 7) >= 10


def test_bounds_leave_blobs_out_never_wrong(tmp_path: Path) -> None:
    pack, contents = _pack(tmp_path)
    small = _scan(pack, max_size=5000, cache_bytes=3000)  # a cache of about one blob
    assert small and len(small) < len(contents)
    for oid, content in small:
        assert contents[oid] == content and len(content) <= 5000
    # the big blob (over max_size) was inflated in pieces and dropped
    assert max(len(v) for v in contents.values()) > 5000


def _reads_only_truth(data: bytes, contents: dict[str, bytes]) -> None:
    try:
        for oid, content in _scan(data):
            assert hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() == oid
    except PackStreamError:
        pass


def test_a_truncated_pack_ends_in_one_error(tmp_path: Path) -> None:
    pack, contents = _pack(tmp_path, blobs=20)
    for cut in [0, 3, 11, 12, 13, 40, len(pack) // 3, len(pack) // 2, len(pack) - 21]:
        with pytest.raises(PackStreamError):
            for oid, content in _scan(pack[:cut]):
                assert contents[oid] == content


def test_damaged_bytes_end_in_one_error_or_give_only_true_blobs(tmp_path: Path) -> None:
    pack, contents = _pack(tmp_path, blobs=20)
    rng = random.Random(7)
    for _ in range(150):
        damaged = bytearray(pack)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(12, len(pack))] ^= 1 << rng.randrange(8)
        _reads_only_truth(bytes(damaged), contents)


def _entry(kind: int, size: int, extra: bytes, payload: bytes) -> bytes:
    head = bytearray([(kind << 4) | (size & 15) | (0x80 if size > 15 else 0)])
    size >>= 4
    while size:
        head.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
    return bytes(head) + extra + zlib.compress(payload)


def _header(count: int) -> bytes:
    return b"PACK" + struct.pack(">II", 2, count)


def test_hostile_entries_are_refused() -> None:
    base = b"x" * 100
    whole = _entry(3, len(base), b"", base)
    # a delta that copies 64 KiB a thousand times while it declares 100 bytes
    bomb = bytes([100, 100]) + bytes([0x80]) * 1000
    cases = {
        "not a pack": b"JUNK" + b"\0" * 8,
        "unknown type": _header(1) + _entry(5, 3, b"", b"abc"),
        "a larger object than its header": _header(1) + _entry(3, 10, b"", b"y" * 5000),
        "a smaller object than its header": _header(1) + _entry(3, 5000, b"", b"y" * 10),
        "a base before the pack": _header(1) + _entry(6, 3, bytes([0x7F]), b"abc"),
        "a copy bomb": _header(2) + whole + _entry(6, len(bomb), bytes([len(whole)]), bomb),
        "a copy past the base": _header(2) + whole + _entry(6, 5, bytes([len(whole)]),
                                                           bytes([100, 10, 0x91, 200, 10])),
        "a huge size": _header(1) + bytes([0xBF] + [0xFF] * 12),
    }
    for name, data in cases.items():
        with pytest.raises(PackStreamError):
            _scan(data)
        assert name


def test_a_delta_over_the_size_bound_is_left_out_unbuilt() -> None:
    base = b"x" * 100
    whole = _entry(3, len(base), b"", base)
    # declares 10 MB made of copies of the base: over max_size, never built
    delta = bytes([100]) + bytes([0x80, 0x80, 0x05]) + bytes([0x90, 100]) * 10
    data = _header(2) + whole + _entry(6, len(delta), bytes([len(whole)]), delta)
    assert [c for _, c in _scan(data, max_size=1000)] == [base]


def test_ref_deltas_and_other_types_are_passed_over() -> None:
    base = b"y" * 50
    commit = b"tree " + b"0" * 40 + b"\n\nmsg\n"
    data = (_header(3) + _entry(1, len(commit), b"", commit) + _entry(7, 4, b"\0" * 20, b"abcd")
            + _entry(3, len(base), b"", base))
    assert _scan(data) == [(hashlib.sha1(b"blob 50\0" + base).hexdigest(), base)]


def test_hostile_inserts_are_refused() -> None:
    """Inserts are applied before the size is checked (it is checked once, at the end):
    a delta whose inserts run past its end, or make more or less than it declares, is
    refused, and a blob built by inserts and copies is right."""
    base = b"0123456789" * 10
    whole = _entry(3, len(base), b"", base)

    def delta_entry(delta: bytes) -> bytes:
        return _header(2) + whole + _entry(6, len(delta), bytes([len(whole)]), delta)

    made = b"ab" + base[10:20] + b"z" * 100
    good = bytes([100, len(made), 2]) + b"ab" + bytes([0x91, 10, 10]) + bytes([100]) + b"z" * 100
    assert [c for _, c in _scan(delta_entry(good))] == [base, made]
    cases = {
        "an insert past the delta's end": bytes([100, 50, 50]) + b"a" * 10,
        "inserts making more than declared": bytes([100, 5, 10]) + b"a" * 10,
        "inserts making less than declared": bytes([100, 50, 10]) + b"a" * 10,
        "an insert then a copy making more": bytes([100, 12, 10]) + b"a" * 10 + bytes([0x90, 5]),
        "a zero instruction": bytes([100, 1, 0, 1]) + b"a",
    }
    for name, delta in cases.items():
        with pytest.raises(PackStreamError):
            _scan(delta_entry(delta))
        assert name


def test_an_entry_passed_over_is_held_to_its_size() -> None:
    """A tree (inflated only to find the next entry, in one call when small) whose data
    is longer or shorter than its header says ends the reading; it is never a blob."""
    tree = b"100644 f\0" + b"\1" * 20
    blob = b"after"
    after = _entry(3, len(blob), b"", blob)
    assert _scan(_header(2) + _entry(2, len(tree), b"", tree) + after) == [
        (hashlib.sha1(b"blob 5\0" + blob).hexdigest(), blob)]
    for size in (len(tree) - 1, len(tree) + 1, 0):
        with pytest.raises(PackStreamError):
            _scan(_header(2) + _entry(2, size, b"", tree) + after)
