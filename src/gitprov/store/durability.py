"""Which files prov flushes to disk: git's ``core.fsync``, ``core.fsyncMethod`` and the
legacy ``core.fsyncObjectFiles``, read as git reads them (git's ``environment.c``).

A component is a kind of file git may flush (``fsync``) before renaming it into place:
``loose-object``, ``pack`` (a ``.pack``), ``pack-metadata`` (its ``.idx``),
``commit-graph``, ``index`` and ``reference`` (a ref's lock file, ``packed-refs``).
Unset, git flushes packs, their indexes and the commit-graph, not loose objects nor refs,
so a ``git commit`` costs no ``fsync``. A prov transaction writes the objects ``git
commit`` would write loose as one small pack, flushed as loose objects: none by default
either; the packs a merge writes are packs. Like git, prov never flushes a directory
nor a reflog. See ``docs/design/durability.md``.
"""

from __future__ import annotations

import os
import sys

from .config import GitConfig

__all__ = [
    "COMMIT_GRAPH",
    "DEFAULT_COMPONENTS",
    "INDEX",
    "LOOSE_OBJECT",
    "PACK",
    "PACK_METADATA",
    "REFERENCE",
    "Durability",
    "parse_fsync_components",
]

LOOSE_OBJECT = 1 << 0
PACK = 1 << 1
PACK_METADATA = 1 << 2
COMMIT_GRAPH = 1 << 3
INDEX = 1 << 4
REFERENCE = 1 << 5

_OBJECTS = LOOSE_OBJECT | PACK
_DERIVED_METADATA = PACK_METADATA | COMMIT_GRAPH
_COMMITTED = _OBJECTS | REFERENCE
#: what git flushes when ``core.fsync`` is unset (``FSYNC_COMPONENTS_DEFAULT``)
DEFAULT_COMPONENTS = (_OBJECTS | _DERIVED_METADATA) & ~LOOSE_OBJECT

#: git's table, in git's order: a word names every entry it is a prefix of
_NAMES = (
    ("loose-object", LOOSE_OBJECT),
    ("pack", PACK),
    ("pack-metadata", PACK_METADATA),
    ("commit-graph", COMMIT_GRAPH),
    ("index", INDEX),
    ("objects", _OBJECTS),
    ("reference", REFERENCE),
    ("derived-metadata", _DERIVED_METADATA),
    ("committed", _COMMITTED),
    ("added", _COMMITTED | INDEX),
    ("all", _COMMITTED | INDEX | _DERIVED_METADATA),
)
_METHODS = ("fsync", "writeout-only", "batch")


def parse_fsync_components(value: str) -> int:
    """The components one ``core.fsync`` value names, exactly as git parses it.

    The set starts from git's default; ``none`` as the rest of the value empties it; a
    word names every component whose name it begins (``pack`` is also
    ``pack-metadata``, ``ref`` is ``reference``); ``-word`` removes, but a component
    both added and removed stays; unknown words and what follows an empty word are
    ignored (git warns)."""
    current, positive, negative = DEFAULT_COMPONENTS, 0, 0
    rest = value
    while True:
        rest = rest.lstrip(", \t\n\r")
        word, comma, after = rest.partition(",")
        if rest == "none":
            current = 0
        else:
            negated = word.startswith("-")
            word = word[1:] if negated else word
            if not word:
                break
            for name, bits in _NAMES:
                if name.startswith(word):
                    if negated:
                        negative |= bits
                    else:
                        positive |= bits
        if not comma:
            break
        rest = after
    return (current & ~negative) | positive


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


class Durability:
    """The components to flush and how; ``sync(fd, component)`` flushes one file."""

    __slots__ = ("components", "method")

    def __init__(self, components: int = DEFAULT_COMPONENTS, method: str = "fsync") -> None:
        self.components = components
        self.method = method

    @classmethod
    def from_config(cls, config: GitConfig) -> Durability:
        """Read from a ``GitConfig`` (once per repository open). ``core.fsyncObjectFiles``
        adds ``loose-object`` (it never removes it); ``GIT_TEST_FSYNC=0`` turns every
        flush off, as in git (its test suite sets it)."""
        value = config.get("core.fsync")
        components = DEFAULT_COMPONENTS if value is None else parse_fsync_components(value)
        if config.get_bool("core.fsyncObjectFiles"):
            components |= LOOSE_OBJECT
        if not _env_bool("GIT_TEST_FSYNC", True):
            components = 0
        method = config.get("core.fsyncMethod") or "fsync"
        return cls(components, method if method in _METHODS else "fsync")

    def wants(self, component: int) -> bool:
        return bool(self.components & component)

    def sync(self, fd: int, component: int) -> None:
        """Flush the open file ``fd`` if ``component`` is configured (``OSError`` on failure).

        ``fsync`` and ``batch`` are a full flush (git's batch mode differs only for loose
        objects written inside a bulk transaction, which prov never writes: its batches
        are packs). ``writeout-only`` is a full flush too, except on macOS where git's
        writeout-only is ``fsync()`` and its full flush ``F_FULLFSYNC``: Python has no
        ``sync_file_range``, and flushing more than asked is never less durable."""
        if not self.components & component:
            return
        if sys.platform == "darwin" and self.method != "writeout-only":
            import fcntl

            try:
                fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
                return
            except OSError:  # not every file system has it: git falls back to fsync too
                pass
        os.fsync(fd)

    def __repr__(self) -> str:
        names = [name for name, bits in _NAMES[:5] + _NAMES[6:7] if self.components & bits]
        return f"Durability({','.join(names) or 'none'}; {self.method})"
