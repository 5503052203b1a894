"""Writing pack files, one per write transaction; and when to let git repack them.

A loose object costs a file of its own (open, write, close, rename: ~0.2-0.5 ms and a
4 KiB block each). A ledger transaction writes ~30 small objects, so it writes them as
one pack instead: ``pack-<checksum>.pack`` (version 2, every object whole, zlib level
1) and its ``.idx`` (version 2), each written to a temporary file, flushed when
``core.fsync`` says so (``store/durability.py``: a transaction's pack stands in for
git's loose objects) and renamed, the ``.idx`` last, exactly what git expects of a pack
another process may be reading. Readers find a pack by its ``.idx``: until that rename
the objects do not exist.

Packs pile up at one per transaction. prov never rewrites or removes a pack: when more
than ``prov.autoPackLimit`` of them lie outside a geometric progression
(``packs_to_roll_up``), ``PackDirectory.maintain`` has git roll them up with
deltas (``git repack --geometric=4 -d``, started detached: ``store/maintenance.py``).
Reading packs is ``store/packfile.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import time
import zlib
from collections.abc import Iterable
from itertools import accumulate

from ..errors import ConfigError
from .durability import PACK, PACK_METADATA, Durability
from .objects import ObjectFormat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .config import GitConfig

__all__ = [
    "AUTO_PACK_LIMIT_KEY",
    "DEFAULT_AUTO_PACK_LIMIT",
    "GEOMETRIC_FACTOR",
    "auto_pack_limit",
    "deflate",
    "encode_pack",
    "pack_entry",
    "packs_to_roll_up",
    "stored",
    "write_pack",
]

_TYPE_NUMBERS = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
#: git config: how many packs may lie outside the geometric progression before prov
#: starts ``git repack --geometric=4 -d``; 0 turns it off
AUTO_PACK_LIMIT_KEY = "prov.autoPackLimit"
DEFAULT_AUTO_PACK_LIMIT = 12
#: ``git repack --geometric=GEOMETRIC_FACTOR``: each pack kept holds at least this many
#: times the objects of the next smaller one. Every pack holds one whole copy of each
#: ledger fan-out leaf it touches (a delta base is found only inside the pack rolled
#: up), and those leaves grow with the runs: fewer packs, fewer whole copies. 4 instead
#: of git's usual 2 (measured, docs/performance.md): 30,000 runs 3.62 -> 3.28 KiB a
#: run as left (1.17x -> 1.06x of ``git repack -adf``), at the same runs per second.
GEOMETRIC_FACTOR = 4


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


def _write_file(path: str, data: bytes, durability: Durability, component: int) -> None:
    """``data`` into a new read-only file ``path``, flushed as ``durability`` says."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        durability.sync(fd, component)
    finally:
        os.close(fd)


def write_pack(pack_dir: str, fmt: ObjectFormat, objects: Iterable[tuple[str, bytes]],
               durability: Durability | None = None, components: tuple[int, int] = (PACK, PACK_METADATA)) -> str:
    """Write a pack of ``(oid, pack entry)`` and its index into ``pack_dir``, each to a
    temporary file flushed as ``durability`` says for ``components`` (of the ``.pack``,
    of the ``.idx``), then renamed, the ``.idx`` last; returns the ``.idx`` path."""
    pack, idx, name = encode_pack(fmt, objects)
    durability = durability or Durability()
    base = os.path.join(pack_dir, f"pack-{name}")
    if os.path.exists(base + ".idx"):  # the same objects in the same order: already there
        return base + ".idx"
    stamp = f"{os.getpid()}_{time.monotonic_ns()}"
    tmp_pack, tmp_idx = (os.path.join(pack_dir, f"tmp_{kind}_prov_{stamp}") for kind in ("pack", "idx"))
    try:
        try:
            _write_file(tmp_pack, pack, durability, components[0])
        except FileNotFoundError:  # no objects/pack yet
            os.makedirs(pack_dir, exist_ok=True)
            _write_file(tmp_pack, pack, durability, components[0])
        _write_file(tmp_idx, idx, durability, components[1])
        os.replace(tmp_pack, base + ".pack")
        os.replace(tmp_idx, base + ".idx")
    except BaseException:
        for tmp in (tmp_pack, tmp_idx):
            with contextlib.suppress(OSError):
                os.remove(tmp)
        raise
    return base + ".idx"


def auto_pack_limit(config: GitConfig) -> int | None:
    """``prov.autoPackLimit`` (default 12), or None when automatic repacking is off:
    git's own switches (``gc.auto`` or ``gc.autoPackLimit`` at 0 or below,
    ``maintenance.auto`` false), ``prov.autoPackLimit`` at 0 or below, or a value git
    would reject."""
    try:
        limit = config.get_int(AUTO_PACK_LIMIT_KEY, DEFAULT_AUTO_PACK_LIMIT)
        if (limit <= 0 or config.get_int("gc.auto", 1) <= 0 or config.get_int("gc.autoPackLimit", 1) <= 0
                or not config.get_bool("maintenance.auto", True)):
            return None
    except ConfigError:
        return None
    return limit


def packs_to_roll_up(counts: Iterable[int]) -> int:
    """How many of the packs holding ``counts`` objects ``git repack
    --geometric=GEOMETRIC_FACTOR`` would roll into one, as git's ``split_pack_geometry``
    counts them: from the largest down, the packs that each hold at least the factor
    times the objects of the next stay; the rest are rolled up, with any pack above
    them that holds less than the factor times the roll-up."""
    weights = sorted(counts)
    i = len(weights) - 1
    while i > 0 and weights[i] >= GEOMETRIC_FACTOR * weights[i - 1]:
        i -= 1
    split = i + 1 if i > 0 else 0
    total = sum(weights[:split])
    while split < len(weights) and weights[split] < GEOMETRIC_FACTOR * total:
        total += weights[split]
        split += 1
    return split
