"""The memory twin checks every object with dulwich, an independent implementation."""

from __future__ import annotations

import pytest

from gitprov.errors import DataError
from gitprov.store.objects import SHA1, SHA256
from gitprov.store.odb import MemoryObjectDatabase


@pytest.mark.parametrize("fmt", [SHA1, SHA256], ids=["sha1", "sha256"])
def test_malformed_objects_are_refused(fmt):
    odb = MemoryObjectDatabase(fmt)
    blob = odb.write("blob", b"x")
    raw = bytes.fromhex(blob)
    unsorted = b"100644 b\x00" + raw + b"100644 a\x00" + raw
    with pytest.raises(DataError, match="malformed tree"):
        odb.write("tree", unsorted)
    with pytest.raises(DataError, match="malformed commit"):
        odb.write("commit", b"tree nothex\n\nmsg\n")
    assert odb.write("tree", b"100644 a\x00" + raw + b"100644 b\x00" + raw)


def test_check_can_be_turned_off_for_speed():
    odb = MemoryObjectDatabase(SHA1, check=False)
    assert odb.write("tree", b"100644 b\x00" + bytes(20) + b"100644 a\x00" + bytes(20))
