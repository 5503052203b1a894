"""Remote provenance that was refused: kept, unmerged, for inspection.

``prov fetch`` puts a remote's refs under ``refs/prov-remotes/<remote>/…`` before
anything is checked; when ``prov pull`` (or a push's merge) refuses what they hold, the
live refs do not move, and ``.git/prov/quarantine.json`` (local, never pushed) records
which tracking refs hold refused data and why. ``prov verify`` names each while the
tracking ref still points there; a later pull from that remote that merges clears it.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from .._util.clock import utc_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .repo import GitRepository

__all__ = ["QUARANTINE", "clear", "entries", "record"]

#: Under ``.git/prov/``.
QUARANTINE = "quarantine.json"


def _path(repo: GitRepository) -> str | None:
    directory = repo.prov_dir()
    return os.path.join(directory, QUARANTINE) if directory else None


def entries(repo: GitRepository) -> dict[str, dict[str, Any]]:
    """``{remote: {"refs": {tracking ref: oid}, "problems": [...], "time": ...}}``."""
    path = _path(repo)
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _save(repo: GitRepository, data: dict[str, dict[str, Any]]) -> None:
    path = _path(repo)
    if path is None:
        return
    try:
        if not data:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a reminder only: the pull's own error already reached the user


def record(repo: GitRepository, remote: str, refs: dict[str, str], problems: list[str]) -> None:
    """Remember that the tracking ``refs`` (ref -> oid) of ``remote`` hold refused data."""
    data = entries(repo)
    data[remote] = {"refs": refs, "problems": problems[:20], "time": utc_timestamp()}
    _save(repo, data)


def clear(repo: GitRepository, remote: str) -> None:
    """``remote``'s provenance was merged: nothing of it is held back any more."""
    data = entries(repo)
    if remote in data:
        del data[remote]
        _save(repo, data)
