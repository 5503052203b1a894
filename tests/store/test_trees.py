"""Trees written by splicing changed entries into a remembered encoding are byte for
byte the trees the plain encoder makes (git's canonical order)."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitprov.store import trees
from gitprov.store.objects import SHA1, decode_tree, encode_tree
from gitprov.store.odb import MemoryObjectDatabase
from gitprov.store.trees import build_tree, edit_tree, walk_blobs

# names that sort on either side of "/" (0x2f) and of each other as bytes: "-" and "."
# below it, "0" above; "é" is two bytes in UTF-8
_NAMES = st.sampled_from(["a", "a-", "a.b", "a0", "ab", "b", "é", "é-x", "z"])
_PATHS = st.lists(_NAMES, min_size=1, max_size=3).map("/".join)
_EDITS = st.dictionaries(_PATHS, st.none() | st.binary(max_size=3), min_size=1, max_size=6)


def assert_canonical(odb: MemoryObjectDatabase, tree: str | None) -> None:
    """Every tree below ``tree`` equals its entries encoded afresh."""
    if tree is None:
        return
    kind, data = odb.read(tree)
    assert kind == "tree"
    entries = decode_tree(data, odb.fmt)
    assert encode_tree(entries) == data
    for entry in entries.values():
        if entry.is_tree:
            assert_canonical(odb, entry.oid)


@pytest.mark.parametrize("splice_from", [0, 3], ids=["every-tree", "from-3-entries"])
@settings(max_examples=200, deadline=None)
@given(st.lists(_EDITS, min_size=1, max_size=12))
def test_spliced_trees_equal_the_plain_encoding(splice_from: int, edits: list[dict[str, bytes | None]]) -> None:
    """Each edit builds on the trees the previous one wrote (so their encodings are
    spliced: here from trees of ``splice_from`` entries, not only large ones); the
    result, after every edit, is the tree a fresh database encodes from scratch. The
    memory twin also has dulwich check each tree (order included)."""
    odb = MemoryObjectDatabase(SHA1)
    tree = None
    with mock.patch.object(trees, "_SPLICE_FROM", splice_from):
        for changes in edits:
            tree = edit_tree(odb, tree, changes)
            assert_canonical(odb, tree)
            fresh = MemoryObjectDatabase(SHA1)
            assert build_tree(fresh, dict(walk_blobs(odb, tree))) == tree
