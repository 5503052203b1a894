"""Where running ``prov ui`` processes serve this repository: ``.git/prov/ui.json``
lists each one's address (never its token) while it runs, so ``Run.url`` can point at
the run's page."""

from __future__ import annotations

import contextlib
import json
import os

__all__ = ["DEFAULT_URL", "forget_url", "remember_url", "ui_url"]

#: where ``prov ui`` listens unless told otherwise
DEFAULT_URL = "http://127.0.0.1:8470/"
_FILE = "ui.json"


def _alive(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)  # type: ignore[call-overload]
    except PermissionError:
        return True
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return True


def _entries(prov_dir: str) -> list[dict[str, object]]:
    try:
        with open(os.path.join(prov_dir, _FILE), encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return []
    servers = found.get("servers") if isinstance(found, dict) else None
    return [s for s in servers if isinstance(s, dict) and _alive(s.get("pid"))
            and str(s.get("url", "")).startswith("http://")] if isinstance(servers, list) else []


def _write(prov_dir: str, servers: list[dict[str, object]]) -> None:
    from .paths import replace_file

    with contextlib.suppress(OSError):
        os.makedirs(prov_dir, exist_ok=True)
        replace_file(os.path.join(prov_dir, _FILE), json.dumps({"servers": servers}).encode())


def remember_url(prov_dir: str | None, url: str) -> None:
    """Add ``url`` as the address of this process's interface (best effort)."""
    if prov_dir is not None:
        _write(prov_dir, [*_entries(prov_dir), {"url": url, "pid": os.getpid()}])


def forget_url(prov_dir: str | None, url: str) -> None:
    """Remove what ``remember_url`` added for this process."""
    if prov_dir is not None:
        _write(prov_dir, [s for s in _entries(prov_dir) if s.get("pid") != os.getpid()])


def ui_url(prov_dir: str | None) -> str:
    """The address of an interface serving this repository now (the first started of
    those still running), else where ``prov ui`` serves it by default."""
    servers = _entries(prov_dir) if prov_dir is not None else []
    return str(servers[0]["url"]) if servers else DEFAULT_URL
