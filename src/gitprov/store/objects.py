"""Git object formats and the encoding of blobs, trees and commits.

Pure functions over bytes: no files, no dulwich. Object ids are hex strings computed
with the repository's own hash (SHA-1 or SHA-256), never a default.
"""

from __future__ import annotations

from collections import namedtuple

__all__ = [
    "SHA1",
    "SHA256",
    "Commit",
    "ObjectFormat",
    "TreeEntry",
    "format_named",
    "decode_tree",
    "encode_tree",
    "encode_tree_entry",
    "tree_sort_key",
    "decode_commit",
    "encode_commit",
    "MODE_BLOB",
    "MODE_TREE",
]

MODE_BLOB = "100644"
MODE_TREE = "40000"


class ObjectFormat(namedtuple("ObjectFormat", "name raw_len")):
    """A repository's hash algorithm (``extensions.objectformat``): ``name`` (str),
    ``raw_len`` (bytes in a binary id). A namedtuple, not ``typing.NamedTuple``:
    importing ``typing`` would cost the commit hook several ms."""

    __slots__ = ()

    @property
    def hex_len(self) -> int:
        return self.raw_len * 2

    def hash_object(self, type_name: str, data: bytes) -> str:
        """The id git gives an object of ``type_name`` holding ``data``."""
        import hashlib  # here, not at the top: only writes hash (~3 ms off `prov show`)

        h = hashlib.new(self.name)
        h.update(b"%s %d\x00" % (type_name.encode(), len(data)))
        h.update(data)
        return h.hexdigest()

    def is_id(self, text: str) -> bool:
        """A full lowercase hex id of this format (what refs and trees hold)."""
        return len(text) == self.hex_len and not text.strip("0123456789abcdef")


SHA1 = ObjectFormat("sha1", 20)
SHA256 = ObjectFormat("sha256", 32)


def format_named(name: str) -> ObjectFormat:
    """The object format for a value of ``extensions.objectformat``."""
    name = name.lower()
    if name == "sha1":
        return SHA1
    if name == "sha256":
        return SHA256
    raise ValueError(f"unknown object format {name!r}")


class TreeEntry(namedtuple("TreeEntry", "mode name oid")):
    """One tree entry: ``mode`` (``100644``, ``40000``…), ``name``, ``oid`` (hex)."""

    __slots__ = ()

    @property
    def is_tree(self) -> bool:
        return self.mode == MODE_TREE


def decode_tree(data: bytes, fmt: ObjectFormat) -> dict[str, TreeEntry]:
    """Parse a tree object into ``{name: entry}``."""
    entries: dict[str, TreeEntry] = {}
    pos, end, size = 0, len(data), fmt.raw_len
    while pos < end:
        sp = data.index(b" ", pos)
        nul = data.index(b"\x00", sp)
        mode = data[pos:sp].decode("ascii")
        name = data[sp + 1 : nul].decode("utf-8", "surrogateescape")
        oid = data[nul + 1 : nul + 1 + size].hex()
        if len(oid) != fmt.hex_len:
            raise ValueError("truncated tree entry")
        entries[name] = TreeEntry(mode, name, oid)
        pos = nul + 1 + size
    return entries


def tree_sort_key(entry: TreeEntry) -> bytes:
    """Where an entry goes in git's canonical order: its name as bytes, ``/`` appended
    for a subtree; entries sort by these keys compared as bytes."""
    name = entry.name.encode("utf-8", "surrogateescape")
    return name + b"/" if entry.mode == MODE_TREE else name


def encode_tree_entry(entry: TreeEntry) -> bytes:
    """One entry as a tree object holds it: ``<mode> <name>\\0<raw id>``."""
    return b"%s %s\x00" % (entry.mode.encode(), entry.name.encode("utf-8", "surrogateescape")) + bytes.fromhex(entry.oid)


def encode_tree(entries: dict[str, TreeEntry] | list[TreeEntry]) -> bytes:
    """Serialize tree entries in git's canonical order."""
    values = entries.values() if isinstance(entries, dict) else entries
    return b"".join(map(encode_tree_entry, sorted(values, key=tree_sort_key)))


class Commit(namedtuple("Commit", "tree parents author committer message")):
    """The headers prov reads: ``tree``, ``parents`` (tuple of ids), ``author`` and
    ``committer`` lines, ``message``."""

    __slots__ = ()

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]

    @property
    def committer_time(self) -> int:
        return int(self.committer.rsplit(" ", 2)[-2])


def decode_commit(data: bytes) -> Commit:
    """Parse the headers git-prov needs from a commit object."""
    head, _, message = data.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    author = committer = ""
    for line in head.split(b"\n"):
        if line.startswith(b" "):  # continuation of a multi-line header (gpgsig)
            continue
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode("ascii")
        elif key == b"parent":
            parents.append(value.decode("ascii"))
        elif key == b"author":
            author = value.decode("utf-8", "replace")
        elif key == b"committer":
            committer = value.decode("utf-8", "replace")
    if not tree:
        raise ValueError("commit has no tree")
    return Commit(tree, tuple(parents), author, committer, message.decode("utf-8", "replace"))


def encode_commit(
    tree: str, parents: list[str] | tuple[str, ...], identity: str, message: str
) -> bytes:
    """A commit object; ``identity`` is ``"Name <email> <epoch> <+hhmm>"``."""
    lines = [f"tree {tree}"]
    lines += [f"parent {p}" for p in parents]
    lines += [f"author {identity}", f"committer {identity}"]
    if not message.endswith("\n"):
        message += "\n"
    return ("\n".join(lines) + "\n\n" + message).encode("utf-8")
