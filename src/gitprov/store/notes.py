"""``refs/notes/prov``: one note per commit, its lines sorted and unique.

The layout is git's own notes tree, so ``git notes --ref=prov show`` and
``git log --notes=prov`` read it, and git's ``cat_sort_uniq`` merge and rewrite modes
combine notes exactly as prov does. Reading accepts any fan-out; writing splits a tree
level into two-hex-digit subtrees once it holds more than 256 notes, as git does.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import DataError
from .objects import MODE_BLOB, MODE_TREE, TreeEntry, encode_tree
from .odb import ObjectDatabase
from .repo import GitRepository
from .transaction import RefUpdate, commit_on_ref
from .trees import read_tree, write_tree

__all__ = ["NOTES_REF", "Notes", "build_notes_tree", "merge_note_lines", "merge_notes_trees", "note_entries", "split_note"]

NOTES_REF = "refs/notes/prov"
_SPLIT_AT = 256


def split_note(data: bytes) -> list[bytes]:
    """The non-empty lines of a note blob."""
    return [line for line in data.split(b"\n") if line.strip()]


def merge_note_lines(*groups: list[bytes]) -> bytes:
    """Union of note lines, sorted and unique (git's ``cat_sort_uniq``)."""
    lines = sorted({line for group in groups for line in group})
    return b"".join(line + b"\n" for line in lines)


def add_note_line(data: bytes, line: bytes) -> bytes:
    """``merge_note_lines(split_note(data), [line])`` for a canonical note ``data``
    (sorted, unique, ``\n``-terminated lines), without splitting it: a binary search
    over its line starts finds where ``line`` goes."""
    lo, hi = 0, len(data)  # both always at line starts
    while lo < hi:
        mid = (lo + hi) // 2
        start = max(data.rfind(b"\n", lo, mid) + 1, lo)  # the line holding byte mid
        end = data.index(b"\n", start)
        current = data[start:end]
        if current == line:
            return data
        if current < line:
            lo = end + 1
        else:
            hi = start
    return data[:lo] + line + b"\n" + data[lo:]


def note_entries(odb: ObjectDatabase, tree: str | None, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(annotated commit id, note blob id)`` below a notes tree, any fan-out."""
    hex_len = odb.fmt.hex_len
    for name, entry in read_tree(odb, tree).items():
        full = prefix + name
        if entry.is_tree and len(name) == 2 and len(full) < hex_len:
            yield from note_entries(odb, entry.oid, full)
        elif not entry.is_tree and len(full) == hex_len:
            yield full, entry.oid


def build_notes_tree(odb: ObjectDatabase, notes: dict[str, str]) -> str | None:
    """The canonical notes tree for ``{commit id: note blob id}``: a level holding more
    than 256 notes is split into two-hex-digit subtrees, recursively. The layout depends
    only on the set of notes, and is what ``Notes.add`` produces incrementally."""
    if not notes:
        return None
    if len(notes) <= _SPLIT_AT or min(len(name) for name in notes) <= 2:
        entries = [TreeEntry(MODE_BLOB, name, oid) for name, oid in notes.items()]
    else:
        groups: dict[str, dict[str, str]] = {}
        for name, oid in notes.items():
            groups.setdefault(name[:2], {})[name[2:]] = oid
        entries = [TreeEntry(MODE_TREE, prefix, build_notes_tree(odb, group)) for prefix, group in groups.items()]
    return odb.write("tree", encode_tree(entries))


def merge_notes_trees(odb: ObjectDatabase, ours: str | None, theirs: str | None) -> str | None:
    """Union of two notes trees: each commit's lines merged as ``cat_sort_uniq``, then
    laid out canonically (so any order of merges gives the same tree)."""
    if ours == theirs or theirs is None:
        return ours
    merged = dict(note_entries(odb, ours))
    for commit, blob in note_entries(odb, theirs):
        mine = merged.get(commit)
        if mine is None or mine == blob:
            merged[commit] = blob
        else:
            lines = merge_note_lines(split_note(odb.read_typed(mine, "blob")), split_note(odb.read_typed(blob, "blob")))
            merged[commit] = odb.write("blob", lines)
    return build_notes_tree(odb, merged)


class Notes:
    """The prov notes of one repository."""

    def __init__(self, repo: GitRepository, ref: str = NOTES_REF) -> None:
        self.repo = repo
        self.ref = ref

    def tip(self) -> str | None:
        return self.repo.refs.read(self.ref)

    def _root(self, tip: str | None) -> str | None:
        if tip is None:
            return None
        try:
            return self.repo.read_commit(tip).tree
        except DataError as exc:
            raise DataError(f"{self.ref} does not point at a notes commit: {exc}; find its last good commit with "
                            f"'git reflog {self.ref}' and restore it with 'git update-ref {self.ref} <commit>'") from exc

    def _find(self, tree: str, name: str) -> str | None:
        entries = read_tree(self.repo.odb, tree)
        entry = entries.get(name)
        if entry is not None and not entry.is_tree:
            return entry.oid
        sub = entries.get(name[:2])
        if sub is not None and sub.is_tree and len(name) > 2:
            return self._find(sub.oid, name[2:])
        return None

    def read(self, commit: str, tip: str | None = None) -> list[bytes]:
        """The note lines attached to ``commit`` (empty when it has no note)."""
        blob = self.blob_of(commit, tip)
        return [] if blob is None else split_note(self.repo.odb.read_typed(blob, "blob"))

    def blob_of(self, commit: str, tip: str | None = None) -> str | None:
        """The id of the note blob attached to ``commit``, or None (nothing read of it)."""
        root = self._root(tip if tip is not None else self.tip())
        return None if root is None else self._find(root, commit)

    def items(self, tip: str | None = None) -> Iterator[tuple[str, str]]:
        """Every ``(annotated commit id, note blob id)``."""
        yield from note_entries(self.repo.odb, self._root(tip if tip is not None else self.tip()))

    def _insert(self, tree: str | None, name: str, lines: list[bytes]) -> str:
        odb = self.repo.odb
        entries = read_tree(odb, tree)
        sub = entries.get(name[:2])
        if name in entries and not entries[name].is_tree:
            entries[name] = TreeEntry(MODE_BLOB, name, self._merged_note(entries[name].oid, lines))
        elif sub is not None and sub.is_tree and len(name) > 2:
            entries[name[:2]] = TreeEntry(MODE_TREE, name[:2], self._insert(sub.oid, name[2:], lines))
        elif len(name) > 2 and any(e.is_tree and len(e.name) == 2 for e in entries.values()):
            # this level is already fanned out: a new note gets its own subtree too
            entries[name[:2]] = TreeEntry(MODE_TREE, name[:2], self._insert(None, name[2:], lines))
        else:
            entries[name] = TreeEntry(MODE_BLOB, name, self._merged_note(None, lines))
            notes = [e for e in entries.values() if not e.is_tree and len(e.name) == len(name)]
            if len(notes) > _SPLIT_AT and len(name) > 2:
                entries = self._split(entries, notes)
                tree = None  # every note of this level moved: no base to splice into
        return write_tree(odb, entries, tree, (name, name[:2]))

    def _merged_note(self, blob: str | None, lines: list[bytes]) -> str:
        """The blob of note ``blob`` (None: no note yet) with ``lines`` added.

        A note blob this process wrote is known to be canonical, so a few new lines
        are inserted in place (``add_note_line``) instead of splitting, sorting and
        joining every line of a note that may hold thousands of run links."""
        odb = self.repo.odb
        known: set[str] = odb.__dict__.setdefault("_canonical_notes", set())
        if blob is None:
            data = merge_note_lines(lines)
        else:
            old = odb.read_typed(blob, "blob")
            if blob in known and len(lines) <= 16 and all(b"\n" not in ln and ln.strip() for ln in lines):
                data = old
                for line in lines:
                    data = add_note_line(data, line)
            else:
                data = merge_note_lines(split_note(old), lines)
        oid = odb.write("blob", data)
        if len(known) > 10_000:
            known.clear()
        known.add(oid)
        return oid

    def _split(self, entries: dict[str, TreeEntry], notes: list[TreeEntry]) -> dict[str, TreeEntry]:
        """Move this level's notes into two-hex-digit subtrees."""
        groups: dict[str, list[TreeEntry]] = {}
        for note in notes:
            del entries[note.name]
            groups.setdefault(note.name[:2], []).append(note)
        for prefix, members in groups.items():
            existing = entries.get(prefix)
            sub = read_tree(self.repo.odb, existing.oid) if existing and existing.is_tree else {}
            for note in members:
                sub[note.name[2:]] = TreeEntry(MODE_BLOB, note.name[2:], note.oid)
            entries[prefix] = TreeEntry(MODE_TREE, prefix, write_tree(self.repo.odb, sub))
        return entries

    def add(self, lines_by_commit: dict[str, list[bytes]], message: str = "prov: add notes") -> str | None:
        """Merge lines into the notes of several commits in one notes commit."""
        return commit_on_ref(self.repo, *self.update(lines_by_commit, message))

    def update(self, lines_by_commit: dict[str, list[bytes]], message: str = "prov: add notes") -> RefUpdate:
        """The same change as a ``RefUpdate``, for ``commit_on_refs`` with other refs."""

        def build(tree: str | None, _tip: str | None) -> str | None:
            for commit, lines in sorted(lines_by_commit.items()):
                if lines:
                    tree = self._insert(tree, commit, lines)
            return tree

        return self.ref, build, message
