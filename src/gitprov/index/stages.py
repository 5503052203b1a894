"""The stage cache: the latest finished pipeline stage with the same cache key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import UsageError
from ..runs.run import Run
from ..runs.stage import (
    CachedStage,
    cache_key,
    code_digest,
    combined_hash,
    data_digests,
    inputs_digests,
)
from .store import index_of

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["find_cached"]


def find_cached(store: ProvStore, stage_name: str, args_hash: str, commit: str | None = None, *,
                inputs: Any = None, code: bool = False, data: dict[str, Any] | None = None,
                key: str | None = None) -> CachedStage | None:
    """The latest finished stage ``stage_name`` whose cache key is the one of these
    arguments, inputs (as ``run.stage`` takes them; none: a stage without inputs),
    the code now (``code=True``) and ``data`` (dataset key -> path or digest), or
    ``key`` itself; when ``commit`` (a revision) is given, run on that clean commit."""
    if not isinstance(stage_name, str) or not isinstance(args_hash, str):
        raise UsageError("find_cached takes a stage name and an args hash (strings)")
    if key is None:
        digests = inputs_digests(inputs)
        ran = None
        if code:
            from ..runs.code import code_version

            now = code_version(store.git)
            ran = code_digest(now.commit, now.patch)
        data_hash = combined_hash(data_digests(data)) if data is not None else None
        key = cache_key(stage_name, args_hash, combined_hash(digests) if digests else None, ran, data_hash)
    sql = ("SELECT r.id, a.value FROM stages s JOIN runs r ON r.rid = s.run JOIN attributes a ON a.run = s.run "
           "AND a.key = s.key WHERE s.name = ? AND s.args_hash = ? AND s.status = 'finished' AND r.deleted = 0")
    args: list[Any] = [stage_name, args_hash]
    if commit is not None:
        sql += " AND s.commit_id = ? AND s.dirty = 0"
        args.append(store.git.resolve(commit))
    index = index_of(store)
    # the index holds name and arguments; the rest of the key is in each candidate's record
    for run_id, value in index.connection().execute(sql + " ORDER BY s.ended DESC, r.id", args):
        record = msgspec.json.decode(value)
        stored_key = record.get("cache_key") or cache_key(record["name"], record["args_hash"], record.get("inputs_hash"))
        if stored_key == key:
            return CachedStage(record, Run.load(store, run_id.hex(), index.indexed_tip()))
    return None
