"""Append-only log files under ``.git/prov/`` kept small: past a size, only the newest
lines stay. Standard library only (the hook path uses it)."""

from __future__ import annotations

import os

__all__ = ["trim"]


def trim(path: str, max_bytes: int, keep_lines: int) -> None:
    """Keep only the last ``keep_lines`` lines of ``path`` once it is over ``max_bytes``;
    a missing file is fine. Best effort: an ``OSError`` is left to the caller."""
    try:
        if os.path.getsize(path) <= max_bytes:
            return
    except FileNotFoundError:
        return
    with open(path, "rb") as f:
        keep = f.read().splitlines(keepends=True)[-keep_lines:]
    with open(path, "wb") as f:
        f.writelines(keep)
