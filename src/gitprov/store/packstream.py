"""Reading a pack as it streams in (the bytes git receives in a fetch): each small blob's
id and content, in the order the pack holds them.

A fetch's pack is read by git's ``index-pack``, which inflates every object to check it
and store it; a second reader of the same bytes (``GIT_TRACE_PACKFILE``) gets the blobs
without asking ``git cat-file`` to inflate them again afterwards. This reader trusts
nothing it reads: a blob's id is the hash it computes of the content it resolved, so a
pack can only give the content of ids it really holds. What it cannot resolve (a
``REF_DELTA``, whose base may be outside the pack; a delta whose base it no longer
keeps; anything over ``max_size``) it leaves out, and a malformed stream ends the
reading (``PackStreamError``): the caller reads what is missing from git. Memory is
bounded: deltas resolve against the last ``cache_bytes`` of resolved objects, and an
object over ``max_size`` is inflated a piece at a time and dropped.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator

from ..errors import PackStreamError
from .packfile import _read_varint, native_apply_delta

__all__ = ["PackStreamError", "native_apply_delta", "scan_blobs"]

_OFS_DELTA, _REF_DELTA = 6, 7
_BLOB = 3
#: bytes read from the stream at a time
_READ = 1 << 16
#: bytes inflated at a time from an object that is dropped
_PIECE = 1 << 20


class _Stream:
    """The bytes of ``read`` with an absolute position: headers and zlib streams taken
    from it in turn."""

    __slots__ = ("at", "buf", "eof", "pos", "read")

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read = read
        self.buf = b""
        self.pos = 0  # in ``buf``
        self.at = 0  # the stream offset of ``buf[0]``
        self.eof = False

    def more(self) -> bool:
        """Read more of the stream into the buffer (False: it has ended)."""
        if self.eof:
            return False
        piece = self.read(_READ)
        if not piece:
            self.eof = True
            return False
        self.at += self.pos
        self.buf = self.buf[self.pos:] + piece
        self.pos = 0
        return True

    def ensure(self, n: int) -> None:
        """``n`` bytes buffered from ``pos``, or all that is left of the stream."""
        while len(self.buf) - self.pos < n and self.more():
            pass

    def take(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            if not self.more():
                raise PackStreamError("the pack ended in an entry's header")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def inflate(self, size: int, keep: bool) -> bytes | None:
        """Inflate the zlib stream of an object of ``size`` bytes (dropped unless ``keep``)."""
        d = zlib.decompressobj()
        if size <= _PIECE and len(self.buf) - self.pos > size + (size >> 10) + 64:
            # the common case: a small object (kept or not: a tree is inflated only to find
            # where the next entry starts) whose whole stream is buffered, inflated in one call
            chunk = self.buf[self.pos:self.pos + size + (size >> 10) + 64]
            try:
                data = d.decompress(chunk, size + 1)
            except zlib.error as exc:
                raise PackStreamError(f"an object is not valid zlib data ({exc})") from None
            if d.eof:
                if len(data) != size:
                    raise PackStreamError("an object's size is not what its header says")
                self.pos += len(chunk) - len(d.unused_data)
                return data if keep else None
            d = zlib.decompressobj()  # its stream is longer than that: from the start, piece by piece
        out = []
        got = 0
        view = memoryview(self.buf)
        feed = size + (size >> 10) + 64  # compressed data is rarely longer: little left over
        while True:
            if self.pos >= len(self.buf):
                view.release()
                if not self.more():
                    raise PackStreamError("the pack ended inside an object")
                view = memoryview(self.buf)
            chunk = view[self.pos:self.pos + feed]
            try:
                piece = d.decompress(chunk, size - got + 1 if keep else min(size - got + 1, _PIECE))
            except zlib.error as exc:
                raise PackStreamError(f"an object is not valid zlib data ({exc})") from None
            got += len(piece)
            if got > size:
                raise PackStreamError("an object is larger than its header says")
            if keep:
                out.append(piece)
            self.pos += len(chunk) - len(d.unconsumed_tail) - len(d.unused_data)
            if d.eof:
                break
            feed = _READ
        view.release()
        if got != size:
            raise PackStreamError("an object is smaller than its header says")
        return b"".join(out) if keep else None


def scan_blobs(read: Callable[[int], bytes], *, hash_name: str = "sha1", max_size: int = 1 << 20,
               cache_bytes: int = 64 << 20) -> Iterator[tuple[bytes, bytes]]:
    """``(id, content)`` (the id's raw bytes) of each blob of at most ``max_size`` bytes
    that this reader can resolve in the pack ``read(n)`` streams, in pack order
    (``PackStreamError``: the stream is malformed or ended early)."""
    s = _Stream(read)
    head = s.take(12)
    if head[:4] != b"PACK" or int.from_bytes(head[4:8], "big") not in (2, 3):
        raise PackStreamError("not a pack (version 2 or 3)")
    count = int.from_bytes(head[8:12], "big")
    id_size = hashlib.new(hash_name).digest_size
    header_max = 20 + id_size
    #: resolved blobs by their offset, the least recently used first (a format-4 pull of 100,000
    #: runs: 93,753 run blobs resolved in 160 MiB, where dropping the oldest first resolved 68,424)
    cache: OrderedDict[int, bytes] = OrderedDict()
    cached = 0
    # the hash's own constructor (``hashlib.new`` looks the name up for every blob)
    new = getattr(hashlib, hash_name) if hash_name in ("sha1", "sha256") else lambda data: hashlib.new(hash_name, data)
    inflate, ensure = s.inflate, s.ensure
    for _ in range(count):
        # an entry's header: type and size, then a delta's base (at most 20 + an id's bytes)
        buf, pos = s.buf, s.pos
        if len(buf) - pos < header_max:
            ensure(header_max)
            buf, pos = s.buf, s.pos
        at = s.at + pos
        try:
            c = buf[pos]
            kind = (c >> 4) & 7
            size = c & 15
            shift = 4
            pos += 1
            while c & 0x80:
                c = buf[pos]
                pos += 1
                size |= (c & 0x7F) << shift
                shift += 7
                if shift > 64:
                    raise PackStreamError("an entry's size is too long")
            base = None
            if kind == _OFS_DELTA:
                c = buf[pos]
                pos += 1
                rel = c & 0x7F
                while c & 0x80:
                    c = buf[pos]
                    pos += 1
                    rel = ((rel + 1) << 7) | (c & 0x7F)
                    if rel > at:
                        break
                if rel == 0 or rel > at:
                    raise PackStreamError("a delta's base is not before it in the pack")
                base = cache.get(at - rel)
                if base is not None:  # a base used again is kept longest: least recently used first out
                    cache.move_to_end(at - rel)
            elif kind == _REF_DELTA:
                pos += id_size  # its base may be outside the pack: left to git
                if pos > len(buf):
                    raise IndexError
            elif kind == 0 or kind == 5:
                raise PackStreamError(f"unknown entry type {kind}")
        except IndexError:
            raise PackStreamError("the pack ended in an entry's header") from None
        s.pos = pos
        # only blobs are kept: a blob's delta base is a blob (git deltifies within a type)
        data = inflate(size, size <= max_size and (kind == _BLOB or base is not None))
        if data is None:
            continue
        if base is not None:
            data = _apply(base, data, max_size)
            if data is None:
                continue
        cache[at] = data
        cached += len(data) + 100
        while cached > cache_bytes:
            cached -= len(cache.popitem(last=False)[1]) + 100
        oid = new(b"blob %d\0" % len(data))
        oid.update(data)
        yield oid.digest(), data


def _apply(base: bytes, delta: bytes, max_size: int) -> bytes | None:
    """``delta`` applied to ``base`` (None: the result would be over ``max_size``;
    ``PackStreamError``: a malformed delta). Never builds more than the size the delta
    declares and its own length (what its inserts add)."""
    try:
        src_size, pos = _read_varint(delta, 0)
        dst_size, pos = _read_varint(delta, pos)
    except IndexError:
        raise PackStreamError("a truncated delta header") from None
    if src_size != len(base):
        raise PackStreamError("a delta's base has the wrong size")
    if dst_size > max_size:
        return None
    native = native_apply_delta()
    if native is not None:  # 1-4 µs a delta less (bench_pack_reader.py); the same bounds (its docstring)
        try:
            return native(base, delta)[0]
        except Exception as exc:  # noqa: BLE001 - dulwich's ApplyDeltaError, said as ours
            raise PackStreamError(f"an invalid delta ({exc})") from None
    return _apply_here(base, delta, pos, src_size, dst_size)


def _apply_here(base: bytes, delta: bytes, pos: int, src_size: int, dst_size: int) -> bytes:
    """``_apply`` in Python, from ``pos`` (after the delta's header)."""
    parts = []
    append = parts.append
    copied = 0  # bytes copied from the base: bounded as they are made (a copy bomb is never built)
    end = len(delta)
    try:  # this loop runs for every delta of a pull: inserts first (a record's or a state's
        # deltas are mostly inserts of 127 bytes), the offset's and size's bytes unrolled
        while pos < end:
            op = delta[pos]
            pos += 1
            if op < 0x80:
                if not op:
                    raise PackStreamError("a delta has an invalid instruction")
                append(delta[pos:pos + op])  # short at the end of a truncated delta: found below
                pos += op
                continue
            off = size = 0
            if op & 1:
                off = delta[pos]
                pos += 1
            if op & 2:
                off |= delta[pos] << 8
                pos += 1
            if op & 4:
                off |= delta[pos] << 16
                pos += 1
            if op & 8:
                off |= delta[pos] << 24
                pos += 1
            if op & 0x10:
                size = delta[pos]
                pos += 1
            if op & 0x20:
                size |= delta[pos] << 8
                pos += 1
            if op & 0x40:
                size |= delta[pos] << 16
                pos += 1
            size = size or 0x10000
            if off + size > src_size:
                raise PackStreamError("a delta copies from past its base")
            copied += size
            if copied > dst_size:
                raise PackStreamError("a delta makes more than it declares")
            append(base[off:off + size])
    except IndexError:
        raise PackStreamError("a truncated delta") from None
    if pos > end:
        raise PackStreamError("a truncated delta")
    # what the inserts add is bounded by the delta's own length
    made = b"".join(parts)
    if len(made) != dst_size:
        raise PackStreamError(f"a delta makes {'more' if len(made) > dst_size else 'less'} than it declares")
    return made
