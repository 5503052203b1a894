"""A repository's ``objects/pack`` directory as one process sees it.

The packs listed, reused across rescans (a pack is named by its checksum and never
changes); rescans while git's repack replaces packs under a reader; objects found by
id or read many at once in the order they lie on disk; and the cue for git's own
maintenance when prov's one-pack-per-transaction packs pile up. Reading one pack is
``store/packfile.py``; writing one is ``store/packs.py``.
"""

from __future__ import annotations

import os

from .packfile import Pack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from .config import GitConfig
    from .objects import ObjectFormat

__all__ = ["PackDirectory"]

#: listings of the directory tried while a repack removes packs under it
_RESCANS = 80
#: ``positions``: a pack's number in the high bits, the offset in it below
_PACK_SHIFT = 48
_OFFSET_MASK = (1 << _PACK_SHIFT) - 1
#: ``read_blobs`` lets go of the pack pages it mapped after this many blobs (~8 MB of them)
_DROP_PAGES_EVERY = 8192


class PackDirectory:
    """The packs of one ``objects/pack`` directory, as last listed (``packs``; None
    until the first listing)."""

    def __init__(self, path: str, fmt: ObjectFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.packs: list[Pack] | None = None
        self._quiet_below = 0  # maintain() has nothing to do while this many packs or fewer are known

    def listing(self, *, with_data_only: bool = False) -> list[Pack]:
        """The packs of the directory now. A pack whose index vanished between the listing
        and its reading was repacked into a newer pack (written before the old ones are
        removed) that the listing may have missed: the directory is listed again.
        ``with_data_only`` also leaves out a pack whose ``.pack`` is gone while its
        ``.idx`` is still there: git removes a repacked pack's data before its index."""
        # An index already read is reused: a refresh (every write checks the packs)
        # only reads new packs.
        known = {p.pack_path: p for p in self.packs or ()}
        packs: list[Pack] = []
        for _ in range(_RESCANS):
            try:
                # pack-*.idx only, as git reads them: git's repack writes ``.tmp-*`` files
                # first and renames them, so one read now may be gone a moment later
                names = sorted(n for n in os.listdir(self.path) if n.startswith("pack-") and n.endswith(".idx"))
            except FileNotFoundError:
                names = []
            packs = []
            for n in names:
                data_path = os.path.join(self.path, n[:-4] + ".pack")
                if with_data_only and not os.path.exists(data_path):
                    continue
                pack = known.get(data_path)
                if pack is None:
                    try:
                        pack = known[data_path] = Pack(os.path.join(self.path, n), self.fmt)
                    except FileNotFoundError:
                        break
                packs.append(pack)
            else:
                return packs
        return packs

    def rescan(self, *, with_data_only: bool = False) -> list[Pack]:
        """List the directory again (``listing``) and keep what it found."""
        self.packs = self.listing(with_data_only=with_data_only)
        return self.packs

    def find(self, oid: str, *, refresh: bool = True) -> tuple[Pack, int] | None:
        """The pack holding ``oid`` and its offset there: in the packs known, then (with
        ``refresh``) in those of a new listing; None if in neither."""
        for again in (False, True) if refresh else (False,):
            if self.packs is None or again:
                self.rescan()
            for pack in self.packs or ():
                off = pack.offset_of(oid)
                if off is not None:
                    return pack, off
        return None

    def added(self, idx_path: str) -> None:
        """This process wrote the pack of ``idx_path``: make it known without a rescan."""
        if self.packs is None:
            self.rescan()
        elif all(p.pack_path != idx_path[:-4] + ".pack" for p in self.packs):
            try:
                self.packs.append(Pack(idx_path, self.fmt))
            except FileNotFoundError:  # a repack rolled it up already
                self.rescan()

    def positions(self, raw_ids: Sequence[bytes]) -> tuple[list[Pack], Sequence[int]]:
        """The packs now, and for each raw id a number ordering the objects as they lie
        in them (pack by pack, by offset); -1 for one in none of them."""
        from array import array

        by_id = array("l", sorted(range(len(raw_ids)), key=raw_ids.__getitem__))
        where = array("q", [-1]) * len(raw_ids)  # 8 bytes an id, not an integer object each
        packs = self.rescan()
        # the largest pack first, and each next one asked only for the ids not found yet
        # (asked for every id, a ledger's two small packs doubled a cold build's lookups)
        for number in sorted(range(len(packs)), key=lambda n: -packs[n].count):
            if not by_id:
                break
            left = array("l")
            for i, offset in zip(by_id, packs[number].offsets_of([raw_ids[i] for i in by_id]), strict=True):
                if offset >= 0:
                    where[i] = number << _PACK_SHIFT | offset
                else:
                    left.append(i)
            by_id = left
        return packs, where

    def drop_pages(self) -> None:
        """``Pack.drop_pages`` of every pack known."""
        for pack in self.packs or ():
            pack.drop_pages()

    def read_blobs(self, raw_ids: Sequence[bytes], read: Callable[[str], tuple[str, bytes]],
                   read_blob: Callable[[str], bytes]) -> Iterator[bytes]:
        """The bytes of each blob of ``raw_ids``, in the order given: each found in the
        packs at once is read from its pack keeping it as a delta base
        (``Pack.read_kept``; ``read`` finds bases held elsewhere); anything else (loose,
        in an alternate, in a pack removed since) through ``read_blob``."""
        from ..errors import DataError

        packs, where = self.positions(raw_ids)
        for n, (raw, at) in enumerate(zip(raw_ids, where, strict=True), 1):
            if n % _DROP_PAGES_EVERY == 0:
                for pack in packs:
                    pack.drop_pages()
            if at >= 0:
                try:
                    kind, data = packs[at >> _PACK_SHIFT].read_kept(at & _OFFSET_MASK, read)
                except FileNotFoundError:  # a repack removed the pack: find the object again
                    pass
                else:
                    if kind != "blob":
                        raise DataError(f"object {raw.hex()} is a {kind}, expected a blob")
                    yield data
                    continue
            yield read_blob(raw.hex())

    def ids_with_prefix(self, prefix: str) -> set[str]:
        """The ids in the packs now that start with ``prefix``."""
        found: set[str] = set()
        for pack in self.rescan():
            found |= pack.ids_with_prefix(prefix)
        return found

    def ids(self) -> set[str]:
        """Every id in the packs now."""
        return {raw.hex() for pack in self.listing() for raw in pack.ids()}

    def maintain(self, config: GitConfig) -> None:
        """When more than ``prov.autoPackLimit`` packs lie outside a geometric
        progression, have git roll them up, detached (``store/maintenance.py``). Reads
        the packs known; the directory is listed again only when they say a repack is
        due."""
        known = self.packs
        if not known or len(known) <= self._quiet_below:
            return
        from . import packs

        limit = packs.auto_pack_limit(config)
        if limit is None:  # off (the config is read again at the next transaction)
            return
        rolled = packs.packs_to_roll_up(p.count for p in known)
        if rolled > limit:  # the list may be stale (a repack removed packs): look again
            known = self.rescan()
            try:
                names = set(os.listdir(self.path))
            except OSError:
                names = set()
            # git leaves kept and cruft packs out of the progression
            rolled = packs.packs_to_roll_up(p.count for p in known if not any(
                os.path.basename(p.pack_path[:-5]) + ext in names for ext in (".keep", ".mtimes")))
            if rolled > limit:
                from . import maintenance

                objects_dir = os.path.dirname(self.path)
                maintenance.start_repack(os.path.dirname(objects_dir), write_midx="multi-pack-index" in names,
                                         pack_dir=self.path, limit=limit)
                self._quiet_below = len(known) + max(1, limit // 2)  # started, or one runs already
                return
        self._quiet_below = len(known) + limit - rolled
