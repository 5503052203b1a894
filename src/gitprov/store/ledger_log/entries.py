"""What a write of the log holds: a transaction's entries from changes named as format
3 names them, and a checkpoint's entries from a format-3 tree."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import DataError
from ..repo import GitRepository
from ..trees import read_tree
from .names import (
    ID_PATTERN,
    INLINE_LIMIT,
    encode_run_blob,
    entry_name,
    record_commit,
    run_blob_name,
)

__all__ = ["checkpoint_entries", "checkpoint_names", "checkpoint_shards", "log_entries"]


def log_entries(changes: dict[str, bytes | str | None], current: Callable[[str, str], Any],
                read_blob: Callable[[str], bytes], kept_out: dict[str, dict[str, bytes]] | None = None,
                ) -> dict[str, bytes | str]:
    """A transaction's entries for ``changes`` named as format 3 names them
    (``runs/<xx>/<id>/<file>``, ``commits/<xx>/<commit>/<xx>/<id>``): a run's record or
    state makes a new run blob (the other part from ``current(run id, "record" or
    "state")``), named with the commit its record names (a commit's entry adds nothing
    more); an artifact given as content up to ``INLINE_LIMIT`` goes into the run blob
    (with those it holds already, ``current(run id, "artifacts")``); every other file is
    an entry (``kept_out``: each written run blob's artifacts, by run). The log only ever
    adds versions: a change that removes a path is refused (``ValueError``), as is a
    path of no run."""
    out: dict[str, bytes | str] = {}
    parts: dict[str, dict[str, bytes]] = {}
    inline: dict[str, dict[str, bytes | None]] = {}  # run -> artifacts into (bytes) or out of (None) its blob
    for path, value in changes.items():
        if path == "format":
            continue
        if value is None:
            raise ValueError(f"the ledger's log cannot remove {path!r}: it only adds versions")
        segments = path.split("/")
        if segments[0] == "runs" and len(segments) >= 4 and ID_PATTERN.match(segments[2]) \
                and segments[1] == segments[2][:2]:
            run_id, name = segments[2], "/".join(segments[3:])
            if name in ("record", "state"):
                parts.setdefault(run_id, {})[name] = value if isinstance(value, bytes) else read_blob(value)
            elif name.startswith("artifacts/") and isinstance(value, bytes) and len(value) <= INLINE_LIMIT:
                entry_name(run_id, name)  # a name the log has (else ValueError)
                inline.setdefault(run_id, {})[name[len("artifacts/"):]] = value
            else:
                out[entry_name(run_id, name) or ""] = value
                if name.startswith("artifacts/"):  # an entry from now on: not in the blob any more
                    inline.setdefault(run_id, {})[name[len("artifacts/"):]] = None
        elif segments[0] == "commits" and len(segments) == 5 and ID_PATTERN.match(segments[2]) and ID_PATTERN.match(segments[4]):
            pass  # the run blob's name says it, from the record
        else:
            raise ValueError(f"not a path of the ledger: {path!r}")
    for run_id in inline:
        parts.setdefault(run_id, {})
    for run_id, new in parts.items():
        first = "record" in new  # a run's first write: it has no artifacts in the ledger yet
        for part in ("record", "state"):
            if part not in new:
                old = current(run_id, part)
                if old is None:
                    raise DataError(f"run {run_id[:12]} has no {part} in the ledger to write beside its "
                                    f"{'state' if part == 'record' else 'record'}")
                new[part] = old
        kept = {} if first else dict(current(run_id, "artifacts") or {})
        for key, content in inline.get(run_id, {}).items():
            if content is None:
                kept.pop(key, None)
            else:
                kept[key] = content
        out[run_blob_name(run_id, record_commit(new["record"]))] = encode_run_blob(new["record"], new["state"], kept)
        if kept_out is not None:
            kept_out[run_id] = kept
    return out


def checkpoint_entries(repo: GitRepository, tree: str | None) -> dict[str, bytes | str]:
    """Every run of a format-3 ledger ``tree`` under the log's names: a new run blob a
    run, every other file and each commit's link by the blob id it has. A file the log
    has no name for, or a run without its record or state, is not carried over (``prov
    verify`` of format 3 names them; the format-3 commits stay in the history)."""
    out: dict[str, bytes | str] = {}
    for part in checkpoint_shards(repo, tree):
        out.update(part)
    return out


def checkpoint_shards(repo: GitRepository, tree: str | None) -> Iterator[dict[str, bytes | str]]:
    """``checkpoint_entries`` one shard of format 3's ``runs/`` at a time (the runs whose
    ids start with the same two characters), so a caller can store each shard's new run
    blobs before it reads the next."""
    odb = repo.odb
    root = read_tree(odb, tree)

    def files(oid: str, prefix: str) -> Iterator[tuple[str, str]]:
        for name, e in read_tree(odb, oid, keep=False).items():
            if e.is_tree:
                yield from files(e.oid, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", e.oid

    runs = root.get("runs")
    for shard in (read_tree(odb, runs.oid, keep=False).values() if runs is not None and runs.is_tree else ()):
        out: dict[str, bytes | str] = {}
        for run_id, run in (read_tree(odb, shard.oid, keep=False).items() if shard.is_tree else ()):
            if not run.is_tree or not ID_PATTERN.match(run_id):
                continue
            entries = dict(files(run.oid, ""))
            if "record" not in entries or "state" not in entries:
                continue
            for path, oid in entries.items():
                if path not in ("record", "state"):
                    with contextlib.suppress(ValueError):
                        out[entry_name(run_id, path) or ""] = oid
            record = odb.read_typed(entries["record"], "blob")
            out[run_blob_name(run_id, record_commit(record))] = encode_run_blob(
                record, odb.read_typed(entries["state"], "blob"))
        out.pop("", None)
        yield out


def checkpoint_names(repo: GitRepository, tree: str | None) -> tuple[set[str], set[str]]:
    """What a checkpoint of the format-3 ledger ``tree`` holds (``checkpoint_shards``),
    known from its trees alone, no blob read: the ids of the runs that get a run blob
    (its name's commit is the record's, checked where the run blob is read), and the
    log's names of their other files. Listed by ``git ls-tree -r`` (100,000 runs: about a
    second, where reading each run's record to name its run blob took a minute)."""
    files: dict[str, list[str]] = {}
    for run_id, path in _format3_files(repo, tree):
        files.setdefault(run_id, []).append(path)
    runs: set[str] = set()
    names: set[str] = set()
    for run_id, paths in files.items():
        if "record" not in paths or "state" not in paths:
            continue
        runs.add(run_id)
        for path in paths:
            if path not in ("record", "state"):
                with contextlib.suppress(ValueError):
                    if name := entry_name(run_id, path):
                        names.add(name)
    return runs, names


def _format3_files(repo: GitRepository, tree: str | None) -> Iterator[tuple[str, str]]:
    """``(run id, path in its directory)`` of every file under format 3's ``runs/``."""
    if tree is None:
        return
    git_dir = repo.common_dir or repo.git_dir
    if git_dir is not None:
        from .. import gitbin

        proc = gitbin.run(["ls-tree", "-r", "-z", "--name-only", tree, "--", "runs"], git_dir=git_dir)
        if proc.returncode == 0:
            for line in proc.stdout.split(b"\0"):
                parts = line.decode("utf-8", "surrogateescape").split("/", 3)
                if len(parts) == 4 and ID_PATTERN.match(parts[2]):
                    yield parts[2], parts[3]
            return
    odb = repo.odb  # no git to ask (an in-memory repository): the trees read here

    def files(oid: str, prefix: str) -> Iterator[str]:
        for name, e in read_tree(odb, oid, keep=False).items():
            if e.is_tree:
                yield from files(e.oid, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}"

    runs = read_tree(odb, tree).get("runs")
    for shard in (read_tree(odb, runs.oid, keep=False).values() if runs is not None and runs.is_tree else ()):
        for run_id, run in (read_tree(odb, shard.oid, keep=False).items() if shard.is_tree else ()):
            if run.is_tree and ID_PATTERN.match(run_id):
                yield from ((run_id, path) for path in files(run.oid, ""))
