"""Checking provenance fetched from a remote before it is merged (DESIGN.md §8).

Only what the remote adds or changes relative to the local copy is read: identical
subtrees are skipped, so validating a pull costs in proportion to what moved. git
itself has already checked the objects' syntax and ids (prov fetches with
``fetch.fsckObjects``); these checks are about meaning: names, modes, sizes, format
versions, and run ids that match their records.
"""

from __future__ import annotations

import re

from .. import codec
from ..errors import DataError, ProvError
from ..keys import check_key, key_from_name
from ..model import RunRecord, RunState
from ..runs.series import decode_metric_chunk, decode_observation_chunk
from ..store.notes import note_entries, split_note
from ..store.objects import MODE_BLOB, MODE_TREE, TreeEntry
from ..store.odb import ObjectDatabase
from ..store.trees import read_tree
from .diff import LedgerDiff

__all__ = ["LIMITS", "validate_ledger", "validate_notes"]

#: Largest sizes accepted from a remote, in bytes.
LIMITS = {
    "record": 1 << 20,
    "state": 16 << 20,
    "chunk": 64 << 20,
    "artifact": 1 << 30,
    "code.patch": 256 << 20,
    "note": 16 << 20,
    "format": 4096,
    "entries": 1_000_000,  # files in one run directory
}
_CHUNK_NAME = re.compile(r"[0-9a-f]{8}-[0-9]{8}\Z")
_MAX_REPORTED = 20


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.records: dict[str, RunRecord] = {}

    def add(self, message: str) -> None:
        if len(self.problems) < _MAX_REPORTED:
            self.problems.append(message)

    def full(self) -> bool:
        return len(self.problems) >= _MAX_REPORTED


def _blob(odb: ObjectDatabase, entry: TreeEntry, limit: int, where: str, report: _Report) -> bytes | None:
    if entry.mode != MODE_BLOB:
        report.add(f"{where}: must be a regular file (mode {MODE_BLOB}), has mode {entry.mode}")
        return None
    try:
        data = odb.read_typed(entry.oid, "blob")
    except ProvError as exc:
        report.add(f"{where}: {exc}")
        return None
    if len(data) > limit:
        report.add(f"{where}: {len(data):,} bytes, more than the {limit:,} accepted")
        return None
    return data


def _tree(odb: ObjectDatabase, entry: TreeEntry, where: str, report: _Report) -> dict[str, TreeEntry] | None:
    if entry.mode != MODE_TREE:
        report.add(f"{where}: must be a directory")
        return None
    try:
        return read_tree(odb, entry.oid)
    except ProvError as exc:
        report.add(f"{where}: {exc}")
        return None


def validate_ledger(odb: ObjectDatabase, local: str | None, remote: str | None,
                    records: dict[str, RunRecord] | None = None, diff: LedgerDiff | None = None) -> list[str]:
    """Problems with what the remote ledger tree adds to the local one (empty: fine).

    ``records``, when given, receives the decoded record of every new or changed run;
    ``diff`` (from ``git diff-tree``) saves walking the shards to find them."""
    report = _Report()
    report.records = records if records is not None else {}
    if remote is None or remote == local:
        return []
    if diff is not None:
        for path, entry in sorted(diff.other.items()):
            _validate_outside_runs(odb, path, entry, report)
        for run_id, (shard, entry) in sorted(diff.runs.items()):
            if report.full():
                break
            validate_run(odb, shard, run_id, entry, report)
        return report.problems
    mine = read_tree(odb, local)
    try:
        theirs = read_tree(odb, remote)
    except ProvError as exc:
        return [f"ledger tree: {exc}"]
    for name, entry in theirs.items():
        if mine.get(name) == entry:
            continue
        if name == "runs":
            _validate_runs(odb, mine.get("runs"), entry, report)
        elif name == "commits":
            _validate_commits(odb, mine.get("commits"), entry, name, report)
        else:
            _validate_outside_runs(odb, name, entry, report)
    return report.problems


def _validate_commits(odb: ObjectDatabase, local: TreeEntry | None, remote: TreeEntry, path: str,
                      report: _Report) -> None:
    """Every entry of ``commits/`` that differs from the local one (subtrees both sides
    hold are skipped)."""
    _validate_outside_runs(odb, path, remote, report)
    if not remote.is_tree or report.full() or path.count("/") >= 4:
        return
    mine = read_tree(odb, local.oid) if local is not None and local.is_tree else {}
    for name, entry in sorted(read_tree(odb, remote.oid).items()):
        if mine.get(name) != entry and not report.full():
            _validate_commits(odb, mine.get(name), entry, f"{path}/{name}", report)


def _validate_outside_runs(odb: ObjectDatabase, path: str, entry: TreeEntry, report: _Report) -> None:
    """The ``format`` marker, the ``runs`` directory and its shards, the ``commits``
    directory; nothing else belongs."""
    parts = path.split("/")
    if path == "format":
        data = _blob(odb, entry, LIMITS["format"], "format", report)
        if data is not None:
            _decode(lambda d=data: codec.decode(d, dict, "ledger format marker"), report)
    elif parts[0] == "commits":
        _validate_commits_entry(odb, parts, entry, report)
    elif parts[0] == "runs" and len(parts) <= 2:
        if entry.mode != MODE_TREE:
            report.add(f"{path}: must be a directory")
        elif len(parts) == 2 and (len(parts[1]) != 2 or parts[1].strip("0123456789abcdef")):
            report.add(f"{path}: not a two-hex-digit shard")
    else:
        report.add(f"unexpected entry {parts[0]!r} at the ledger root")


def _hex(text: str, length: int) -> bool:
    return len(text) == length and not text.strip("0123456789abcdef")


def _validate_commits_entry(odb: ObjectDatabase, parts: list[str], entry: TreeEntry, report: _Report) -> None:
    """``commits/<c[:2]>/<c>/<id[:2]>/<id>``: directories down to the entry, which names
    the record blob of run ``<id>``, a run made at commit ``<c>``."""
    path, depth, hex_len = "/".join(parts), len(parts), odb.fmt.hex_len
    names_ok = depth <= 5 and all(
        _hex(name, 2 if i in (1, 3) else hex_len) for i, name in enumerate(parts[1:], 1)
    ) and (depth < 3 or parts[2].startswith(parts[1])) and (depth < 5 or parts[4].startswith(parts[3]))
    if not names_ok:
        report.add(f"{path[:120]}: not a commits/<id[:2]>/<commit>/<id[:2]>/<run id> path of this repository")
    elif depth < 5:
        if entry.mode != MODE_TREE:
            report.add(f"{path}: must be a directory")
    elif entry.oid != parts[4]:
        report.add(f"{path}: names blob {entry.oid[:12]}, not the record of run {parts[4][:12]}")
    else:
        data = _blob(odb, entry, LIMITS["record"], path, report)
        if data is None:
            return
        record = _decode(lambda: codec.decode(data, RunRecord, f"record of run {parts[4][:12]}"), report)
        if record is not None and record.code.commit != parts[2]:
            report.add(f"{path}: run {parts[4][:12]} was made at commit {str(record.code.commit)[:12]}, "
                       f"not {parts[2][:12]}")


def _decode(fn, report: _Report):
    try:
        return fn()
    except ProvError as exc:
        report.add(str(exc))
        return None


def _validate_runs(odb: ObjectDatabase, local: TreeEntry | None, remote: TreeEntry, report: _Report) -> None:
    shards = _tree(odb, remote, "runs", report)
    if shards is None:
        return
    local_shards = read_tree(odb, local.oid) if local is not None and local.is_tree else {}
    for shard, entry in sorted(shards.items()):
        if report.full():
            return
        if local_shards.get(shard) == entry:
            continue
        if len(shard) != 2 or shard.strip("0123456789abcdef"):
            report.add(f"runs/{shard}: not a two-hex-digit shard")
            continue
        runs = _tree(odb, entry, f"runs/{shard}", report)
        if runs is None:
            continue
        have = local_shards.get(shard)
        local_runs = read_tree(odb, have.oid) if have is not None and have.is_tree else {}
        for run_id, run in sorted(runs.items()):
            if local_runs.get(run_id) != run and not report.full():
                validate_run(odb, shard, run_id, run, report)


def validate_run(odb: ObjectDatabase, shard: str, run_id: str, entry: TreeEntry, report: _Report) -> None:
    """Check one run directory: id, layout, modes, sizes, decodable records and chunks."""
    where = f"run {run_id[:12]}"
    if not odb.fmt.is_id(run_id) or not run_id.startswith(shard):
        report.add(f"runs/{shard}/{run_id[:40]}: not a run id of this repository's hash ({odb.fmt.name})")
        return
    files = _tree(odb, entry, where, report)
    if files is None:
        return
    for name, item in sorted(files.items()):
        if name in ("record", "state", "code.patch"):
            limit = LIMITS[name]
            data = _blob(odb, item, limit, f"{where}/{name}", report)
            if data is None:
                continue
            if name == "record":
                if item.oid != run_id or odb.fmt.hash_object("blob", data) != run_id:
                    report.add(f"{where}: id does not match its record's content")
                record = _decode(lambda d=data: codec.decode(d, RunRecord, f"{where}/record"), report)
                if record is not None:
                    report.records[run_id] = record
            elif name == "state":
                _decode(lambda d=data: codec.decode(d, RunState, f"{where}/state"), report)
        elif name in ("series", "observations"):
            _validate_series(odb, item, f"{where}/{name}", name == "series", report)
        elif name == "artifacts":
            for key_name, artifact in (_tree(odb, item, f"{where}/artifacts", report) or {}).items():
                if _key_ok(key_name, f"{where}/artifacts", report):
                    _blob(odb, artifact, LIMITS["artifact"], f"{where}/artifacts/{key_name}", report)
        else:
            report.add(f"{where}: unexpected entry {name!r}")
    if "record" not in files or "state" not in files:
        report.add(f"{where}: missing {'record' if 'record' not in files else 'state'}")


def _key_ok(name: str, where: str, report: _Report) -> bool:
    try:
        check_key(key_from_name(name))
    except ProvError as exc:
        report.add(f"{where}/{name}: {exc}")
        return False
    return True


def _validate_series(odb: ObjectDatabase, entry: TreeEntry, where: str, metrics: bool, report: _Report) -> None:
    decode = decode_metric_chunk if metrics else decode_observation_chunk
    for key_name, series in (_tree(odb, entry, where, report) or {}).items():
        if not _key_ok(key_name, where, report):
            continue
        for chunk, item in (_tree(odb, series, f"{where}/{key_name}", report) or {}).items():
            path = f"{where}/{key_name}/{chunk}"
            if not _CHUNK_NAME.match(chunk):
                report.add(f"{path}: not a chunk name (<writer>-<seq>)")
                continue
            data = _blob(odb, item, LIMITS["chunk"], path, report)
            if data is not None:
                _decode(lambda d=data, p=path: _chunk(decode, d, p), report)


def _chunk(decode, data: bytes, path: str):
    try:
        return decode(data)
    except ProvError:
        raise
    except Exception as exc:  # a malformed msgpack payload raises many kinds
        raise DataError(f"{path}: not a valid chunk ({exc})") from exc


def validate_notes(odb: ObjectDatabase, local: str | None, remote: str | None) -> list[str]:
    """Problems with the notes the remote adds or changes (empty: fine)."""
    if remote is None or remote == local:
        return []
    report = _Report()
    mine = dict(note_entries(odb, local))
    try:
        theirs = list(note_entries(odb, remote))
    except ProvError as exc:
        return [f"notes tree: {exc}"]
    for commit, blob in theirs:
        if report.full():
            break
        if mine.get(commit) == blob:
            continue
        where = f"note of {commit[:12]}"
        data = _blob(odb, TreeEntry(MODE_BLOB, commit, blob), LIMITS["note"], where, report)
        if data is None:
            continue
        for i, line in enumerate(split_note(data), 1):
            _decode(lambda ln=line, w=f"{where}, line {i}": codec.decode_note_line(ln, w), report)
    return report.problems
