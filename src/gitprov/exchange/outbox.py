"""The outbox: provenance a push could not deliver, remembered until a push does.

``.git/prov/outbox.json`` (local, never pushed) holds one entry per remote: the remote
(its name, or a URL without credentials), when pushing there first failed, the last
attempt and its error, how many attempts failed, and the local tips that were to go
out. ``prov push`` and the ``pre-push`` hook record a failure there and clear the entry
once a push to that remote delivers those tips; ``prov status`` lists what is pending.

The file is written atomically (temporary file + rename) under a lock file, so two
pushes finishing at once cannot lose each other's entry. Standard library only: the
``pre-push`` hook path imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .._util.clock import utc_timestamp
from .._util.pidlock import take

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ..store.repo import GitRepository

__all__ = ["OUTBOX", "PendingPush", "clear", "pending", "record"]

#: Under ``.git/prov/``.
OUTBOX = "outbox.json"
_FORMAT = 1
_LOCK_WAIT = 5.0


@dataclass
class PendingPush:
    """Provenance that did not reach ``remote`` yet."""

    remote: str
    since: str
    last_attempt: str
    last_error: str
    attempts: int = 1
    #: ref -> the local tip that was to go out at the last attempt
    refs: dict[str, str] = field(default_factory=dict)
    #: the remote was a URL with credentials, stored without them: name the URL again to retry
    credentials_dropped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _key(remote: str) -> tuple[str, bool]:
    from ..scrub import scrub_url

    safe = scrub_url(remote)
    return safe, safe != remote


def _path(repo: GitRepository) -> str | None:
    directory = repo.prov_dir()
    return os.path.join(directory, OUTBOX) if directory else None


def _load(path: str) -> dict[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # an unreadable outbox is rebuilt by the next failure; status says what it can
    entries = data.get("pending") if isinstance(data, dict) else None
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


def _save(path: str, entries: dict[str, dict[str, Any]]) -> None:
    if not entries:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"format_version": _FORMAT, "pending": entries}, f, sort_keys=True, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold ``outbox.json.lock`` (waiting up to a few seconds; best effort after that)."""
    lock = path + ".lock"
    deadline = time.monotonic() + _LOCK_WAIT
    fd = take(lock)
    while fd is None and time.monotonic() < deadline:
        time.sleep(0.01)
        fd = take(lock)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)


def _update(repo: GitRepository, change: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    path = _path(repo)
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _locked(path):
            entries = _load(path)
            change(entries)
            _save(path, entries)
    except OSError:
        pass  # the outbox is a reminder; the push's own error already reached the user


def record(repo: GitRepository, remote: str, error: str, refs: dict[str, str]) -> None:
    """Remember that pushing ``refs`` (ref -> local tip) to ``remote`` failed with ``error``."""
    from ..scrub import scrub_text

    key, dropped = _key(remote)
    now = utc_timestamp()
    error = scrub_text(" ".join(error.split()))[:1000]

    def change(entries: dict[str, dict[str, Any]]) -> None:
        old = entries.get(key) or {}
        entries[key] = PendingPush(remote=key, since=old.get("since") or now, last_attempt=now, last_error=error,
                                   attempts=int(old.get("attempts") or 0) + 1, refs=dict(refs),
                                   credentials_dropped=dropped).to_json()

    _update(repo, change)


def clear(repo: GitRepository, remote: str, delivered: Callable[[dict[str, str]], bool]) -> None:
    """Drop ``remote``'s entry when ``delivered(entry refs)`` says a push carried them
    (an entry a concurrent failure wrote with newer tips stays)."""
    key, _ = _key(remote)
    path = _path(repo)
    if path is None or not os.path.exists(path):
        return  # the common case: nothing pending, nothing to lock

    def change(entries: dict[str, dict[str, Any]]) -> None:
        entry = entries.get(key)
        if entry is not None and delivered(dict(entry.get("refs") or {})):
            del entries[key]

    _update(repo, change)


def pending(repo: GitRepository) -> list[PendingPush]:
    """Every remote with provenance waiting, oldest first."""
    path = _path(repo)
    if path is None:
        return []
    out = []
    for key, entry in _load(path).items():
        with contextlib.suppress(TypeError, ValueError):
            out.append(PendingPush(remote=str(entry.get("remote") or key), since=str(entry.get("since") or ""),
                                   last_attempt=str(entry.get("last_attempt") or ""),
                                   last_error=str(entry.get("last_error") or ""),
                                   attempts=int(entry.get("attempts") or 0),
                                   refs={str(k): str(v) for k, v in (entry.get("refs") or {}).items()},
                                   credentials_dropped=bool(entry.get("credentials_dropped"))))
    return sorted(out, key=lambda p: (p.since, p.remote))

