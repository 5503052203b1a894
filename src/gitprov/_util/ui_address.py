"""Where a running ``prov ui`` serves this repository: ``.git/prov/ui.json`` while it
runs (its address, never its token), so ``Run.url`` can point at the run's page."""

from __future__ import annotations

import contextlib
import json
import os

__all__ = ["DEFAULT_URL", "forget_url", "remember_url", "ui_url"]

#: where ``prov ui`` listens unless told otherwise
DEFAULT_URL = "http://127.0.0.1:8470/"
_FILE = "ui.json"


def remember_url(prov_dir: str | None, url: str) -> None:
    """Record ``url`` as the address of this process's interface (best effort)."""
    if prov_dir is None:
        return
    from .paths import replace_file

    with contextlib.suppress(OSError):
        os.makedirs(prov_dir, exist_ok=True)
        replace_file(os.path.join(prov_dir, _FILE), json.dumps({"url": url, "pid": os.getpid()}).encode())


def forget_url(prov_dir: str | None, url: str) -> None:
    """Remove the record written by ``remember_url`` if it is still this process's."""
    if prov_dir is None:
        return
    path = os.path.join(prov_dir, _FILE)
    with contextlib.suppress(OSError, ValueError), open(path, encoding="utf-8") as f:
        if json.load(f).get("pid") == os.getpid():
            os.unlink(path)


def ui_url(prov_dir: str | None) -> str:
    """The address of the interface serving this repository now, else where ``prov ui``
    will serve it by default."""
    if prov_dir is not None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            with open(os.path.join(prov_dir, _FILE), encoding="utf-8") as f:
                found = json.load(f)
            os.kill(int(found["pid"]), 0)  # still running
            url = str(found["url"])
            if url.startswith("http://"):
                return url
    return DEFAULT_URL
