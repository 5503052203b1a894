"""What differs between two trees, listed by ``git diff-tree`` (in C) and streamed.

A pull of 1,000 runs into a 100,000-run ledger touches most of the 256 shards; decoding
both sides of every shard in Python costs seconds, while git lists the changed entries,
with their new ids, in milliseconds. The listing is read as git writes it, so holding
it never costs more than one entry, whatever the size of the change (a first pull of
100,000 runs lists ~400,000 entries).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import DataError
from ..store import gitbin
from ..store.objects import TreeEntry
from ..store.repo import GitRepository

__all__ = ["DiffEntry", "LedgerDiff", "diff_entries", "ledger_diff", "runs_added"]


class DiffEntry(NamedTuple):
    """One changed path: ``status`` is git's (``A`` added, ``M`` modified, ``D`` deleted,
    ``T`` type changed); ``mode`` and ``oid`` are the new side's (the old side's for
    ``D``), a directory's mode written ``40000`` as in a tree."""

    status: str
    mode: str
    oid: str
    path: str


def diff_entries(repo: GitRepository, ours: str | None, theirs: str) -> Iterator[DiffEntry]:
    """Every entry of tree ``theirs`` that differs from tree ``ours`` (None: the empty
    tree), directories before what they hold, in git's path order, streamed from
    ``git diff-tree -r -t``. Raises ``DataError`` when git cannot compare them."""
    git_dir = repo.common_dir or repo.git_dir
    if git_dir is None:
        raise DataError("comparing trees needs a repository on disk")
    base = ours or repo.fmt.hash_object("tree", b"")  # git knows the empty tree without storing it
    proc = gitbin.start(["diff-tree", "-r", "-t", "-z", "--no-renames", base, theirs], git_dir=git_dir,
                        bufsize=1 << 16, drop=("GIT_OBJECT_DIRECTORY", "GIT_WORK_TREE"), error=DataError)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    hex_len = repo.fmt.hex_len
    # ":<old mode> <new mode> <old id> <new id> <status>": fixed widths (modes are 6 octal digits)
    width, new_mode, old_id, new_id = 18 + 2 * hex_len, slice(8, 14), slice(15, 15 + hex_len), slice(16 + hex_len,
                                                                                                  16 + 2 * hex_len)
    finished = False
    try:
        fields = _fields(proc.stdout)
        for header in fields:
            path = next(fields, None)
            if path is None:
                break
            if len(header) == width:
                status = header[-1]
                mode, oid = (header[1:7], header[old_id]) if status == "D" else (header[new_mode], header[new_id])
            else:  # not the shape above: read field by field
                parts = header.lstrip(":").split()
                if len(parts) < 5:
                    continue
                status = parts[4][:1]
                mode, oid = (parts[0], parts[2]) if status == "D" else (parts[1], parts[3])
            yield DiffEntry(status, mode[1:] if mode.startswith("04") else mode, oid, path)
        finished = True
    finally:
        if not finished:
            with contextlib.suppress(OSError):
                proc.kill()
        proc.stdout.close()
        code = proc.wait()
    if code != 0:
        raise DataError(f"cannot compare ledger trees {base[:12]} and {theirs[:12]}: git diff-tree exited {code}")


def _fields(stream) -> Iterator[str]:
    """The NUL-terminated fields of ``git … -z`` output, as they arrive (text: UTF-8, an
    undecodable byte kept as a surrogate; a NUL never falls inside a UTF-8 character)."""
    rest = b""
    while chunk := stream.read1(1 << 16):
        data = rest + chunk
        end = data.rfind(b"\0") + 1
        rest = data[end:]
        if end:
            yield from data[:end - 1].decode("utf-8", "surrogateescape").split("\0")


def _run_dir(path: str) -> tuple[str, str] | None:
    """``(shard, run id)`` when ``path`` is a run directory, ``runs/<shard>/<run id>``."""
    if path.startswith("runs/") and path.count("/") == 2:
        _, shard, run_id = path.split("/")
        return shard, run_id
    return None


def runs_added(repo: GitRepository, ours: str | None, theirs: str | None) -> list[str]:
    """Ids of the run directories ledger tree ``theirs`` has and ``ours`` has not."""
    if theirs is None or theirs == ours:
        return []
    added = []
    for entry in diff_entries(repo, ours, theirs):
        if entry.status == "A" and (where := _run_dir(entry.path)):
            added.append(where[1])
    return sorted(added)


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
    diff = LedgerDiff()
    try:
        for entry in diff_entries(repo, ours, theirs):
            if entry.status == "D":
                continue  # a deletion adds nothing to validate
            segments = entry.path.split("/")
            tree_entry = TreeEntry(entry.mode, segments[-1], entry.oid)
            if where := _run_dir(entry.path):
                diff.runs[where[1]] = (where[0], tree_entry)
                if entry.status == "A":
                    diff.added.add(where[1])
            elif len(segments) <= 2 or segments[0] != "runs":
                diff.other[entry.path] = tree_entry
    except DataError:
        return None
    return diff
