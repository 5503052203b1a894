"""Adding a line to a canonical note in place equals git's ``cat_sort_uniq`` merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gitprov.store.notes import Notes, add_note_line, merge_note_lines, split_note
from gitprov.store.objects import MODE_BLOB, TreeEntry, encode_commit, encode_tree
from gitprov.store.repo import GitRepository

lines = st.binary(min_size=1, max_size=6).filter(lambda b: b"\n" not in b and b.strip())


@given(st.lists(lines, max_size=30), lines)
def test_add_note_line_is_the_sorted_union(existing: list[bytes], line: bytes) -> None:
    note = merge_note_lines(existing)
    assert add_note_line(note, line) == merge_note_lines(existing, [line])


def test_appending_to_a_note_written_elsewhere_still_canonicalises() -> None:
    """A note blob prov did not write (hand-edited: unsorted, duplicates, blank lines)
    is merged in full, not patched in place."""
    git = GitRepository.memory()
    notes = Notes(git)
    commit = "ab" * 20
    messy = git.odb.write("blob", b"zeta\n\nalpha\nzeta\n")
    tree = git.odb.write("tree", encode_tree([TreeEntry(MODE_BLOB, commit, messy)]))
    tip = git.odb.write("commit", encode_commit(tree, [], "P <p@x> 1700000000 +0000", "hand-made\n"))
    git.refs.compare_and_swap(notes.ref, None, tip)
    notes.add({commit: [b"mid"]})
    assert notes.read(commit) == [b"alpha", b"mid", b"zeta"]
    notes.add({commit: [b"beta", b"alpha"]})  # the in-place path, on a blob prov wrote
    assert notes.read(commit) == [b"alpha", b"beta", b"mid", b"zeta"]
    assert split_note(git.odb.read_typed(notes._find(git.read_commit(notes.tip()).tree, commit), "blob")) == [
        b"alpha", b"beta", b"mid", b"zeta"]
