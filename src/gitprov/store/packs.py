"""Writing pack files: one pack per write transaction, and merging small packs.

A loose object costs a file of its own (open, write, close, rename: ~0.2-0.5 ms and a
4 KiB block each). A ledger transaction writes ~30 small objects, so it writes them as
one pack instead: ``pack-<checksum>.pack`` (version 2, every object whole, zlib level
1) and its ``.idx`` (version 2), each written to a temporary file and renamed, the
``.idx`` last, exactly what git expects of a pack another process may be reading.
Readers find a pack by its ``.idx``: until that rename the objects do not exist.

Packs pile up at one per transaction, and each costs a reader a lookup, so once a
repository holds more than ``MERGE_AT`` small packs, the small ones are merged into one
(geometrically: a pack is left alone when it holds at least twice the objects of all
smaller packs together, so each object is rewritten O(log n) times). Packs git made
for itself (``.keep``, ``.promisor``, cruft ``.mtimes``) and large packs are never
touched; ``git gc`` / ``git repack`` treat prov's packs like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import time
import zlib
from collections.abc import Iterable

from .objects import ObjectFormat

__all__ = ["MERGE_AT", "SMALL_PACK_OBJECTS", "MergeLock", "deflate", "encode_pack", "mergeable_packs", "pack_entry", "write_pack"]

_TYPE_NUMBERS = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
#: more packs than this in ``objects/pack`` triggers a merge of the small ones
MERGE_AT = 12
#: packs with more objects or bytes than this are never merged by prov (git's business)
SMALL_PACK_OBJECTS = 1_000_000
SMALL_PACK_BYTES = 256 << 20
_MERGE_LOCK = "prov-merge.lock"
_STALE_LOCK_SECONDS = 600


def _entry_header(type_num: int, size: int) -> bytes:
    """The pack entry header: type and size, little-endian base-128."""
    out = bytearray()
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def deflate(data: bytes, level: int = 1) -> bytes:
    """zlib at ``level`` (1, as git's loose objects). A small object gets a window and
    hash table sized to it (about the same output), where ``zlib.compress`` sets up 256
    KiB of state each call, 10-20x the work of compressing a few hundred bytes."""
    if len(data) > 16384:
        return zlib.compress(data, level)
    z = zlib.compressobj(level, zlib.DEFLATED, max(9, len(data).bit_length()), 4)
    return z.compress(data) + z.flush()


def pack_entry(type_name: str, data: bytes) -> bytes:
    """An object as a pack entry: whole (no delta), deflated. Trees are stored at zlib
    level 0: mostly binary object ids, level 1 saves under a fifth of their size for
    20-40x the CPU, and a transaction rewrites every tree from the run to the root
    (``git gc`` deltifies and recompresses them)."""
    return _entry_header(_TYPE_NUMBERS[type_name], len(data)) + deflate(data, 0 if type_name == "tree" else 1)


def encode_pack(fmt: ObjectFormat, entries_in: Iterable[tuple[str, bytes]]) -> tuple[bytes, bytes, str]:
    """``(pack bytes, idx bytes, pack checksum hex)`` for ``(oid, pack entry)`` pairs, in
    memory (``write_pack`` streams the same bytes to a file)."""
    entries_in = list(entries_in)
    pack = bytearray(_pack_header(len(entries_in)))
    entries: list[tuple[bytes, int, int]] = []
    for oid, body in entries_in:
        entries.append((bytes.fromhex(oid), zlib.crc32(body), len(pack)))
        pack += body
    checksum = hashlib.new(fmt.name, pack).digest()
    return bytes(pack) + checksum, _encode_idx(fmt, entries, checksum), checksum.hex()


def _pack_header(count: int) -> bytes:
    return b"PACK" + struct.pack(">II", 2, count)


def _encode_idx(fmt: ObjectFormat, entries: list[tuple[bytes, int, int]], checksum: bytes) -> bytes:
    """A version-2 ``.idx`` for ``(raw id, crc32, offset)`` entries (sorted here)."""
    entries.sort()
    fanout = [0] * 256
    for raw, _, _ in entries:
        fanout[raw[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    small: list[int] = []
    large: list[int] = []
    for _, _, off in entries:
        if off < 0x80000000:
            small.append(off)
        else:
            small.append(0x80000000 | len(large))
            large.append(off)
    idx = b"".join([
        b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *fanout),
        b"".join(raw for raw, _, _ in entries),
        struct.pack(f">{len(entries)}I", *(crc for _, crc, _ in entries)),
        struct.pack(f">{len(small)}I", *small),
        struct.pack(f">{len(large)}Q", *large),
        checksum,
    ])
    return idx + hashlib.new(fmt.name, idx).digest()


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_pack(pack_dir: str, fmt: ObjectFormat, objects: Iterable[tuple[str, bytes]], count: int | None = None) -> str:
    """Write a pack of ``(oid, pack entry)`` and its index into ``pack_dir``; returns
    the ``.idx`` path. ``count`` (the number of objects) is needed when ``objects`` is
    an iterator: entries are streamed to the file, so a merge of large packs holds one
    entry in memory at a time, not the pack.

    Both files are written under temporary names and renamed, the pack first, the index
    last: a reader (git or prov) that sees the index sees a complete pack.
    """
    if count is None:
        objects = list(objects)  # type: ignore[assignment]
        count = len(objects)  # type: ignore[arg-type]
    os.makedirs(pack_dir, exist_ok=True)
    stamp = f"{os.getpid()}_{time.monotonic_ns()}"
    tmp_pack = os.path.join(pack_dir, f"tmp_pack_prov_{stamp}")
    tmp_idx = os.path.join(pack_dir, f"tmp_idx_prov_{stamp}")
    try:
        fd = os.open(tmp_pack, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            digest = hashlib.new(fmt.name)
            buf = bytearray(_pack_header(count))
            offset = 0
            entries: list[tuple[bytes, int, int]] = []
            for oid, body in objects:
                entries.append((bytes.fromhex(oid), zlib.crc32(body), offset + len(buf)))
                buf += body
                if len(buf) >= 1 << 20:
                    digest.update(buf)
                    _write_all(fd, buf)
                    offset += len(buf)
                    buf = bytearray()
            if len(entries) != count:
                raise ValueError(f"pack of {count} objects given {len(entries)}")
            digest.update(buf)
            checksum = digest.digest()
            _write_all(fd, bytes(buf) + checksum)
        finally:
            os.close(fd)
        base = os.path.join(pack_dir, f"pack-{checksum.hex()}")
        if os.path.exists(base + ".idx"):  # the same objects in the same order: already there
            os.remove(tmp_pack)
            return base + ".idx"
        fd = os.open(tmp_idx, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            _write_all(fd, _encode_idx(fmt, entries, checksum))
        finally:
            os.close(fd)
        os.replace(tmp_pack, base + ".pack")
        os.replace(tmp_idx, base + ".idx")
    except BaseException:
        for tmp in (tmp_pack, tmp_idx):
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise
    return base + ".idx"


def mergeable_packs(pack_dir: str, counts: dict[str, int]) -> list[str]:
    """The ``.idx`` paths to merge into one, given ``{idx path: object count}`` of the
    packs in ``pack_dir``; empty when there are few enough packs.

    Only small packs without ``.keep``, ``.promisor`` or ``.mtimes`` companions are
    candidates. Largest first, a pack is kept as it is while it holds at least twice
    the objects of all smaller candidates together; the rest are merged.
    """
    if len(counts) <= MERGE_AT:
        return []
    try:
        names = set(os.listdir(pack_dir))
    except OSError:
        names = set()
    candidates = []
    for idx_path, count in counts.items():
        stem = os.path.basename(idx_path)[:-4]
        if count > SMALL_PACK_OBJECTS or any(stem + ext in names for ext in (".keep", ".promisor", ".mtimes")):
            continue
        with contextlib.suppress(OSError):  # (a pack that vanished fails the merge later)
            if os.path.getsize(idx_path[:-4] + ".pack") > SMALL_PACK_BYTES:
                continue
        candidates.append((count, idx_path))
    candidates.sort(reverse=True)
    rest = sum(count for count, _ in candidates)
    while candidates:
        count, _ = candidates[0]
        rest -= count
        if count < 2 * rest:
            break
        candidates.pop(0)
    return [path for _, path in candidates] if len(candidates) > 1 else []


class MergeLock:
    """``objects/pack/prov-merge.lock``, taken with O_EXCL: one merger at a time. A
    lock older than ten minutes is left by a dead process and taken over."""

    def __init__(self, pack_dir: str) -> None:
        self.path = os.path.join(pack_dir, _MERGE_LOCK)
        self.held = False

    def __enter__(self) -> MergeLock:
        for _ in range(2):
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                self.held = True
                break
            except FileExistsError:
                try:
                    stale = time.time() - os.stat(self.path).st_mtime > _STALE_LOCK_SECONDS
                except FileNotFoundError:
                    continue
                if not stale:
                    break
                with contextlib.suppress(OSError):
                    os.remove(self.path)
            except OSError:
                break
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                os.remove(self.path)
            self.held = False
