"""Reading and editing nested trees by path, writing only the trees that change.

Trees are immutable, so each is cached per object database: decoded, and for a large
tree this process wrote, encoded in parts too, so that the next edit of it splices in
the entries that changed instead of sorting and encoding them all again."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable

from .objects import (
    MODE_BLOB,
    MODE_TREE,
    TreeEntry,
    decode_tree,
    encode_tree,
    encode_tree_entry,
    tree_sort_key,
)
from .odb import ObjectDatabase

__all__ = ["build_tree", "edit_tree", "merge_trees", "read_path", "read_tree", "remember_tree", "walk_blobs", "write_tree"]


_CACHE_LIMIT = 20_000  # decoded trees kept per object database
_ENCODED_LIMIT = 1_000  # encodings kept per object database (of trees it wrote)
_SPLICE_FROM = 32  # entries: a smaller tree is encoded whole, cheaper than keeping parts

#: a tree's encoding in git's canonical order: ``(sort keys, encoded entries)``, the
#: entries joined are the tree object
Encoding = tuple[list[bytes], list[bytes]]


def read_tree(odb: ObjectDatabase, oid: str | None, *, keep: bool = True) -> dict[str, TreeEntry]:
    """The entries of tree ``oid`` (a fresh dict the caller may change).

    Trees are immutable, so decoded ones are cached per object database: a merge or a
    validation that walks the same shards several times decodes each once. ``keep``
    False: not cached (a walk of every shard of a big ledger, read once, would hold
    them all: ~56 MB at 100,000 runs)."""
    if oid is None:
        return {}
    cache = odb.__dict__.setdefault("_decoded_trees", {})
    entries = cache.get(oid)
    if entries is None:
        if not keep:
            return decode_tree(odb.read_typed(oid, "tree"), odb.fmt)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        entries = cache[oid] = decode_tree(odb.read_typed(oid, "tree"), odb.fmt)
    return dict(entries)


def remember_tree(odb: ObjectDatabase, oid: str, entries: dict[str, TreeEntry]) -> str:
    """Put a tree just written into the decoded-tree cache (the caller no longer
    changes ``entries``): the next transaction reads it back without decoding."""
    cache = odb.__dict__.setdefault("_decoded_trees", {})
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[oid] = entries
    return oid


def write_tree(odb: ObjectDatabase, entries: dict[str, TreeEntry], base: str | None = None, changed: Iterable[str] = ()) -> str:
    """Write a tree of ``entries`` and remember it decoded (and encoded, when large).

    ``base``: a tree that ``entries`` differ from at most at the names ``changed``.
    When this process wrote ``base``, its encoding is reused with those entries spliced
    in, instead of sorting and encoding every entry again (a ledger's ``runs/`` tree
    has 256 of them and changes in one)."""
    encodings: dict[str, Encoding] = odb.__dict__.setdefault("_encoded_trees", {})
    known = encodings.get(base) if base is not None else None
    if known is None and len(entries) < _SPLICE_FROM:
        return remember_tree(odb, odb.write("tree", encode_tree(entries)), entries)
    encoding = _encode(entries.values()) if known is None else _splice(known, entries, changed)
    oid = odb.write("tree", b"".join(encoding[1]))
    if len(encodings) >= _ENCODED_LIMIT:
        encodings.clear()
    encodings[oid] = encoding
    return remember_tree(odb, oid, entries)


def _encode(entries: Iterable[TreeEntry]) -> Encoding:
    """The encoding of a tree of ``entries`` (``objects.encode_tree``, kept in parts)."""
    ordered = sorted(entries, key=tree_sort_key)
    return list(map(tree_sort_key, ordered)), list(map(encode_tree_entry, ordered))


def _splice(encoding: Encoding, entries: dict[str, TreeEntry], changed: Iterable[str]) -> Encoding:
    """``encoding`` with its entries named ``changed`` replaced by those of ``entries``
    (or removed, where ``entries`` has none)."""
    keys, parts = list(encoding[0]), list(encoding[1])
    for name in changed:
        raw = name.encode("utf-8", "surrogateescape")
        for key in (raw, raw + b"/"):  # as a blob, as a subtree
            at = bisect_left(keys, key)
            if at < len(keys) and keys[at] == key:
                del keys[at], parts[at]
        entry = entries.get(name)
        if entry is not None:
            key = tree_sort_key(entry)
            at = bisect_left(keys, key)
            keys.insert(at, key)
            parts.insert(at, encode_tree_entry(entry))
    return keys, parts


def read_path(odb: ObjectDatabase, tree: str | None, path: str) -> TreeEntry | None:
    """The entry at ``a/b/c`` below ``tree``, or None."""
    entry: TreeEntry | None = None
    for part in path.split("/"):
        if tree is None:
            return None
        entry = read_tree(odb, tree).get(part)
        if entry is None:
            return None
        tree = entry.oid if entry.is_tree else None
    return entry


def edit_tree(odb: ObjectDatabase, tree: str | None, changes: dict[str, bytes | str | None]) -> str | None:
    """Apply ``{path: blob bytes | existing blob id | None to delete}`` below ``tree``.

    Returns the new tree id, or None when the result is empty.
    """
    entries = read_tree(odb, tree)
    nested: dict[str, dict[str, bytes | str | None]] = {}
    changed = set()
    for path, data in changes.items():
        head, sep, rest = path.partition("/")
        changed.add(head)
        if sep:
            nested.setdefault(head, {})[rest] = data
        elif data is None:
            entries.pop(head, None)
        else:
            oid = data if isinstance(data, str) else odb.write("blob", data)
            entries[head] = TreeEntry(MODE_BLOB, head, oid)
    for name, sub_changes in nested.items():
        current = entries.get(name)
        sub = edit_tree(odb, current.oid if current and current.is_tree else None, sub_changes)
        if sub is None:
            entries.pop(name, None)
        else:
            entries[name] = TreeEntry(MODE_TREE, name, sub)
    if not entries:
        return None
    return write_tree(odb, entries, tree, changed)


def walk_blobs(odb: ObjectDatabase, tree: str | None, prefix: str = ""):
    """Yield ``(path, blob id)`` for every blob below ``tree``."""
    for name, entry in read_tree(odb, tree).items():
        path = f"{prefix}{name}"
        if entry.is_tree:
            yield from walk_blobs(odb, entry.oid, path + "/")
        else:
            yield path, entry.oid


def build_tree(odb: ObjectDatabase, blobs: dict[str, str]) -> str | None:
    """A tree holding ``{path: blob id}`` (None when empty)."""
    return edit_tree(odb, None, dict(blobs))


#: ``resolve(path, ours, theirs)`` for entries that differ: the entry to keep, or None
#: to merge two subtrees entry by entry.
Resolver = Callable[[str, TreeEntry, TreeEntry], "TreeEntry | None"]


def merge_trees(odb: ObjectDatabase, ours: str | None, theirs: str | None, resolve: Resolver, prefix: str = "") -> str | None:
    """Union of two trees: entries on one side only are kept, equal entries are kept,
    entries that differ go to ``resolve``. Identical subtrees are never read."""
    if ours == theirs or theirs is None:
        return ours
    if ours is None:
        return theirs
    entries = read_tree(odb, ours)
    for name, other in read_tree(odb, theirs).items():
        mine = entries.get(name)
        if mine is None:
            entries[name] = other
        elif mine != other:
            path = prefix + name
            chosen = resolve(path, mine, other)
            if chosen is None:
                if not (mine.is_tree and other.is_tree):
                    raise ValueError(f"no rule to merge {path}")
                sub = merge_trees(odb, mine.oid, other.oid, resolve, path + "/")
                chosen = TreeEntry(MODE_TREE, name, sub)
            entries[name] = chosen._replace(name=name)
    return write_tree(odb, entries)
