"""The commit hook's common case, without msgspec (whose import alone is ~35 ms here).

A fresh commit with no note yet, in a work tree without ``.provenance.toml`` and not
made by a cherry-pick, gets its capture written straight from plain values. The bytes
are canonical — the same as ``codec.encode(CommitCapture(...))``, which a test checks
field for field — because a capture holds only strings, integers and string maps, for
which stdlib ``json`` with sorted keys and compact separators writes what msgspec
writes. Every other case returns ``None`` and the caller takes the full path
(``Repository.capture``), which also validates existing note lines.
"""

from __future__ import annotations

import json
import os

from ._util.clock import utc_timestamp
from ._version import FORMAT_VERSION, __version__
from .names import SETTINGS_FILE
from .store.repo import GitRepository

TYPE_CHECKING = False  # typing is not imported at run time: hook path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["capture_fields", "canonical_json", "try_capture_head"]


def canonical_json(obj: Any) -> bytes:
    """Canonical bytes of plain JSON values without floats (see ``codec``)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def capture_fields(git: GitRepository, commit: str, trigger: str, now: float | None = None) -> dict[str, Any]:
    """Every field of the ``CommitCapture`` of ``commit`` (no declared inputs)."""
    from . import fingerprint
    from .schema import current_pin_fields
    from .store.trees import read_tree

    tree = git.read_commit(commit).tree
    lockfiles = {
        name: entry.oid
        for name, entry in read_tree(git.odb, tree).items()
        if not entry.is_tree and fingerprint.is_lockfile(name)
    }
    return {
        "kind": "commit",
        "format_version": FORMAT_VERSION,
        "commit": commit,
        "tree": tree,
        "captured_at": utc_timestamp(now),
        "tool": f"git-prov {__version__}",
        "schema": current_pin_fields(),
        "environment": fingerprint.environment_fields(lockfiles),
        "inputs": [],
        "ci": fingerprint.ci_identifiers(),
        "trigger": trigger,
    }


def try_capture_head(start: str, trigger: str) -> str | None:
    """Capture HEAD on the lean path; the commit id, or None when it does not apply."""
    from .store.notes import Notes

    git = GitRepository.open(start)
    head = git.head()
    if git.work_tree is None or os.path.exists(os.path.join(git.work_tree, SETTINGS_FILE)):
        return None
    if git.git_dir and os.path.exists(os.path.join(git.git_dir, "CHERRY_PICK_HEAD")):
        return None
    if b"(cherry picked from commit " in git.odb.read_typed(head, "commit"):
        return None
    notes = Notes(git)
    tip = notes.tip()
    if notes.read(head, tip):
        return None  # an existing note is decoded and checked by the full path
    line = canonical_json(capture_fields(git, head, trigger))
    notes.add({head: [line]}, f"prov: capture {head[:12]} ({trigger})")
    return head
