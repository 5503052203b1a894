"""Reading pack files: a pack's ``.idx`` (version 2), its entries, and both delta kinds.

A ``Pack`` finds an object's offset by binary search in its ``.idx`` and reads the
entry at an offset from the ``.pack``, both memory-mapped (as git maps them: only the
pages a read touches count in the process's memory): whole objects are inflated,
``OFS_DELTA`` entries resolve their base in the same pack, ``REF_DELTA`` entries through
the caller's object database. Writing packs is ``store/packs.py``.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections import OrderedDict

from ..errors import DataError
from .objects import ObjectFormat

TYPE_CHECKING = False  # collections.abc is not imported at run time: hook path
if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable

__all__ = ["TYPE_NAMES", "Pack", "apply_delta", "native_apply_delta"]

_REPAIR = "run 'git fsck' and restore the damaged pack from another clone (see docs/errors.md)"

#: pack entry type number -> object type (the other numbers are deltas)
TYPE_NAMES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
_OFS_DELTA, _REF_DELTA = 6, 7

#: delta bases read lately, ``(pack path, offset) -> (type, data)``, oldest first: a delta
#: chain shares its bases with its neighbours' (git's ``core.deltaBaseCacheLimit``). A
#: pack's name is its checksum, so an entry never goes stale. Ordered: dropping the oldest
#: entry of a plain dict walks past every slot dropped before it (5 s for 200,000 entries).
_BASES: OrderedDict[tuple[str, int], tuple[str, bytes]] = OrderedDict()
#: bytes of delta bases kept at most
BASE_CACHE_BYTES = 16 << 20
_base_bytes = 0


class Pack:
    """A pack's ``.idx`` (version 2) and its ``.pack``, memory-mapped."""

    #: ``offsets_of`` reads a fanout bucket's names once when it looks up more than one
    #: id in this many of them, else searches for each
    FEW = 16

    def __init__(self, idx_path: str, fmt: ObjectFormat) -> None:
        self.fmt = fmt
        self.pack_path = idx_path[:-4] + ".pack"
        with open(idx_path, "rb") as f:
            try:  # mapped, as git maps it: only the pages a lookup touches are read (and kept)
                self.idx: mmap.mmap | bytes = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):  # empty (refused below), or a file system that cannot map it
                self.idx = f.read()
        if self.idx[:4] != b"\xfftOc" or int.from_bytes(self.idx[4:8], "big") != 2:
            raise DataError(f"unsupported pack index {idx_path} (only version 2 is read)")
        if len(self.idx) < 8 + 1024:
            raise DataError(f"pack index {idx_path} is truncated; {_REPAIR}")
        self.fanout = struct.unpack_from(">256I", self.idx, 8)
        self.count = self.fanout[255]
        self.names_at = 8 + 1024
        self.crcs_at = self.names_at + self.count * fmt.raw_len
        self.offsets_at = self.crcs_at + self.count * 4
        self.large_at = self.offsets_at + self.count * 4
        if len(self.idx) < self.large_at + 2 * fmt.raw_len:  # the pack's and the index's checksums end it
            raise DataError(f"pack index {idx_path} is truncated; {_REPAIR}")
        self._pack: mmap.mmap | None = None

    def _name(self, i: int) -> bytes:
        size = self.fmt.raw_len
        return self.idx[self.names_at + i * size : self.names_at + (i + 1) * size]

    def _search(self, raw: bytes) -> int:
        lo = self.fanout[raw[0] - 1] if raw[0] else 0
        hi = self.fanout[raw[0]]
        idx, base, size = self.idx, self.names_at, self.fmt.raw_len  # _name() inlined: hot loop
        while lo < hi:
            mid = (lo + hi) // 2
            at = base + mid * size
            if idx[at : at + size] < raw:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def offset_of(self, oid: str) -> int | None:
        raw = bytes.fromhex(oid)
        i = self._search(raw)
        if i < self.count and self._name(i) == raw:
            at = self.offsets_at + i * 4
            off = int.from_bytes(self.idx[at : at + 4], "big")
            return self._large_offset(off) if off & 0x80000000 else off
        return None

    def offsets_of(self, raws: list[bytes]) -> array[int]:
        """The offset of each of ``raws`` (sorted raw ids), -1 for one not in this pack:
        many lookups at once, a fanout bucket's names read once for the ids it holds. An
        array: 8 bytes an id, where a list held an integer object each (32 more)."""
        from array import array
        from bisect import bisect_left

        found = array("q")
        idx, base, size, at = self.idx, self.names_at, self.fmt.raw_len, 0
        while at < len(raws):
            first = raws[at][0]
            end = at + 1
            while end < len(raws) and raws[end][0] == first:
                end += 1
            lo = self.fanout[first - 1] if first else 0
            hi = self.fanout[first]
            if hi == lo:  # none in this pack starts so
                found.extend(array("q", [-1]) * (end - at))
            elif (end - at) * self.FEW < hi - lo:  # few of a large bucket: a search each
                for raw in raws[at:end]:
                    i = self._search(raw)
                    found.append(self._offset(i) if i < self.count and self._name(i) == raw else -1)
            else:  # the bucket's names once, each id found from where the one before it was
                names = [idx[p : p + size] for p in range(base + lo * size, base + hi * size, size)]
                i, offsets = 0, self.offsets_at + lo * 4
                for raw in raws[at:end]:
                    i = bisect_left(names, raw, i)
                    if i < len(names) and names[i] == raw:
                        off = int.from_bytes(idx[offsets + i * 4 : offsets + i * 4 + 4], "big")
                        found.append(self._large_offset(off) if off & 0x80000000 else off)
                    else:
                        found.append(-1)
            at = end
        return found

    def _offset(self, i: int) -> int:
        """The offset of the ``i``-th object (in id order)."""
        at = self.offsets_at + i * 4
        off = int.from_bytes(self.idx[at : at + 4], "big")
        return self._large_offset(off) if off & 0x80000000 else off

    def ids(self) -> list[bytes]:
        """The raw id of every object, in id order."""
        size, start = self.fmt.raw_len, self.names_at
        return [self.idx[at : at + size] for at in range(start, start + self.count * size, size)]

    def _large_offset(self, off: int) -> int:
        at = self.large_at + (off & 0x7FFFFFFF) * 8
        return int.from_bytes(self.idx[at : at + 8], "big")

    def ids_with_prefix(self, prefix: str) -> set[str]:
        padded = prefix + "0" * (self.fmt.hex_len - len(prefix))
        i = self._search(bytes.fromhex(padded))
        found = set()
        while i < self.count:
            name = self._name(i).hex()
            if not name.startswith(prefix):
                break
            found.add(name)
            i += 1
        return found

    @property
    def pack(self) -> mmap.mmap:
        if self._pack is None:
            with open(self.pack_path, "rb") as f:
                try:
                    self._pack = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except ValueError as exc:  # an empty file cannot be mapped
                    raise DataError(f"pack {self.pack_path} is empty; {_REPAIR}") from exc
        return self._pack

    def read_at(self, offset: int, read_base: Callable[[str], tuple[str, bytes]],
                apply: Callable[[bytes, bytes], bytes] | None = None) -> tuple[str, bytes]:
        """``(type, data)`` of the entry at ``offset``, deltas applied (by ``apply``,
        ``apply_delta`` by default); ``read_base`` reads the base object a ``REF_DELTA``
        names (from any pack, or loose). A damaged or truncated pack is a ``DataError``
        naming it."""
        try:
            return self._read_at(offset, read_base, 0, apply or apply_delta)
        except (IndexError, ValueError, OverflowError, struct.error, zlib.error) as exc:
            raise DataError(f"pack {self.pack_path} is damaged at offset {offset} ({exc}); {_REPAIR}") from exc

    def drop_pages(self) -> None:
        """Let go of the pages of the pack and its index mapped so far (the system keeps
        them cached): a process reading a whole pack would otherwise count all of it in
        its memory."""
        if hasattr(mmap, "MADV_DONTNEED"):
            for mapped in (self._pack, self.idx):
                if isinstance(mapped, mmap.mmap):
                    mapped.madvise(mmap.MADV_DONTNEED)

    def read_kept(self, offset: int, read_base: Callable[[str], tuple[str, bytes]]) -> tuple[str, bytes]:
        """``read_at``, the entry then kept as a delta base as well: read one after another
        in the order they lie in the pack, entries are each other's bases (a delta's base
        is most often the entry just before it), so each is inflated once. For bulk reads
        (a cold build's reader): deltas are applied by dulwich's compiled code where it
        has it (``native_apply_delta``)."""
        key = (self.pack_path, offset)
        entry = _BASES.get(key)
        if entry is None:
            entry = self.read_at(offset, read_base, _bulk_applier())
            _keep_base(key, entry)
        return entry

    def _read_at(self, offset: int, read_base: Callable[[str], tuple[str, bytes]], depth: int,
                 apply: Callable[[bytes, bytes], bytes]) -> tuple[str, bytes]:
        if depth > 4096:
            raise DataError(f"delta chain too deep in {self.pack_path}")
        buf = self.pack
        c = buf[offset]
        type_num = (c >> 4) & 7
        size = c & 15
        shift, pos = 4, offset + 1
        while c & 0x80:
            c = buf[pos]
            pos += 1
            size |= (c & 0x7F) << shift
            shift += 7
        if type_num in TYPE_NAMES:
            return TYPE_NAMES[type_num], _inflate(buf, pos, size)
        if type_num == _OFS_DELTA:
            c = buf[pos]
            pos += 1
            rel = c & 0x7F
            while c & 0x80:
                c = buf[pos]
                pos += 1
                rel = ((rel + 1) << 7) | (c & 0x7F)
            key = (self.pack_path, offset - rel)
            cached = _BASES.get(key)
            if cached is None:
                cached = self._read_at(offset - rel, read_base, depth + 1, apply)
                _keep_base(key, cached)
            base_type, base = cached
        elif type_num == _REF_DELTA:
            base_oid = bytes(buf[pos : pos + self.fmt.raw_len]).hex()
            pos += self.fmt.raw_len
            base_type, base = read_base(base_oid)
        else:
            raise DataError(f"unknown pack entry type {type_num} in {self.pack_path}")
        return base_type, apply(base, _inflate(buf, pos, size))


def _keep_base(key: tuple[str, int], entry: tuple[str, bytes]) -> None:
    global _base_bytes
    size = len(entry[1])
    if size > BASE_CACHE_BYTES // 4:
        return
    _BASES[key] = entry  # read after a miss: never there already
    _base_bytes += size
    while _base_bytes > BASE_CACHE_BYTES and _BASES:
        _base_bytes -= len(_BASES.popitem(last=False)[1][1])


def _inflate(buf: mmap.mmap | bytes, pos: int, size: int) -> bytes:
    try:  # at once: a stream is at most a little longer than what it holds (zlib's compressBound)
        data = zlib.decompress(buf[pos : pos + size + (size >> 10) + 64], 15, size or 1)
    except zlib.error:  # or it is longer (the slice cut it), or damaged: the slow path tells
        data = _inflate_slowly(buf, pos, size)
    if len(data) != size:
        raise DataError("pack entry has the wrong size")
    return data


def _inflate_slowly(buf: mmap.mmap | bytes, pos: int, size: int) -> bytes:
    d = zlib.decompressobj()
    chunk = max(size + 64, 512)
    out = []
    while not d.eof:
        piece = buf[pos : pos + chunk]
        if not piece:
            raise DataError("truncated pack entry")
        out.append(d.decompress(piece))
        pos += chunk
        chunk *= 2
    return b"".join(out)


def native_apply_delta() -> Callable[[bytes, bytes], list[bytes]] | None:
    """dulwich's compiled ``apply_delta`` (``(base, delta) -> [result]``), or None where
    dulwich has no compiled extension. It checks the base's size, makes the result in a
    buffer of the size the delta declares (so a caller bounding results checks that size
    first) and refuses a copy or an insert past either end (``ApplyDeltaError``). The
    import costs about 14 ms (dulwich's package): bulk readers (a pull's reader of the
    arriving pack, a cold build's reader of the packs) pay it once; no hot path does."""
    global _native
    if _native is _UNKNOWN:
        try:
            from dulwich._pack import apply_delta as native
        except ImportError:
            native = None
        _native = native
    return _native


_UNKNOWN = object()
_native: object = _UNKNOWN


def _bulk_applier() -> Callable[[bytes, bytes], bytes]:
    """``apply_delta`` for reads of many objects: dulwich's compiled code with the same
    checks and errors (a cold build's reader of 100,000 runs, 195,000 deltas: 5.4 -> 4.3-4.8 s
    of CPU), or ``apply_delta`` itself without it."""
    global _bulk
    if _bulk is not None:
        return _bulk
    native = native_apply_delta()
    if native is None:
        _bulk = apply_delta
        return _bulk

    def apply(base: bytes, delta: bytes) -> bytes:
        src_size, pos = _read_varint(delta, 0)
        dst_size, _ = _read_varint(delta, pos)
        if src_size != len(base):
            raise DataError("delta base has the wrong size")
        try:
            out = native(base, delta)[0]
        except Exception as exc:  # noqa: BLE001 - dulwich's ApplyDeltaError, said as apply_delta says it
            raise DataError(f"invalid delta ({exc})") from None
        if len(out) != dst_size:
            raise DataError("delta result has the wrong size")
        return out

    _bulk = apply
    return _bulk


_bulk: Callable[[bytes, bytes], bytes] | None = None


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = data[pos]
        pos += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return value, pos


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """Apply a git pack delta to ``base``."""
    if delta[0] < 0x80 and delta[1] < 0x80:  # both sizes under 128 bytes
        src_size, dst_size, pos = delta[0], delta[1], 2
    elif delta[0] >= 0x80 and delta[1] < 0x80 and delta[2] >= 0x80 and delta[3] < 0x80:  # under 16 KiB
        src_size, dst_size, pos = (delta[0] & 0x7F) | delta[1] << 7, (delta[2] & 0x7F) | delta[3] << 7, 4
    else:
        src_size, pos = _read_varint(delta, 0)
        dst_size, pos = _read_varint(delta, pos)
    if src_size != len(base):
        raise DataError("delta base has the wrong size")
    out = bytearray()
    end = len(delta)
    while pos < end:
        op = delta[pos]
        pos += 1
        if op & 0x80:
            off = size = 0
            for i in range(4):
                if op & (1 << i):
                    off |= delta[pos] << (8 * i)
                    pos += 1
            for i in range(3):
                if op & (0x10 << i):
                    size |= delta[pos] << (8 * i)
                    pos += 1
            out += base[off : off + (size or 0x10000)]
        elif op:
            out += delta[pos : pos + op]
            pos += op
        else:
            raise DataError("invalid delta instruction")
    if len(out) != dst_size:
        raise DataError("delta result has the wrong size")
    return bytes(out)
