"""The stage cache: the latest finished pipeline stage with the same name and arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import UsageError
from ..runs.run import Run
from ..runs.stage import CachedStage
from .store import index_of

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["find_cached"]


def find_cached(store: ProvStore, stage_name: str, args_hash: str, commit: str | None = None) -> CachedStage | None:
    """The latest finished stage ``stage_name`` with the same ``args_hash`` (and, when
    given, run on the clean commit ``commit``, a revision), or ``None``."""
    if not isinstance(stage_name, str) or not isinstance(args_hash, str):
        raise UsageError("find_cached takes a stage name and an args hash (strings)")
    sql = ("SELECT r.id, a.value FROM stages s JOIN runs r ON r.rid = s.run JOIN attributes a ON a.run = s.run "
           "AND a.key = s.key WHERE s.name = ? AND s.args_hash = ? AND s.status = 'finished' AND r.deleted = 0")
    args: list[Any] = [stage_name, args_hash]
    if commit is not None:
        sql += " AND s.commit_id = ? AND s.dirty = 0"
        args.append(store.git.resolve(commit))
    index = index_of(store)
    row = index.connection().execute(sql + " ORDER BY s.ended DESC, r.id LIMIT 1", args).fetchone()
    if row is None:
        return None
    return CachedStage(msgspec.json.decode(row[1]), Run.load(store, row[0].hex(), index.indexed_tip()))
