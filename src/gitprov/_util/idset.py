"""A set of object ids in little memory: the raw bytes of ids added in ascending order,
kept in one buffer (20 or 32 bytes an id instead of a ~90-byte ``str`` and a hash
slot), found by binary search over their first 8 bytes (an ``array``, searched in C).
100,000 run ids take 2.8 MB instead of about 13 MB."""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["SortedIds"]


class SortedIds:
    """Hex ids, added in ascending order (a ledger's ``runs/`` walk gives them so); an id
    out of order or not hex is kept aside in a plain set, so any input is answered right."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._prefix = array("Q")
        self._width = 0
        self._count = 0
        self._last = b""
        self._aside: set[str] = set()

    def add(self, hex_id: str) -> None:
        raw = _raw(hex_id)
        if raw is None or raw <= self._last or (self._width and len(raw) != self._width):
            if hex_id not in self:  # an id after the last is new; any other may be known
                self._aside.add(hex_id)
            return
        self._width = len(raw)
        self._buf += raw
        self._prefix.append(int.from_bytes(raw[:8], "big"))
        self._last = raw
        self._count += 1

    def __contains__(self, hex_id: object) -> bool:
        if not isinstance(hex_id, str):
            return False
        if hex_id in self._aside:
            return True
        raw = _raw(hex_id)
        if raw is None or len(raw) != self._width:
            return False
        w, prefix = self._width, int.from_bytes(raw[:8], "big")
        i = bisect_left(self._prefix, prefix)
        while i < self._count and self._prefix[i] == prefix:
            if self._buf[i * w:(i + 1) * w] == raw:
                return True
            i += 1
        return False

    def __len__(self) -> int:
        return self._count + len(self._aside)


def _raw(hex_id: str) -> bytes | None:
    """The raw bytes of a lowercase hex id (what git writes), else None."""
    try:
        raw = bytes.fromhex(hex_id)
    except ValueError:
        return None
    return raw if raw.hex() == hex_id else None  # not "AB", "a b": kept aside as they are
