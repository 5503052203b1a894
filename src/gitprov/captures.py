"""Commit captures: the provenance record of a commit (tree, environment, lockfiles,
declared inputs, CI identifiers), written once into the commit's note."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from . import codec
from ._util.clock import utc_timestamp
from ._version import __version__
from .model import CommitCapture, Environment
from .provenance import note_records

if TYPE_CHECKING:
    from .store.prov_store import ProvStore

__all__ = ["BackfillResult", "CaptureResult", "build_capture", "capture", "capture_missing", "own_capture"]


class CaptureResult(msgspec.Struct, kw_only=True):
    commit: str
    created: bool
    capture: CommitCapture


class BackfillResult(msgspec.Struct, kw_only=True):
    """What ``capture --missing`` did: the commits it captured, and how many had one."""

    range: str
    captured: list[str]
    already: int


def build_capture(store: ProvStore, commit: str, trigger: str = "cli", *,
                  base_environment: Environment | None = None) -> CommitCapture:
    """The capture record of ``commit`` as it would be written now.

    ``base_environment`` (another capture's) skips re-fingerprinting the interpreter
    when many commits are captured in one process.
    """
    from . import fingerprint
    from .runs.inputs import hash_inputs
    from .schema import current_pin
    from .settings import load_settings
    from .store.trees import read_tree

    git = store.git
    info = git.read_commit(commit)
    lockfiles = {
        name: entry.oid
        for name, entry in read_tree(git.odb, info.tree).items()
        if not entry.is_tree and fingerprint.is_lockfile(name)
    }
    inputs = []
    if store.work_tree is not None and commit == git.refs.read("HEAD"):
        settings = load_settings(store.work_tree)
        inputs = hash_inputs(store.work_tree, settings.inputs.paths, store.prov_dir)
    return CommitCapture(
        commit=commit,
        tree=info.tree,
        captured_at=utc_timestamp(),
        tool=f"git-prov {__version__}",
        schema=current_pin(),
        environment=fingerprint.environment(lockfiles)
        if base_environment is None
        else msgspec.structs.replace(base_environment, lockfiles=dict(sorted(lockfiles.items()))),
        inputs=inputs,
        ci=fingerprint.ci_identifiers(),
        trigger=trigger,
    )


def own_capture(records: list[object], commit: str) -> CommitCapture | None:
    """The capture of ``commit`` itself among its note's records (one copied from a
    rewritten commit does not count)."""
    for record in records:
        if isinstance(record, CommitCapture) and record.commit == commit:
            return record
    return None


def capture(store: ProvStore, rev: str = "HEAD", *, force: bool = False, trigger: str = "cli") -> CaptureResult:
    """Record the provenance of ``rev`` in its note (once, unless ``force``)."""
    commit = store.git.resolve(rev)
    if not force:
        existing = own_capture(note_records(store, commit, problems=[]), commit)  # a foreign line does not block a capture
        if existing is not None:
            return CaptureResult(commit=commit, created=False, capture=existing)
    record = build_capture(store, commit, trigger)
    store.notes.add({commit: [codec.encode(record)]}, f"prov: capture {commit[:12]}")
    return CaptureResult(commit=commit, created=True, capture=record)


def capture_missing(store: ProvStore, spec: str | None = None, *, trigger: str = "backfill") -> BackfillResult:
    """Capture every commit in ``spec`` (default: HEAD's history) that has no capture of
    its own, in one notes commit."""
    git = store.git
    include, exclude = git.resolve_range(spec) if spec else ([git.head()], [])
    tip = store.notes.tip()
    commits = git.walk(include, exclude)
    missing = [c for c in commits if own_capture(note_records(store, c, tip, []), c) is None]
    lines: dict[str, list[bytes]] = {}
    env = None
    for commit in missing:
        record = build_capture(store, commit, trigger, base_environment=env)
        env = record.environment
        lines[commit] = [codec.encode(record)]
    if lines:
        store.notes.add(lines, f"prov: backfill {len(lines)} capture(s)")
    return BackfillResult(range=spec or "HEAD", captured=missing, already=len(commits) - len(missing))
