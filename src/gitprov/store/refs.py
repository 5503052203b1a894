"""Refs: reading loose and packed refs, and compare-and-swap updates.

Updates follow git's own protocol: take ``<ref>.lock`` exclusively, check the current
value is the expected one, write the new value into the lock file and rename it over
the ref. Objects are always written before the ref update that makes them reachable.
"""

from __future__ import annotations

import contextlib
import os
import time

from ..errors import ConcurrentUpdateError, DataError, ReadOnlyRepositoryError, WriteError

__all__ = ["DiskRefs", "MemoryRefs", "Refs"]

_LOCK_WAIT_SECONDS = 5.0


class Refs:
    """What every refs container offers. Values are object ids (hex)."""

    #: seconds an update waits for another process's ``<ref>.lock`` (on disk)
    lock_wait = _LOCK_WAIT_SECONDS

    @contextlib.contextmanager
    def lock_wait_at_most(self, seconds: float):
        """Within the block, updates give up on a held ref lock after ``seconds``."""
        saved = self.lock_wait
        self.lock_wait = min(saved, seconds)
        try:
            yield
        finally:
            self.lock_wait = saved

    def read(self, name: str) -> str | None:
        """The object id ``name`` points at (symbolic refs followed), or None."""
        raise NotImplementedError

    def symbolic_target(self, name: str) -> str | None:
        """The ref a symbolic ref (``HEAD``) points to, or None."""
        raise NotImplementedError

    def list(self, prefix: str = "refs/") -> dict[str, str]:
        raise NotImplementedError

    def compare_and_swap(self, name: str, old: str | None, new: str) -> bool:
        """Point ``name`` at ``new`` if it still points at ``old``; False otherwise."""
        raise NotImplementedError


class MemoryRefs(Refs):
    """Refs in a dict: the fast twin used by unit tests."""

    def __init__(self) -> None:
        self._refs: dict[str, str] = {}
        self._symbolic: dict[str, str] = {}

    def set_symbolic(self, name: str, target: str) -> None:
        self._symbolic[name] = target

    def read(self, name: str) -> str | None:
        name = self._symbolic.get(name, name)
        return self._refs.get(name)

    def symbolic_target(self, name: str) -> str | None:
        return self._symbolic.get(name)

    def list(self, prefix: str = "refs/") -> dict[str, str]:
        return {k: v for k, v in sorted(self._refs.items()) if k.startswith(prefix)}

    def compare_and_swap(self, name: str, old: str | None, new: str) -> bool:
        if self._refs.get(name) != old:
            return False
        self._refs[name] = new
        return True


class DiskRefs(Refs):
    """The refs of an on-disk repository (loose files plus ``packed-refs``)."""

    def __init__(self, git_dir: str, common_dir: str) -> None:
        self.git_dir = git_dir
        self.common_dir = common_dir
        self._packed: dict[str, str] | None = None
        self._packed_stamp: tuple[int, int] | None = None

    def _path(self, name: str) -> str:
        base = self.git_dir if "/" not in name else self.common_dir
        return os.path.join(base, *name.split("/"))

    def _packed_refs(self) -> dict[str, str]:
        path = os.path.join(self.common_dir, "packed-refs")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._packed, self._packed_stamp = {}, None
            return self._packed
        stamp = (st.st_mtime_ns, st.st_size)
        if self._packed is None or stamp != self._packed_stamp:
            refs: dict[str, str] = {}
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                for line in f:
                    if line.startswith(("#", "^")) or not line.strip():
                        continue
                    oid, _, ref = line.rstrip("\n").partition(" ")
                    refs[ref] = oid
            self._packed, self._packed_stamp = refs, stamp
        return self._packed

    def _read_raw(self, name: str) -> str | None:
        # os.open/os.read, not open(): a ref is read several times a run, and a file
        # object costs twice the system calls (fstat, ioctl, lseek) for 41 bytes
        try:
            fd = os.open(self._path(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError):
            return self._packed_refs().get(name)
        try:
            data = os.read(fd, 4096)
        except IsADirectoryError:
            return self._packed_refs().get(name)
        finally:
            os.close(fd)
        return data.decode("utf-8", "surrogateescape").strip()

    def symbolic_target(self, name: str) -> str | None:
        raw = self._read_raw(name)
        if raw is not None and raw.startswith("ref:"):
            return raw[4:].strip()
        return None

    def read(self, name: str) -> str | None:
        for _ in range(10):
            raw = self._read_raw(name)
            if raw is None or not raw.startswith("ref:"):
                return raw or None
            name = raw[4:].strip()
        raise DataError(f"symbolic ref loop at {name}")

    def list(self, prefix: str = "refs/") -> dict[str, str]:
        found = {k: v for k, v in self._packed_refs().items() if k.startswith(prefix)}
        root = os.path.join(self.common_dir, "refs")
        for dirpath, _dirs, files in os.walk(root):
            for fname in files:
                if fname.endswith(".lock"):
                    continue
                full = os.path.join(dirpath, fname)
                name = "refs/" + os.path.relpath(full, root).replace(os.sep, "/")
                if name.startswith(prefix):
                    value = self.read(name)
                    if value:
                        found[name] = value
        return dict(sorted(found.items()))

    def compare_and_swap(self, name: str, old: str | None, new: str) -> bool:
        path = self._path(name)
        lock = path + ".lock"
        deadline = time.monotonic() + self.lock_wait
        delay = 0.001
        while True:
            try:
                try:
                    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileNotFoundError:  # a new ref directory (or git pruned an empty one)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise ConcurrentUpdateError(
                        f"{name} is locked by another process ({lock} exists); "
                        "if no git or prov process is running, remove that file"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except PermissionError as exc:
                raise ReadOnlyRepositoryError(
                    f"cannot update {name}: permission denied; run prov as a user who can write the repository"
                ) from exc
            except OSError as exc:
                raise WriteError(f"cannot update {name}: {exc.strerror}") from exc
        try:
            os.write(fd, new.encode("ascii") + b"\n")
            os.close(fd)
            fd = -1
            if self.read(name) != old:
                os.remove(lock)
                return False
            os.replace(lock, path)
            return True
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(lock)
            raise WriteError(f"cannot update {name}: {exc.strerror}") from exc
