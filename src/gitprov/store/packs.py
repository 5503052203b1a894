"""Writing pack files: one pack per write transaction, and merging small packs.

A loose object costs a file of its own (open, write, close, rename: ~0.2-0.5 ms and a
4 KiB block each). A ledger transaction writes ~30 small objects, so it writes them as
one pack instead: ``pack-<checksum>.pack`` (version 2, every object whole, zlib level
1) and its ``.idx`` (version 2), each written to a temporary file, flushed when
``core.fsync`` says so (``store/durability.py``: a transaction's pack stands in for
git's loose objects, a merged pack is a ``pack``) and renamed, the ``.idx`` last,
exactly what git expects of a pack another process may be reading. Readers find a pack
by its ``.idx``: until that rename the objects do not exist.

Packs pile up at one per transaction, and each costs a reader a lookup, so once a
repository holds more than ``MERGE_AT`` small packs, the small ones are merged into one
(geometrically: a pack is left alone when it holds at least twice the objects of all
smaller packs together, so each object is rewritten O(log n) times). A merge keeps one
copy of each object and copies whole entries as they are, each run of them in one
piece with the crc32 the old index lists (no inflate, no deflate, nothing per entry
but bookkeeping); deltas (in packs git wrote) are resolved and stored whole. The new
pack is complete before any old one is removed. Packs git made for itself
(``.keep``, ``.promisor``, cruft ``.mtimes``) and large packs are never touched;
``git gc`` / ``git repack`` treat prov's packs like any other. Reading packs is
``store/packfile.py``.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import accumulate

from ..errors import DataError
from .durability import PACK, PACK_METADATA, Durability
from .objects import ObjectFormat
from .packfile import Pack

__all__ = [
    "MERGE_AT",
    "SMALL_PACK_OBJECTS",
    "MergeLock",
    "PackWriter",
    "copy_objects",
    "deflate",
    "encode_pack",
    "merge_small_packs",
    "mergeable_packs",
    "pack_entry",
    "stored",
    "write_pack",
]

_TYPE_NUMBERS = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
_WHOLE_TYPES = frozenset(_TYPE_NUMBERS.values())  # the other types are deltas
#: more packs than this in ``objects/pack`` triggers a merge of the small ones
MERGE_AT = 12
#: packs with more objects or bytes than this are never merged by prov (git's business)
SMALL_PACK_OBJECTS = 1_000_000
SMALL_PACK_BYTES = 256 << 20
_BUFFER_BYTES = 1 << 20  # a pack is written to its file a MiB at a time
_MERGE_WINDOW = 8 << 20  # a merge reads an old pack this many bytes at a time
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
    KiB of state each call, 10-20x the work of compressing a few hundred bytes. Level 0
    is ``stored``."""
    if level == 0:
        return stored(data)
    if len(data) > 16384:
        return zlib.compress(data, level)
    z = zlib.compressobj(level, zlib.DEFLATED, max(9, len(data).bit_length()), 4)
    return z.compress(data) + z.flush()


def stored(data: bytes) -> bytes:
    """``data`` as a zlib stream of stored (uncompressed) blocks, what level 0 makes,
    built by hand: a 2-byte header, blocks of up to 65,535 bytes each led by its final
    flag and its length (and the length's complement), then the Adler-32 of ``data``.
    Setting up zlib's state costs more than this copy."""
    size = len(data)
    parts = [b"\x78\x01"]
    for at in range(0, max(size, 1), 0xFFFF):
        block = data[at : at + 0xFFFF]
        parts.append(struct.pack("<BHH", at + 0xFFFF >= size, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(parts)


def pack_entry(type_name: str, data: bytes) -> bytes:
    """An object as a pack entry: whole (no delta), deflated. Trees are stored at zlib
    level 0: mostly binary object ids, level 1 saves under a fifth of their size for
    20-40x the CPU, and a transaction rewrites every tree from the run to the root
    (``git gc`` deltifies and recompresses them)."""
    return _entry_header(_TYPE_NUMBERS[type_name], len(data)) + deflate(data, 0 if type_name == "tree" else 1)


def encode_pack(fmt: ObjectFormat, entries_in: Iterable[tuple[str, bytes]]) -> tuple[bytes, bytes, str]:
    """``(pack bytes, idx bytes, pack checksum hex)`` for ``(oid, pack entry)`` pairs, in
    memory (``write_pack`` writes the same bytes to files)."""
    ids, bodies = _split_objects(entries_in)
    pack = _pack_header(len(bodies)) + b"".join(bodies)
    checksum = hashlib.new(fmt.name, pack).digest()
    offsets = [12 + off for off in _starts(bodies)]
    return pack + checksum, _encode_idx(fmt, ids, list(map(zlib.crc32, bodies)), offsets, checksum), checksum.hex()


def _split_objects(objects: Iterable[tuple[str, bytes]]) -> tuple[list[bytes], list[bytes]]:
    """``(raw ids, pack entries)`` of ``(oid, pack entry)`` pairs."""
    ids, bodies = [], []
    for oid, body in objects:
        ids.append(bytes.fromhex(oid))
        bodies.append(body)
    return ids, bodies


def _starts(bodies: list[bytes]) -> list[int]:
    """Where each of ``bodies`` starts when they are joined."""
    return list(accumulate(map(len, bodies[:-1]), initial=0)) if bodies else []


def _pack_header(count: int) -> bytes:
    return b"PACK" + struct.pack(">II", 2, count)


def _encode_idx(fmt: ObjectFormat, ids: list[bytes], crcs: list[int], offsets: list[int], checksum: bytes) -> bytes:
    """A version-2 ``.idx`` for objects ``ids`` with their ``crcs`` and ``offsets``
    (parallel lists, sorted by id here)."""
    count = len(ids)
    order = sorted(range(count), key=ids.__getitem__)
    names_table = b"".join(map(ids.__getitem__, order))
    crcs = list(map(crcs.__getitem__, order))
    offsets = list(map(offsets.__getitem__, order))
    fanout = [0] * 256
    for first in names_table[:: fmt.raw_len]:
        fanout[first] += 1
    large: list[int] = []
    if count and max(offsets) >= 0x80000000:  # past 2 GiB: listed in the table of 64-bit offsets
        large = [off for off in offsets if off >= 0x80000000]
        position = {off: i for i, off in enumerate(large)}
        offsets = [off if off < 0x80000000 else 0x80000000 | position[off] for off in offsets]
    idx = b"".join([
        b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *accumulate(fanout)),
        names_table,
        struct.pack(f">{count}I", *crcs),
        struct.pack(f">{count}I", *offsets),
        struct.pack(f">{len(large)}Q", *large),
        checksum,
    ])
    return idx + hashlib.new(fmt.name, idx).digest()


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class PackWriter:
    """One pack and its index, written into ``pack_dir``.

    Entries are streamed to a temporary file (buffered a MiB at a time, so a merge of
    large packs never holds a whole pack); ``finish()`` writes the index under a
    temporary name too and renames both, the pack first, the index last: a reader (git
    or prov) that sees the index sees a complete pack. Leaving the ``with`` block
    without ``finish()`` removes the temporary files.
    """

    def __init__(self, pack_dir: str, fmt: ObjectFormat, count: int, durability: Durability | None = None,
                 components: tuple[int, int] = (PACK, PACK_METADATA)) -> None:
        stamp = f"{os.getpid()}_{time.monotonic_ns()}"
        self._pack_dir = pack_dir
        self.fmt = fmt
        self._durability = durability or Durability()
        self._components = components  # (the .pack's, the .idx's) core.fsync component
        self._count = count
        self._tmp_pack = os.path.join(pack_dir, f"tmp_pack_prov_{stamp}")
        self._tmp_idx = os.path.join(pack_dir, f"tmp_idx_prov_{stamp}")
        try:
            self._fd: int | None = os.open(self._tmp_pack, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileNotFoundError:  # no objects/pack yet
            os.makedirs(pack_dir, exist_ok=True)
            self._fd = os.open(self._tmp_pack, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        self._digest = hashlib.new(fmt.name)
        self._buffer = bytearray(_pack_header(count))
        self._written = 0  # bytes in the file; the buffer follows them
        self._ids: list[bytes] = []
        self._crcs: list[int] = []
        self._offsets: list[int] = []
        self._finished = False

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._finished:
            for tmp in (self._tmp_pack, self._tmp_idx):
                with contextlib.suppress(OSError):
                    os.remove(tmp)

    def add(self, ids: list[bytes], entries: list[bytes]) -> None:
        """Append pack ``entries`` (``pack_entry``) of the objects ``ids``."""
        self.copy(b"".join(entries), ids, list(map(zlib.crc32, entries)), _starts(entries))

    def copy(self, chunk: bytes | memoryview, ids: Sequence[bytes], crcs: Sequence[int], starts: Sequence[int]) -> None:
        """Append ``chunk``: whole pack entries back to back, of the objects ``ids``,
        beginning at ``starts`` in ``chunk``, with their ``crcs`` (as an index lists
        them: a merge copies entries and their crc32 from the old pack unchanged)."""
        at = self._written + len(self._buffer)
        self._ids += ids
        self._crcs += crcs
        self._offsets += [at + start for start in starts]
        if len(chunk) >= _BUFFER_BYTES:
            self._drain()
            self._write(chunk)
        else:
            self._buffer += chunk
            if len(self._buffer) >= _BUFFER_BYTES:
                self._drain()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._fd is not None
        self._digest.update(data)
        _write_all(self._fd, data)
        self._written += len(data)

    def _drain(self) -> None:
        self._write(self._buffer)
        self._buffer = bytearray()

    def finish(self) -> str:
        """Complete the pack, write its index, rename both; returns the ``.idx`` path."""
        if len(self._ids) != self._count:
            raise ValueError(f"pack of {self._count} objects given {len(self._ids)}")
        assert self._fd is not None
        self._digest.update(self._buffer)
        checksum = self._digest.digest()
        _write_all(self._fd, self._buffer + checksum)
        self._durability.sync(self._fd, self._components[0])
        os.close(self._fd)
        self._fd = None
        base = os.path.join(self._pack_dir, f"pack-{checksum.hex()}")
        if os.path.exists(base + ".idx"):  # the same objects in the same order: already there
            os.remove(self._tmp_pack)
            self._finished = True
            return base + ".idx"
        fd = os.open(self._tmp_idx, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            _write_all(fd, _encode_idx(self.fmt, self._ids, self._crcs, self._offsets, checksum))
            self._durability.sync(fd, self._components[1])
        finally:
            os.close(fd)
        os.replace(self._tmp_pack, base + ".pack")
        os.replace(self._tmp_idx, base + ".idx")
        self._finished = True
        return base + ".idx"


def write_pack(pack_dir: str, fmt: ObjectFormat, objects: Iterable[tuple[str, bytes]],
               durability: Durability | None = None, components: tuple[int, int] = (PACK, PACK_METADATA)) -> str:
    """Write a pack of ``(oid, pack entry)`` and its index into ``pack_dir`` (see
    ``PackWriter``), flushed as ``durability`` says for ``components`` (of the
    ``.pack``, of the ``.idx``); returns the ``.idx`` path."""
    ids, bodies = _split_objects(objects)
    with PackWriter(pack_dir, fmt, len(ids), durability, components) as writer:
        writer.add(ids, bodies)
        return writer.finish()


def copy_objects(
    writer: PackWriter,
    pack_path: str,
    table: tuple[Sequence[int], Sequence[bytes], Sequence[int]],
    seen: set[bytes],
    whole_entry: Callable[[int], bytes],
) -> None:
    """Append to ``writer`` the objects of a pack not in ``seen`` (and add them to it).

    ``table`` is ``(offsets, raw ids, crc32s)`` of the pack's objects in pack order, as
    its index lists them. Whole entries are copied as they are, with their crc32 (no
    inflate, no deflate), every run of them in one piece; a delta is stored whole as
    ``whole_entry(offset)`` makes it. The pack is read with ``pread``, at most
    ``_MERGE_WINDOW`` bytes at a time (a larger entry alone).
    """
    offsets, ids, crcs = table
    fd = os.open(pack_path, os.O_RDONLY)
    try:
        ends = [*offsets[1:], os.fstat(fd).st_size - writer.fmt.raw_len]
        first = 0
        while first < len(offsets):
            last = max(first + 1, bisect.bisect_right(ends, offsets[first] + _MERGE_WINDOW, first))
            base = offsets[first]
            window = memoryview(os.pread(fd, ends[last - 1] - base, base))
            if len(window) != ends[last - 1] - base:
                raise DataError(f"{pack_path} is truncated")
            run = first  # the entries [run, i) are copied in one piece when the run ends
            for i in range(first, last + 1):  # (i == last: the end of the window)
                new = i < last and ids[i] not in seen
                if new:
                    seen.add(ids[i])
                    if window[offsets[i] - base] >> 4 & 7 in _WHOLE_TYPES:
                        continue
                if run < i:
                    start = offsets[run]
                    chunk = window[start - base : ends[i - 1] - base]
                    writer.copy(chunk, ids[run:i], crcs[run:i], [off - start for off in offsets[run:i]])
                run = i + 1
                if new:  # a delta
                    writer.add([ids[i]], [whole_entry(offsets[i])])
            first = last
    finally:
        os.close(fd)


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


def merge_small_packs(
    pack_dir: str,
    fmt: ObjectFormat,
    load_packs: Callable[[], list[Pack]],
    read_base: Callable[[str], tuple[str, bytes]],
    durability: Durability | None = None,
) -> None:
    """Merge the small packs of ``pack_dir`` into one when there are too many
    (``mergeable_packs``). ``load_packs`` lists the packs of the directory now (the
    object database remembers each listing); ``read_base`` reads the base of a
    ``REF_DELTA``, which is resolved and stored whole. The merged pack is flushed as
    ``durability`` says, before any old pack is removed.

    Best effort: a merge that loses a race with another merger or a ``git repack``
    (a pack vanishes while being read) is abandoned; no object is ever lost, as the
    merged pack is complete before any old pack is removed."""
    try:
        packs = load_packs()
    except (OSError, DataError):
        return
    if os.path.exists(os.path.join(pack_dir, "multi-pack-index")):
        return
    if not mergeable_packs(pack_dir, {p.pack_path[:-5] + ".idx": p.count for p in packs}):
        return
    with MergeLock(pack_dir) as lock:
        if not lock.held:
            return
        try:
            current = load_packs()  # again, under the lock
            chosen = set(mergeable_packs(pack_dir, {p.pack_path[:-5] + ".idx": p.count for p in current}))
            old = [p for p in current if p.pack_path[:-5] + ".idx" in chosen]
            tables = [pack.by_offset() for pack in old]
            count = len(set().union(*(ids for _, ids, _ in tables)))
            if not count:
                return
            seen: set[bytes] = set()
            with PackWriter(pack_dir, fmt, count, durability) as writer:
                for pack, table in zip(old, tables, strict=True):
                    copy_objects(writer, pack.pack_path, table, seen, partial(_whole_entry, pack, read_base))
                idx_path = writer.finish()
        except (OSError, DataError, ValueError):
            return
        keep = idx_path[:-4] + ".pack"
        for pack in old:
            if pack.pack_path == keep:
                continue
            stem = pack.pack_path[:-5]
            for ext in (".idx", ".pack", ".rev", ".bitmap"):
                with contextlib.suppress(OSError):
                    os.remove(stem + ext)
        load_packs()


def _whole_entry(pack: Pack, read_base: Callable[[str], tuple[str, bytes]], offset: int) -> bytes:
    """The object at ``offset`` of ``pack`` (a delta) as a whole pack entry."""
    return pack_entry(*pack.read_at(offset, read_base))


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
