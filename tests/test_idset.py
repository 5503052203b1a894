"""``_util.idset.SortedIds``: a compact set of ids, answered like a plain set."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gitprov._util.idset import SortedIds


def _ids(n: int, size: int = 20) -> list[str]:
    return sorted(hashlib.sha256(str(i).encode()).hexdigest()[: size * 2] for i in range(n))


def test_sorted_ids_answer_as_a_set() -> None:
    ids = _ids(2000)
    kept = ids[::2]
    found = SortedIds()
    for run_id in kept:
        found.add(run_id)
    assert len(found) == len(kept)
    assert all(run_id in found for run_id in kept)
    assert not any(run_id in found for run_id in ids[1::2])
    assert "" not in found and "zz" not in found and None not in found
    assert kept[0].upper() not in found and kept[0][:-2] not in found


def test_ids_out_of_order_or_not_hex_are_kept_aside() -> None:
    found = SortedIds()
    strange = ["ab" * 20, "00" * 20, "AB" * 20, "not-hex", "ab cd", "ab" * 20, "12" * 32]
    for value in strange:
        found.add(value)
    assert all(value in found for value in strange)
    assert "abcd" not in found and "cd" * 20 not in found
    assert len(found) == 6  # the repeated id once


_POOL = _ids(301)


@settings(deadline=None)  # a loaded machine must not fail it
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=80), st.integers(min_value=0, max_value=300))
def test_membership_matches_a_set_whatever_the_order(picked: list[int], probe: int) -> None:
    ids = _POOL
    order = [ids[i] for i in picked]
    random.Random(len(picked)).shuffle(order)
    found = SortedIds()
    for run_id in order:
        found.add(run_id)
    assert (ids[probe] in found) == (ids[probe] in set(order))
    assert len(found) == len(set(order))


def test_ids_sharing_their_first_bytes_are_told_apart() -> None:
    found = SortedIds()
    base = "ab" * 8
    for tail in ("00" * 12, "01" * 12, "ff" * 12):
        found.add(base + tail)
    assert base + "01" * 12 in found and base + "02" * 12 not in found
