"""What a write of the log holds: a transaction's entries from changes named as format
3 names them, and a checkpoint's entries from a format-3 tree."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Container, Iterator
from typing import Any

from ...errors import DataError
from ..repo import GitRepository
from ..trees import read_tree
from .names import (
    ID_PATTERN,
    INLINE_LIMIT,
    encode_run_blob,
    entry_name,
    is_run_blob,
    record_commit,
    run_blob_name,
)

__all__ = ["checkpoint_names", "log_entries", "stored_checkpoint"]


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


def _checkpoint_shards(repo: GitRepository, tree: str | None) -> Iterator[dict[str, bytes | str]]:
    """Every run of a format-3 ledger ``tree`` under the log's names, one shard of its
    ``runs/`` at a time (the runs whose ids start with the same two characters), so that
    each shard's new run blobs are stored before the next is read: a new run blob a run,
    every other file and each commit's link by the blob id it has. A file the log has no
    name for, or a run without its record or state, is not carried over (``prov verify``
    of format 3 names them; the format-3 commits stay in the history). The files are listed by ``git ls-tree -r`` and the
    records and states read by one ``git cat-file`` (its delta bases kept across shards),
    when git can be asked (100,000 runs: the object layer took 89 s)."""
    blobs = _BlobReader(repo)
    try:
        for runs in _by_shard(_format3_files(repo, tree)):
            out: dict[str, bytes | str] = {}
            parts: list[tuple[str, str, str]] = []
            for run_id, entries in runs:
                if "record" not in entries or "state" not in entries:
                    continue
                for path, oid in entries.items():
                    if path not in ("record", "state"):
                        with contextlib.suppress(ValueError):
                            out[entry_name(run_id, path) or ""] = oid
                parts.append((run_id, entries["record"], entries["state"]))
            data = blobs.read([oid for _, record, state in parts for oid in (record, state)])
            for i, (run_id, _, _) in enumerate(parts):
                record = data[2 * i]
                out[run_blob_name(run_id, record_commit(record))] = encode_run_blob(record, data[2 * i + 1])
            out.pop("", None)
            yield out
    finally:
        blobs.close()


def stored_checkpoint(repo: GitRepository, tree: str | None,
                      keep: Container[str] = ()) -> tuple[dict[str, str], dict[str, bytes]]:
    """The entries of a checkpoint of the format-3 ledger ``tree`` (``_checkpoint_shards``),
    each new run blob stored as it is made (inside the caller's ``odb.batch()``: a pack
    every 16 shards, the pages read let go), so only names and ids are held (100,000
    runs: 1 GiB otherwise); and the run blobs of the runs in ``keep``, as bytes."""
    odb = repo.odb
    base: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    for k, part in enumerate(_checkpoint_shards(repo, tree)):
        for name, value in part.items():
            if isinstance(value, bytes):
                if keep and (run := is_run_blob(name)) in keep:
                    kept[run] = value  # type: ignore[index]
                value = odb.write("blob", value)
            base[name] = value
        if k % 16 == 15:
            odb.flush()
            odb.drop_pages()  # the format-3 objects read so far
    return base, kept


def _by_shard(files: Iterator[tuple[str, str, str, str]]) -> Iterator[list[tuple[str, dict[str, str]]]]:
    """``_format3_files``' files as runs (``(run id, {path: blob id})``), a shard's at a time."""
    shard: str | None = None
    runs: list[tuple[str, dict[str, str]]] = []
    for name, run_id, path, oid in files:
        if name != shard:
            if runs:
                yield runs
            shard, runs = name, []
        if not runs or runs[-1][0] != run_id:
            runs.append((run_id, {}))
        runs[-1][1][path] = oid
    if runs:
        yield runs


class _BlobReader:
    """Blobs read by one ``git cat-file --batch``, its delta-base cache kept from one
    call to the next, the requests written by a thread while the answers are read; through
    the object layer when git cannot be asked."""

    def __init__(self, repo: GitRepository) -> None:
        from .. import catfile

        self.repo = repo
        # records and states read in name order, deltas of each other all over the pack:
        # with git's default cache of delta bases (96 MiB), 200,000 of them took 16.1 s; 4.9 s
        self.proc = catfile.start(repo, buffered=False, config=("-c", "core.deltaBaseCacheLimit=256m"))

    def read(self, oids: list[str]) -> list[bytes]:
        if self.proc is None:
            return [self.repo.odb.read_typed(oid, "blob") for oid in oids]
        import threading

        from .. import catfile

        stdin, stdout = self.proc.stdin, self.proc.stdout

        def ask() -> None:
            with contextlib.suppress(OSError, ValueError):  # git stopped: said at the first answer missing
                stdin.write(b"".join(oid.encode() + b"\n" for oid in oids))
                stdin.flush()

        asking = threading.Thread(target=ask, name="prov-checkpoint-read", daemon=True)
        asking.start()
        out: list[bytes] = []
        try:
            for oid in oids:
                header = catfile.read_header(stdout)
                if header is None or header.type != "blob":
                    raise DataError(f"git cannot read blob {oid[:12]} of the ledger")
                out.append(stdout.read(header.size + 1)[:-1])
        except BaseException:
            self.close()  # the requests still being written end with git
            raise
        finally:
            asking.join()
        return out

    def close(self) -> None:
        """End git: its input closed, and its output (a git still answering gets SIGPIPE)."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()
            proc.stdout.close()
            proc.wait()


def checkpoint_names(repo: GitRepository, tree: str | None) -> tuple[set[str], set[str]]:
    """What a checkpoint of the format-3 ledger ``tree`` holds (``_checkpoint_shards``),
    known from its trees alone, no blob read: the ids of the runs that get a run blob
    (its name's commit is the record's, checked where the run blob is read), and the
    log's names of their other files. Listed by ``git ls-tree -r`` (100,000 runs: about a
    second, where reading each run's record to name its run blob took a minute)."""
    files: dict[str, list[str]] = {}
    for _shard, run_id, path, _oid in _format3_files(repo, tree):
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


def _format3_files(repo: GitRepository, tree: str | None) -> Iterator[tuple[str, str, str, str]]:
    """``(shard, run id, path in its directory, blob id)`` of every file under format 3's
    ``runs/<shard>/<run id>/``, in path order (``git ls-tree -r``; the trees read here
    when git cannot be asked)."""
    if tree is None:
        return
    git_dir = repo.common_dir or repo.git_dir
    if git_dir is not None:
        from .. import gitbin

        proc = gitbin.run(["ls-tree", "-r", "-z", tree, "--", "runs"], git_dir=git_dir)
        if proc.returncode == 0:
            for line in proc.stdout.split(b"\0"):
                info, _, name = line.partition(b"\t")
                parts = name.decode("utf-8", "surrogateescape").split("/", 3)
                if len(parts) == 4 and ID_PATTERN.match(parts[2]):
                    yield parts[1], parts[2], parts[3], info.rsplit(b" ", 1)[-1].decode("ascii")
            return
    odb = repo.odb

    def files(oid: str, prefix: str) -> Iterator[tuple[str, str]]:
        for name, e in read_tree(odb, oid, keep=False).items():
            if e.is_tree:
                yield from files(e.oid, f"{prefix}{name}/")
            else:
                yield f"{prefix}{name}", e.oid

    runs = read_tree(odb, tree).get("runs")
    for shard, s in (read_tree(odb, runs.oid, keep=False).items() if runs is not None and runs.is_tree else ()):
        for run_id, run in (read_tree(odb, s.oid, keep=False).items() if s.is_tree else ()):
            if run.is_tree and ID_PATTERN.match(run_id):
                yield from ((shard, run_id, path, oid) for path, oid in files(run.oid, ""))
