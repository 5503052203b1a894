"""In the test suite the memory twin checks every object with dulwich, an independent
implementation (tests/oracles.py, installed by tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

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


def test_the_package_checks_nothing_by_itself():
    """The oracle belongs to the tests: outside them a memory twin stores what it is given."""
    code = ("from gitprov.store.objects import SHA1\nfrom gitprov.store.odb import MemoryObjectDatabase\n"
            "import sys\nassert MemoryObjectDatabase.write_check is None and 'dulwich' not in sys.modules\n"
            "odb = MemoryObjectDatabase(SHA1)\n"
            "print(odb.write('tree', b'100644 b\\x00' + bytes(20) + b'100644 a\\x00' + bytes(20)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and len(proc.stdout.strip()) == 40, proc.stderr
