"""Object databases: the repository's ``objects/`` directory, and an in-memory twin.

The disk database reads loose objects and pack files (``store/pack_directory.py``) and writes
loose objects, or one pack per ``batch()`` (``store/packs.py``), exactly as git does, so
everything prov writes is read by ``git`` and passes ``git fsck --strict``. It is
deliberately small: importing dulwich's repository stack costs more than the whole
budget of a commit hook.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import zlib

from ..errors import DataError, MissingObjectError, ReadOnlyRepositoryError, WriteError
from .durability import LOOSE_OBJECT, Durability
from .objects import ObjectFormat
from .pack_directory import PackDirectory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from .config import GitConfig

__all__ = ["DiskObjectDatabase", "MemoryObjectDatabase", "ObjectDatabase"]

#: times a read rescans the pack directory after a listed pack vanished under it
_READ_RESCANS = 8


class ObjectDatabase:
    """What every object database offers; ids are lowercase hex strings."""

    fmt: ObjectFormat

    def read(self, oid: str) -> tuple[str, bytes]:
        raise NotImplementedError

    def contains(self, oid: str) -> bool:
        raise NotImplementedError

    def write(self, type_name: str, data: bytes) -> str:
        raise NotImplementedError

    def ids_with_prefix(self, prefix: str) -> set[str]:
        raise NotImplementedError

    def pack_positions(self, raw_ids: Sequence[bytes]) -> Sequence[int]:
        """For each raw id, a number that orders objects as they lie in this database's own
        packs (pack by pack, by offset), -1 for one held elsewhere (loose, alternates, in
        memory). Many objects are read fastest in this order (``index/reading.py``)."""
        return [-1] * len(raw_ids)

    def read_typed(self, oid: str, type_name: str) -> bytes:
        kind, data = self.read(oid)
        if kind != type_name:
            raise DataError(f"object {oid} is a {kind}, expected a {type_name}")
        return data

    def read_blobs(self, raw_ids: Sequence[bytes]) -> Iterator[bytes]:
        """The bytes of each blob of ``raw_ids`` (raw ids), in the order given: many blobs
        are read fastest in the order they lie in the packs (``pack_positions``). Raises
        as ``read_typed`` does, at the first blob that cannot be read."""
        for raw in raw_ids:
            yield self.read_typed(raw.hex(), "blob")

    def drop_pages(self) -> None:
        """Let go of the pages of the packs mapped so far (the system keeps them cached):
        after reading many objects, what was read no longer counts in this process's
        memory. Nothing to do in memory."""

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Collect this thread's writes and store them together when the outermost
        ``batch`` exits (on disk: one pack). Nothing to do in memory."""
        return contextlib.nullcontext()

    def flush(self) -> None:
        """Make every write of this thread's open batch durable now (before a ref
        update that reaches them); the batch stays open."""

    def maintain(self, config: GitConfig) -> None:
        """Housekeeping after a transaction (on disk: git's repack of the packs when
        they pile up)."""


class MemoryObjectDatabase(ObjectDatabase):
    """Objects in a dict: the fast twin used by unit tests.

    ``write_check``, when set, sees every new object before it is stored and may raise:
    the test suite sets it to an independent implementation (dulwich) that parses and
    ``check()``s the object and computes its id (``tests/oracles.py``). ``check=False``
    turns it off for one database.
    """

    #: ``(fmt, type_name, data, oid) -> None``; None outside the test suite
    write_check: Callable[[ObjectFormat, str, bytes, str], None] | None = None

    def __init__(self, fmt: ObjectFormat, *, check: bool = True) -> None:
        self.fmt = fmt
        self._objects: dict[str, tuple[str, bytes]] = {}
        self._check = check

    def read(self, oid: str) -> tuple[str, bytes]:
        try:
            return self._objects[oid]
        except KeyError:
            raise MissingObjectError(f"object {oid} is missing") from None

    def contains(self, oid: str) -> bool:
        return oid in self._objects

    def write(self, type_name: str, data: bytes) -> str:
        oid = self.fmt.hash_object(type_name, data)
        checker = MemoryObjectDatabase.write_check
        if checker is not None and self._check and oid not in self._objects:
            checker(self.fmt, type_name, data, oid)
        self._objects.setdefault(oid, (type_name, bytes(data)))
        return oid

    def ids_with_prefix(self, prefix: str) -> set[str]:
        return {oid for oid in self._objects if oid.startswith(prefix)}

    def all_ids(self) -> list[str]:
        return list(self._objects)


_DAMAGED = "run 'git fsck' to see what is damaged, and restore it from another clone (see docs/errors.md)"


class _Batch:
    """The objects one thread wrote inside ``batch()``, not yet in a pack."""

    __slots__ = ("depth", "objects")

    def __init__(self) -> None:
        self.depth = 0
        self.objects: dict[str, tuple[str, bytes]] = {}


class DiskObjectDatabase(ObjectDatabase):
    """A repository's ``objects/`` directory (plus its alternates).

    Writes outside ``batch()`` are loose objects; inside, they collect in memory (per
    thread, readable by that thread) and land as one pack when the outermost batch
    exits or on ``flush()`` (see ``store/packs.py``).
    """

    def __init__(self, path: str, fmt: ObjectFormat, *, _seen: frozenset[str] = frozenset()) -> None:
        self.path = path
        self.fmt = fmt
        #: the packs of ``objects/pack``, as this process last listed them
        self.pack_directory = PackDirectory(os.path.join(path, "pack"), fmt)
        self._alternates: list[DiskObjectDatabase] | None = None
        self._seen = _seen | {os.path.realpath(path)}
        self._folders: set[str] = set()
        self._batches: dict[int, _Batch] = {}
        #: which files are flushed (``core.fsync``); ``GitRepository.open`` sets it
        self.durability = Durability()

    # -- reading -------------------------------------------------------------
    def _loose_path(self, oid: str) -> str:
        return os.path.join(self.path, oid[:2], oid[2:])

    @property
    def alternates(self) -> list[DiskObjectDatabase]:
        if self._alternates is None:
            self._alternates = []
            try:
                with open(os.path.join(self.path, "info", "alternates"), encoding="utf-8") as f:
                    lines = [ln.strip() for ln in f]
            except FileNotFoundError:
                lines = []
            for line in lines:
                if not line or line.startswith("#"):
                    continue
                alt = line if os.path.isabs(line) else os.path.join(self.path, line)
                if os.path.realpath(alt) not in self._seen and os.path.isdir(alt):
                    self._alternates.append(DiskObjectDatabase(alt, self.fmt, _seen=self._seen))
        return self._alternates

    def pack_positions(self, raw_ids: Sequence[bytes]) -> Sequence[int]:
        return self.pack_directory.positions(raw_ids)[1]

    def drop_pages(self) -> None:
        self.pack_directory.drop_pages()

    def read_blobs(self, raw_ids: Sequence[bytes]) -> Iterator[bytes]:
        return self.pack_directory.read_blobs(raw_ids, self.read, lambda oid: self.read_typed(oid, "blob"))

    def _read_local(self, oid: str) -> tuple[str, bytes] | None:
        for attempt in range(_READ_RESCANS):
            try:
                return self._read_local_once(oid)
            except FileNotFoundError:
                # a pack listed a moment ago was deleted (a repack moved its objects
                # into a new pack first): rescan and look again, as git does; repacks
                # in a row (git's, one after another) can do it more than once
                if attempt == _READ_RESCANS - 1:
                    raise
                if attempt:
                    time.sleep(0.001 * 2**attempt)  # let the repack finish its removals
                self.pack_directory.rescan(with_data_only=True)
        return None

    def _read_local_once(self, oid: str) -> tuple[str, bytes] | None:
        # Packs already open first (no syscall; most objects of a real repository are
        # packed), then the loose file, then packs again after rescanning the pack
        # directory (a concurrent repack may have moved the object), as git does.
        found = self.pack_directory.find(oid, refresh=False)
        if found is not None:
            pack, offset = found
            return pack.read_at(offset, self.read)
        try:
            with open(self._loose_path(oid), "rb") as f:
                raw = zlib.decompress(f.read())
        except FileNotFoundError:
            pass
        except zlib.error as exc:
            raise DataError(f"object {oid} is corrupt ({exc}); {_DAMAGED}") from exc
        else:
            header, _, data = raw.partition(b"\x00")
            type_name, _, size = header.partition(b" ")
            if not size.isdigit() or int(size) != len(data) or not type_name.isalpha():
                raise DataError(f"object {oid} is corrupt (its header does not match its content); {_DAMAGED}")
            return type_name.decode("ascii"), data
        found = self.pack_directory.find(oid)
        if found is not None:
            pack, offset = found
            return pack.read_at(offset, self.read)
        return None

    def read(self, oid: str) -> tuple[str, bytes]:
        if not self.fmt.is_id(oid):
            raise DataError(f"{oid!r} is not a valid {self.fmt.name} object id ({self.fmt.hex_len} hex digits)")
        if self._batches:
            batch = self._batches.get(threading.get_ident())
            if batch is not None and oid in batch.objects:
                return batch.objects[oid]
        obj = self._read_local(oid)
        if obj is None:
            for alt in self.alternates:
                obj = alt._read_local(oid)
                if obj is not None:
                    break
            else:
                raise MissingObjectError(f"object {oid} is missing from {self.path}; run 'git fsck' to see what "
                                         "else is, and fetch it from a clone that has it (prov pull)")
        return obj

    def _contains_local(self, oid: str) -> bool:
        return os.path.exists(self._loose_path(oid)) or self.pack_directory.find(oid) is not None

    def contains(self, oid: str) -> bool:
        if self._batches:
            batch = self._batches.get(threading.get_ident())
            if batch is not None and oid in batch.objects:
                return True
        return self._contains_local(oid) or any(a._contains_local(oid) for a in self.alternates)

    def ids_with_prefix(self, prefix: str) -> set[str]:
        found: set[str] = set()
        for db in (self, *self.alternates):
            try:
                names = os.listdir(os.path.join(db.path, prefix[:2]))
            except FileNotFoundError:
                names = []
            found.update(prefix[:2] + n for n in names if (prefix[:2] + n).startswith(prefix))
            found |= db.pack_directory.ids_with_prefix(prefix)
        return {oid for oid in found if len(oid) == self.fmt.hex_len}

    # -- writing -------------------------------------------------------------
    def _known_without_rescan(self, oid: str) -> bool:
        """Loose, or in a pack already loaded: a duplicate loose copy is harmless, so a
        write does not rescan the pack directory for every new object."""
        if os.path.exists(self._loose_path(oid)):
            return True
        if self.pack_directory.packs is not None and self.pack_directory.find(oid, refresh=False) is not None:
            return True
        return any(a._contains_local(oid) for a in self.alternates)

    def write(self, type_name: str, data: bytes) -> str:
        """Write an object (if absent) and return its id: loose, or into the open batch."""
        oid = self.fmt.hash_object(type_name, data)
        batch = self._batches.get(threading.get_ident()) if self._batches else None
        if batch is not None:
            # no lookup on disk: a copy of an object already stored is harmless (git
            # reads the first it finds) and ``git repack`` drops it
            if oid not in batch.objects:
                batch.objects[oid] = (type_name, bytes(data))
            return oid
        if self._known_without_rescan(oid):
            return oid
        path = self._loose_path(oid)
        folder = os.path.dirname(path)
        tmp = os.path.join(self.path, f"tmp_obj_{os.getpid()}_{threading.get_ident()}_{oid[:12]}")
        try:
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            payload = zlib.compress(b"%s %d\x00" % (type_name.encode(), len(data)) + data, 1)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
            try:
                os.write(fd, payload)
                self.durability.sync(fd, LOOSE_OBJECT)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, path)
            except FileNotFoundError:  # a repack (ours, detached, or git's) pruned the emptied folder
                os.makedirs(folder, exist_ok=True)
                os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
                raise ReadOnlyRepositoryError(
                    f"cannot write to {self.path}: {exc.strerror}; run prov as a user who can write the repository"
                ) from exc
            raise WriteError(f"cannot write object to {self.path}: {exc.strerror}") from exc
        return oid

    @contextlib.contextmanager
    def batch(self):
        """Collect this thread's writes; the outermost exit writes them as one pack.
        When the block raises, they are still written (best effort, the error is the
        block's): no ref reaches them, but a caller may hold their ids (a run's buffered
        chunks and artifacts) and retry."""
        key = threading.get_ident()
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch()
        batch.depth += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            batch.depth -= 1
            if batch.depth == 0:
                try:
                    if ok:
                        self._flush_batch(batch)
                    else:
                        with contextlib.suppress(Exception):
                            self._flush_batch(batch)
                finally:
                    del self._batches[key]

    def flush(self) -> None:
        batch = self._batches.get(threading.get_ident()) if self._batches else None
        if batch is not None:
            self._flush_batch(batch)

    def _flush_batch(self, batch: _Batch) -> None:
        if not batch.objects:
            return
        from . import packs

        objects = [(oid, packs.pack_entry(kind, data)) for oid, (kind, data) in batch.objects.items()]
        pack_dir = os.path.join(self.path, "pack")
        try:
            # the objects of one command, git's loose objects in another form: flushed as
            # loose objects (docs/design/durability.md)
            idx_path = packs.write_pack(pack_dir, self.fmt, objects, self.durability, (LOOSE_OBJECT, LOOSE_OBJECT))
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno == errno.EROFS:
                raise ReadOnlyRepositoryError(
                    f"cannot write to {self.path}: {exc.strerror}; run prov as a user who can write the repository"
                ) from exc
            raise WriteError(f"cannot write a pack to {pack_dir}: {exc.strerror}") from exc
        batch.objects = {}
        self.pack_directory.added(idx_path)  # visible to this process at once, without a rescan

    def maintain(self, config: GitConfig) -> None:
        """After a transaction's refs moved: git's geometric repack when prov's packs
        pile up (``PackDirectory.maintain``)."""
        self.pack_directory.maintain(config)

    def all_ids(self) -> list[str]:
        """Every object id in this database (not its alternates); for verification."""
        ids: set[str] = set()
        for sub in os.listdir(self.path):
            if len(sub) == 2:
                ids.update(sub + n for n in os.listdir(os.path.join(self.path, sub)))
        ids |= self.pack_directory.ids()
        return sorted(ids)

