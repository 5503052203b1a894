"""Sorting more than memory should hold: values put aside with their sort keys in a
private temporary sqlite database (on disk, deleted when closed; a few MB of page
cache), read back in key order. ``prov show`` sorts the 100,000 runs of one commit so.
sqlite is imported only when a spill is made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["SortedSpill"]

#: sqlite's page cache for a spill, in KiB (sqlite's own default is 2,000)
CACHE_KIB = 4096


class SortedSpill:
    """``add(keys, value)`` any number of times, then iterate: the values in the order
    of their keys (a tuple of ``width`` str, int or bytes, compared as sqlite does:
    numbers before text before bytes, text by code point as Python does)."""

    def __init__(self, width: int) -> None:
        import sqlite3

        self.width = width
        self._db = sqlite3.connect("", isolation_level=None)  # "": private, temporary, on disk
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.execute("PRAGMA temp_store=FILE")
        cols = ", ".join(f"k{i}" for i in range(width))
        self._db.execute(f"CREATE TABLE spill({cols}, value BLOB)")
        self._order = cols
        self._insert = f"INSERT INTO spill VALUES ({', '.join('?' * (width + 1))})"
        self._db.execute("BEGIN")
        self._count = 0

    def add(self, keys: tuple[Any, ...], value: bytes) -> None:
        self._db.execute(self._insert, (*keys, value))
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        """The values in key order (rows in insertion order among equal keys)."""
        for (value,) in self._db.execute(f"SELECT value FROM spill ORDER BY {self._order}, rowid"):
            yield value

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SortedSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
