"""Refs: reading loose and packed refs, compare-and-swap updates, and reflogs.

Updates follow git's own protocol: take ``<ref>.lock`` exclusively, check the current
value is the expected one, write the new value into the lock file (flushed when
``core.fsync`` names ``reference``), append the reflog entry, and rename the lock over
the ref. Objects are always written before the ref update that makes them reachable.

Reflogs are git's ``logs/<ref>`` files, one line per update (``<old> <new> <committer>
\t<message>``). ``core.logAllRefUpdates`` decides which missing logs an update creates
(``reflog_mode``); an existing log is always appended to, as git does. Deleting a ref
deletes its log.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import namedtuple
from collections.abc import Callable

from ..errors import ConcurrentUpdateError, DataError, ReadOnlyRepositoryError, WriteError
from .durability import REFERENCE, Durability

__all__ = ["DiskRefs", "MemoryRefs", "ReflogEntry", "Refs", "reflog_mode"]

_LOCK_WAIT_SECONDS = 5.0
#: refs whose missing log an update creates with ``core.logAllRefUpdates=true``: git's
#: own (``should_autocreate_reflog``: branches, remote-tracking branches, notes, HEAD)
#: and prov's (its ledger, keep chain and remotes' copies are history a user may need)
_LOGGED_WITH_TRUE = ("refs/heads/", "refs/remotes/", "refs/notes/", "refs/prov/", "refs/prov-remotes/")


# (not typing.NamedTuple: the commit hook's path never imports typing)
ReflogEntry = namedtuple("ReflogEntry", ["old", "new", "committer", "message"])
ReflogEntry.__doc__ = """One line of a reflog: ``old`` is all zeros when the update created the ref;
``committer`` is ``Name <email> epoch tz``."""


def reflog_mode(value: str | None, enabled: bool, *, bare: bool) -> str:
    """``core.logAllRefUpdates`` as git reads it: ``"always"``, ``"true"`` or ``"false"``.
    ``value`` is the raw setting (None when unset: ``"false"`` in a bare repository,
    ``"true"`` otherwise), ``enabled`` its value read as a boolean."""
    if value is None:
        return "false" if bare else "true"
    if value.strip().lower() == "always":
        return "always"
    return "true" if enabled else "false"


def _anonymous_committer() -> str:
    return f"git-prov <git-prov@localhost> {int(time.time())} +0000"


def _reflog_entry(old: str | None, new: str, committer: str, message: str) -> ReflogEntry:
    """The entry of an update; the message collapsed to one line as git does
    (``copy_reflog_msg``)."""
    return ReflogEntry(old or "0" * len(new), new, committer, " ".join(message.split()))


def _reflog_line(entry: ReflogEntry) -> bytes:
    tail = f"\t{entry.message}" if entry.message else ""
    return f"{entry.old} {entry.new} {entry.committer}{tail}\n".encode("utf-8", "surrogateescape")


def _parse_reflog(text: str) -> list[ReflogEntry]:
    entries = []
    for line in text.splitlines():
        old, _, rest = line.partition(" ")
        new, _, rest = rest.partition(" ")
        committer, _, message = rest.partition("\t")
        if new:
            entries.append(ReflogEntry(old, new, committer, message))
    return entries


class Refs:
    """What every refs container offers. Values are object ids (hex)."""

    #: seconds an update waits for another process's ``<ref>.lock`` (on disk)
    lock_wait = _LOCK_WAIT_SECONDS
    #: ``core.logAllRefUpdates`` (see ``reflog_mode``)
    log_updates = "true"
    #: the ``Name <email> epoch tz`` of a reflog entry (``GitRepository`` sets its own)
    committer: Callable[[], str] = staticmethod(_anonymous_committer)

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

    def compare_and_swap(self, name: str, old: str | None, new: str, message: str = "") -> bool:
        """Point ``name`` at ``new`` if it still points at ``old``; False otherwise. The
        update is logged (``message``) when ``name`` has a reflog or gets one."""
        raise NotImplementedError

    def delete(self, name: str, old: str) -> bool:
        """Remove ``name`` (loose and packed) and its reflog if it still points at
        ``old``; False otherwise."""
        raise NotImplementedError

    def reflog(self, name: str) -> list[ReflogEntry]:
        """The reflog of ``name``, oldest first (``git reflog`` shows it newest first)."""
        raise NotImplementedError

    def ensure_reflog(self, name: str) -> bool:
        """Create the (empty) reflog of ``name`` if ``core.logAllRefUpdates`` has updates
        create it, so that git's own updates of the ref (a fetch) are logged too;
        whether ``name`` has a reflog now."""
        raise NotImplementedError

    def autocreates_reflog(self, name: str) -> bool:
        """Whether an update of ``name`` creates its missing reflog."""
        if self.log_updates == "always":
            return True
        return self.log_updates == "true" and (name == "HEAD" or name.startswith(_LOGGED_WITH_TRUE))

    def _logged_with(self, name: str) -> str | None:
        """The ref whose log also records an update of ``name``: HEAD, when it points
        at the branch ``name`` (as git logs a commit on the current branch twice)."""
        if name.startswith("refs/heads/") and self.symbolic_target("HEAD") == name:
            return "HEAD"
        return None


class MemoryRefs(Refs):
    """Refs in a dict: the fast twin used by unit tests."""

    def __init__(self) -> None:
        self._refs: dict[str, str] = {}
        self._symbolic: dict[str, str] = {}
        self._logs: dict[str, list[ReflogEntry]] = {}

    def set_symbolic(self, name: str, target: str) -> None:
        self._symbolic[name] = target

    def read(self, name: str) -> str | None:
        name = self._symbolic.get(name, name)
        return self._refs.get(name)

    def symbolic_target(self, name: str) -> str | None:
        return self._symbolic.get(name)

    def list(self, prefix: str = "refs/") -> dict[str, str]:
        return {k: v for k, v in sorted(self._refs.items()) if k.startswith(prefix)}

    def compare_and_swap(self, name: str, old: str | None, new: str, message: str = "") -> bool:
        if self._refs.get(name) != old:
            return False
        if new != old:
            entry = _reflog_entry(old, new, self.committer(), message)
            for logged in (name, self._logged_with(name)):
                if logged is not None and self.ensure_reflog(logged):
                    self._logs[logged].append(entry)
        self._refs[name] = new
        return True

    def delete(self, name: str, old: str) -> bool:
        if old is None or self._refs.get(name) != old:
            return False
        del self._refs[name]
        self._logs.pop(name, None)
        return True

    def reflog(self, name: str) -> list[ReflogEntry]:
        return list(self._logs.get(name, ()))

    def ensure_reflog(self, name: str) -> bool:
        if name not in self._logs and self.autocreates_reflog(name):
            self._logs[name] = []
        return name in self._logs


class DiskRefs(Refs):
    """The refs of an on-disk repository (loose files plus ``packed-refs``)."""

    def __init__(self, git_dir: str, common_dir: str, *, durability: Durability | None = None,
                 log_updates: str = "true") -> None:
        self.git_dir = git_dir
        self.common_dir = common_dir
        self.durability = durability or Durability()
        self.log_updates = log_updates
        self._packed: dict[str, str] | None = None
        self._packed_stamp: tuple[int, int] | None = None

    def _path(self, name: str) -> str:
        base = self.git_dir if "/" not in name else self.common_dir
        return os.path.join(base, *name.split("/"))

    def _log_path(self, name: str) -> str:
        base = self.git_dir if "/" not in name else self.common_dir
        return os.path.join(base, "logs", *name.split("/"))

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

    def _lock(self, path: str, what: str) -> int:
        """Take ``<path>.lock`` (git's protocol), waiting up to ``lock_wait`` for another
        process to release it; the open lock file."""
        lock = path + ".lock"
        deadline = time.monotonic() + self.lock_wait
        delay = 0.001
        while True:
            try:
                try:
                    return os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileNotFoundError:  # a new ref directory (or git pruned an empty one)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    return os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise ConcurrentUpdateError(
                        f"{what} is locked by another process ({lock} exists); "
                        "if no git or prov process is running, remove that file"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except PermissionError as exc:
                raise ReadOnlyRepositoryError(
                    f"cannot update {what}: permission denied; run prov as a user who can write the repository"
                ) from exc
            except OSError as exc:
                raise WriteError(f"cannot update {what}: {exc.strerror}") from exc

    def compare_and_swap(self, name: str, old: str | None, new: str, message: str = "") -> bool:
        path = self._path(name)
        lock = path + ".lock"
        fd = self._lock(path, name)
        try:
            os.write(fd, new.encode("ascii") + b"\n")
            if self.read(name) != old:
                os.close(fd)
                fd = -1
                os.remove(lock)
                return False
            self.durability.sync(fd, REFERENCE)
            os.close(fd)
            fd = -1
            if new != old:  # (git logs no update that changes nothing)
                line = _reflog_line(_reflog_entry(old, new, self.committer(), message))
                for logged in (name, self._logged_with(name)):
                    if logged is not None:
                        self._append_reflog(logged, line)
            os.replace(lock, path)
            return True
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.remove(lock)
            raise WriteError(f"cannot update {name}: {exc.strerror}") from exc

    def _append_reflog(self, name: str, line: bytes) -> None:
        """Append ``line`` to the reflog of ``name``: an existing log always, a missing
        one created when ``core.logAllRefUpdates`` says so (as git, never flushed)."""
        path = self._log_path(name)
        create = self.autocreates_reflog(name)
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0)
        try:
            try:
                fd = os.open(path, flags, 0o666)
            except FileNotFoundError:
                if not create:
                    return
                os.makedirs(os.path.dirname(path), exist_ok=True)
                fd = os.open(path, flags, 0o666)
        except IsADirectoryError:
            if not create:  # logs of refs below this name: git neither logs nor fails
                return
            raise
        try:
            _write_all(fd, line)
        finally:
            os.close(fd)

    def ensure_reflog(self, name: str) -> bool:
        path = self._log_path(name)
        if os.path.isfile(path):
            return True
        if not self.autocreates_reflog(name):
            return False
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666))
        except OSError as exc:
            raise WriteError(f"cannot create the reflog of {name} ({path}): {exc.strerror}") from exc
        return True

    def reflog(self, name: str) -> list[ReflogEntry]:
        try:
            with open(self._log_path(name), encoding="utf-8", errors="surrogateescape") as f:
                return _parse_reflog(f.read())
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return []

    def delete(self, name: str, old: str) -> bool:
        """As ``git update-ref -d <name> <old>``: under the ref's lock, the entry is
        dropped from ``packed-refs`` (rewritten under its own lock, flushed as a
        ``reference``), the loose file and the reflog removed, and the directories they
        leave empty."""
        path = self._path(name)
        lock = path + ".lock"
        os.close(self._lock(path, name))
        try:
            if old is None or self.read(name) != old or self.symbolic_target(name) is not None:
                return False
            if name in self._packed_refs():
                self._drop_packed(name)
            log = self._log_path(name)
            for gone in (log, path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(gone)
            _remove_empty_parents(log, os.path.join(self.common_dir, "logs", "refs"))
            return True
        except OSError as exc:
            raise WriteError(f"cannot delete {name}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.remove(lock)
            _remove_empty_parents(path, os.path.join(self.common_dir, "refs"))

    def _drop_packed(self, name: str) -> None:
        """Rewrite ``packed-refs`` without ``name`` (and its peeled ``^`` line)."""
        path = os.path.join(self.common_dir, "packed-refs")
        fd = self._lock(path, "packed-refs")
        try:
            with open(path, "rb") as f:
                lines = f.read().splitlines(keepends=True)
            kept, dropping = [], False
            target = name.encode("utf-8", "surrogateescape")
            for line in lines:
                if line.startswith(b"^"):
                    if not dropping:
                        kept.append(line)
                    continue
                dropping = not line.startswith(b"#") and line.rstrip(b"\n").partition(b" ")[2] == target
                if not dropping:
                    kept.append(line)
            _write_all(fd, b"".join(kept))
            self.durability.sync(fd, REFERENCE)
            os.close(fd)
            fd = -1
            os.replace(path + ".lock", path)
            self._packed = None
        finally:
            if fd >= 0:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.remove(path + ".lock")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _remove_empty_parents(path: str, top: str) -> None:
    """Remove the directories above ``path`` that are empty, up to (not including) ``top``."""
    folder = os.path.dirname(path)
    while len(folder) > len(top) and folder.startswith(top + os.sep):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)
