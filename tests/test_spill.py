"""``_util.spill.SortedSpill``: values read back in the order Python sorts their keys."""

from __future__ import annotations

import random

from gitprov._util.spill import SortedSpill


def test_values_come_back_in_key_order_as_python_sorts_them() -> None:
    rng = random.Random(4)
    alphabet = "aZ09-:.Tüß€😀"
    keys = [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))), f"{rng.getrandbits(32):08x}")
            for _ in range(3000)]
    with SortedSpill(2) as spill:
        for i, key in enumerate(keys):
            spill.add(key, i.to_bytes(4, "big"))
        assert len(spill) == 3000
        got = [keys[int.from_bytes(v, "big")] for v in spill]
        assert got == sorted(keys)
        assert [keys[int.from_bytes(v, "big")] for v in spill] == got  # read again: the same


def test_equal_keys_keep_the_order_they_were_added_in() -> None:
    with SortedSpill(1) as spill:
        for value in (b"first", b"second", b"third"):
            spill.add(("same",), value)
        spill.add(("earlier",), b"zero")
        assert list(spill) == [b"zero", b"first", b"second", b"third"]


def test_an_empty_spill_gives_nothing() -> None:
    with SortedSpill(3) as spill:
        assert len(spill) == 0 and list(spill) == []
