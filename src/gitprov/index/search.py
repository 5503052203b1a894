"""Finding runs: a query (MongoDB-style dict or MLflow-style filter string) answered by
the index, and the matching runs loaded many at once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import DataError, UsageError
from ..runs.run import Run
from .reading import read_run_blobs
from .store import index_of

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["find_runs", "load_runs"]


def find_runs(store: ProvStore, query: dict[str, Any] | str | None = None,
              order_by: str | list[str] | None = None, limit: int | None = None, *,
              include_deleted: bool = False) -> list[Run]:
    """Runs matching ``query``, ordered by ``order_by`` (``"metrics.acc desc"``; default
    newest first), at most ``limit``."""
    import sqlite3

    from .filter import parse_filter
    from .query import select_run_ids

    if isinstance(query, str):
        query = parse_filter(query)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise UsageError(f"limit must be a non-negative integer, not {limit!r}")
    index = index_of(store)
    db = index.connection()
    try:
        ids = select_run_ids(db, query, order_by, limit, include_deleted)
        trees = index.run_trees(ids)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc
    return load_runs(store, trees)


def load_runs(store: ProvStore, trees: Iterable[tuple[str, str]]) -> list[Run]:
    """Runs read from their ``(run id, directory tree id)``: many at once through the
    bulk reader, no path walk from the ledger root."""
    return [Run.load(store, b.run_id, blobs=(b.record, b.state)) for b in read_run_blobs(store.git, list(trees))]
