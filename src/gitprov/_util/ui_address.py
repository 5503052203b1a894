"""Where running ``prov ui`` processes serve this repository: each one writes its
address (never its token) to ``.git/prov/ui/<pid>.json`` while it runs, so ``Run.url``
can point at the run's page. One file per server, written whole and renamed into place:
two servers starting at once never read-modify-write a shared file, so neither can
drop the other's address."""

from __future__ import annotations

import contextlib
import json
import os
import time

__all__ = ["DEFAULT_URL", "forget_url", "remember_url", "servers", "ui_url"]

#: where ``prov ui`` listens unless told otherwise
DEFAULT_URL = "http://127.0.0.1:8470/"
_DIR = "ui"


def _alive(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)  # type: ignore[call-overload]
    except PermissionError:
        return True
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return True


def servers(prov_dir: str) -> list[dict[str, object]]:
    """The interfaces serving this repository now, first started first (files left by
    processes that are gone are removed)."""
    folder = os.path.join(prov_dir, _DIR)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json"):
            continue  # a file being written (``*.tmp``), or not ours
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(entry, dict) or not str(entry.get("url", "")).startswith("http://"):
            continue
        if not _alive(entry.get("pid")):
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        found.append(entry)
    return sorted(found, key=lambda e: (str(e.get("started", "")).zfill(24), str(e.get("pid"))))


def _own(prov_dir: str) -> str:
    return os.path.join(prov_dir, _DIR, f"{os.getpid()}.json")


def remember_url(prov_dir: str | None, url: str) -> None:
    """Record ``url`` as the address of this process's interface (best effort)."""
    from .paths import replace_file

    if prov_dir is not None:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.join(prov_dir, _DIR), exist_ok=True)
            entry = {"url": url, "pid": os.getpid(), "started": str(time.time_ns())}
            replace_file(_own(prov_dir), json.dumps(entry).encode())


def forget_url(prov_dir: str | None, url: str) -> None:
    """Remove what ``remember_url`` recorded for this process."""
    if prov_dir is not None:
        with contextlib.suppress(OSError):
            os.unlink(_own(prov_dir))


def ui_url(prov_dir: str | None) -> str:
    """The address of an interface serving this repository now (the first started of
    those still running), else where ``prov ui`` serves it by default."""
    found = servers(prov_dir) if prov_dir is not None else []
    return str(found[0]["url"]) if found else DEFAULT_URL
