"""Local sync state: what each target already holds, per run and per series.

One JSON file per target under ``.git/prov/sync/<target-key>.json`` (never pushed),
written atomically (temporary file + rename). It is a cache: losing it costs a search
of the tracker by the ``prov.run_id`` tag, never a duplicate. A lock file next to it
keeps two ``prov sync`` processes off the same target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from typing import Any

from .._util.pidlock import take
from ..errors import DataError, SyncError, WriteError

__all__ = ["STATE_FORMAT", "RunEntry", "SyncState", "target_key"]

STATE_FORMAT = 1


def target_key(kind: str, address: str) -> str:
    """A file-name-safe key for one target: ``mlflow-<host or file>-<hash>``."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", address.split("://", 1)[-1])[-40:].strip("_.")
    digest = hashlib.sha256(f"{kind}\0{address}".encode()).hexdigest()[:12]
    return f"{kind}-{readable}-{digest}" if readable else f"{kind}-{digest}"


class RunEntry(dict):
    """What a target holds of one run (plain JSON).

    ``version``: run directory tree id last synced completely (None while pending);
    ``external_id``; ``series``: key -> points sent; ``params``/``tags``: key -> value
    digest sent; ``artifacts``: key -> sha256; ``datasets``: key -> digest; ``status``:
    remote status sent; ``parent``: the parent link was written; ``error``: last failure.
    """


def value_digest(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class SyncState:
    """The state file of one target; thread-safe; ``save()`` writes it atomically."""

    def __init__(self, directory: str | None, key: str, description: str) -> None:
        self.key = key
        self.description = description
        self.path = os.path.join(directory, f"{key}.json") if directory else None
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._dirty = False
        self._last_save = 0.0
        self.runs: dict[str, dict[str, Any]] = {}
        if self.path and os.path.exists(self.path):
            self._load()

    def _load(self) -> None:
        assert self.path
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise DataError(f"sync state {self.path} cannot be read ({exc}); delete it to rebuild it from the tracker") from exc
        if data.get("format_version") != STATE_FORMAT:
            raise DataError(f"sync state {self.path} has format {data.get('format_version')!r}; delete it to rebuild it from the tracker")
        self.runs = data.get("runs", {})

    # -- locking ---------------------------------------------------------------
    def acquire(self, wait: float = 0.0) -> None:
        """Take the target's lock file (one sync per target at a time), waiting up to
        ``wait`` seconds for another sync to release it."""
        if not self.path:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        lock = self.path[:-5] + ".lock"
        deadline = time.monotonic() + wait
        while True:
            fd = take(lock)
            if fd is not None:
                self._lock_fd = fd
                return
            if time.monotonic() >= deadline:
                raise SyncError(f"another prov sync to {self.description} is running (lock {lock}); "
                                "wait for it, or delete the lock if no sync is running")
            time.sleep(0.2)

    def release(self) -> None:
        if self._lock_fd is not None and self.path:
            os.close(self._lock_fd)
            self._lock_fd = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path[:-5] + ".lock")

    # -- entries ---------------------------------------------------------------
    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self.runs.get(run_id)
            return json.loads(json.dumps(entry)) if entry is not None else None

    def put(self, run_id: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self.runs[run_id] = entry
            self._dirty = True
        if time.monotonic() - self._last_save > 1.0:
            self.save()

    def save(self, force: bool = False) -> None:
        """Write the file (temporary file + rename) if anything changed."""
        if not self.path:
            return
        with self._lock:
            if not (self._dirty or force):
                return
            data = json.dumps({"format_version": STATE_FORMAT, "target": self.description, "runs": self.runs},
                              sort_keys=True, separators=(",", ":"))
            self._dirty = False
            self._last_save = time.monotonic()
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.tmp-{os.getpid()}-{threading.get_ident()}"
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                raise WriteError(f"cannot write sync state {self.path}: {exc.strerror}") from exc
