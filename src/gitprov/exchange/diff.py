"""What differs between two ledger trees, computed by ``git diff-tree`` (in C).

A pull of 1,000 runs into a 100,000-run ledger touches most of the 256 shards; decoding
both sides of every shard in Python costs seconds, while git lists the changed run
directories, with their new tree ids, in milliseconds.
"""

from __future__ import annotations

from ..store import gitbin
from ..store.objects import TreeEntry
from ..store.repo import GitRepository

__all__ = ["LedgerDiff", "ledger_diff"]


class LedgerDiff:
    """Entries of the ``theirs`` tree that are new or changed relative to ``ours``."""

    def __init__(self) -> None:
        #: ``runs/<shard>/<run id>`` directories: run id -> (shard, entry)
        self.runs: dict[str, tuple[str, TreeEntry]] = {}
        #: top-level entries and anything not inside a run directory: path -> entry
        self.other: dict[str, TreeEntry] = {}
        #: run ids whose directory is new in ``theirs``
        self.added: set[str] = set()


def ledger_diff(repo: GitRepository, ours: str | None, theirs: str) -> LedgerDiff | None:
    """The new or changed entries of ``theirs``; None when git cannot say (then the
    caller walks the trees itself)."""
    if repo.git_dir is None or ours is None:
        return None
    proc = gitbin.run(["diff-tree", "-r", "-t", "-z", "--no-renames", "--no-commit-id", ours, theirs], git_dir=repo.git_dir)
    if proc.returncode != 0:
        return None
    diff = LedgerDiff()
    fields = proc.stdout.split(b"\0")
    for i in range(0, len(fields) - 1, 2):
        header, path = fields[i].decode("ascii", "replace"), fields[i + 1].decode("utf-8", "surrogateescape")
        parts = header.lstrip(":").split()
        if len(parts) < 5 or parts[4] == "D":
            continue  # a deletion adds nothing to validate
        new_mode, new_oid = parts[1], parts[3]
        segments = path.split("/")
        entry = TreeEntry(new_mode.lstrip("0") if new_mode.startswith("04") else new_mode, segments[-1], new_oid)
        if len(segments) == 3 and segments[0] == "runs":
            diff.runs[segments[2]] = (segments[1], entry)
            if parts[4] == "A":
                diff.added.add(segments[2])
        elif len(segments) <= 2 or segments[0] != "runs":
            diff.other[path] = entry
    return diff

