"""How the index stores values (``index/encoding.py``): each form gives back what was stored."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gitprov.index.encoding import (
    STATUS_SQL,
    link,
    links_json,
    node_hash,
    pack_links,
    status_text,
    status_value,
    time_text,
    time_value,
    unpack_links,
)
from gitprov.model import RUN_STATUSES


@given(st.lists(st.integers(min_value=0, max_value=2**62), unique=True).map(sorted))
def test_links_come_back_from_their_varints(links):
    data = pack_links(links)
    assert unpack_links(data) == links
    assert links_json(data) == "[" + ",".join(map(str, links)) + "]"


def test_links_take_a_byte_for_each_seven_bits():
    assert [len(pack_links([value])) for value in (0, 127, 128, 16383, 16384, 2**21 - 1, 2**21)] == [1, 1, 2, 2, 3, 3, 4]
    assert link(0, 5) == 10 and link(1, 5) == 11  # the node id doubled, plus the direction


def test_node_hashes_are_fixed():
    """A stored hash must be what a later process (another Python) computes for a query:
    CRC-32 of the kind and the name, 24 bits."""
    assert [node_hash(0, bytes.fromhex("ab" * 20)), node_hash(1, "bert"), node_hash(2, "input/data"),
            node_hash("other", "x")] == [11308346, 6479008, 15596594, 2291741]
    assert node_hash(0, b"\x01" * 20) != node_hash(0, "\x01" * 20)  # a name as bytes and as text differ
    assert all(0 <= node_hash(kind, name) < 2**24 for kind in (0, 1, 2, "x") for name in ("", "é", "\udc80", b"\xff"))


def test_statuses_are_small_integers_and_come_back():
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE runs(status)")
    db.executemany("INSERT INTO runs VALUES (?)", [(status_value(s),) for s in (*RUN_STATUSES, "paused")])
    assert [status_value(s) for s in RUN_STATUSES] == [0, 1, 2, 3, 4] and status_value("paused") == "paused"
    stored = [s for (s,) in db.execute("SELECT status FROM runs")]
    assert [status_text(s) for s in stored] == [*RUN_STATUSES, "paused"]
    assert [s for (s,) in db.execute(f"SELECT {STATUS_SQL} FROM runs r")] == [*RUN_STATUSES, "paused"]


@given(st.datetimes(min_value=__import__("datetime").datetime(1, 1, 1)))
def test_times_come_back_as_the_record_wrote_them(moment):
    text = moment.isoformat(timespec="microseconds") + "Z"
    value = time_value(text)
    assert time_text(value) == text
    if value.__class__ is int and 2020 <= moment.year < 2029 and (moment.year, moment.month) > (2020, 7):
        assert -(2**47) <= value < 2**47  # SQLite's 6-byte integers


def test_times_sort_as_their_text():
    texts = ["1970-01-01T00:00:00.000000Z", "2020-07-01T00:00:00.000000Z", "2024-12-31T23:59:59.999999Z",
             "2025-01-01T00:00:00.000000Z", "2029-01-01T00:00:00.000001Z", "2100-01-01T00:00:00.000000Z"]
    assert sorted(texts, key=time_value) == texts
