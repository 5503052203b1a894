"""Finding runs: a query (MongoDB-style dict or MLflow-style filter string) answered by
the index, and the matching runs loaded many at once — as a list, or streamed page by
page for listings of any length."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import DataError, UsageError
from ..runs.run import Run
from .reading import read_run_blobs, read_run_pages
from .store import RunIndex, index_of

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["FIRST_PAGE", "find_runs", "iter_runs", "load_runs"]

#: runs a streamed listing loads before it asks the index for the rest, so its first
#: lines come without waiting for the whole listing to be ordered
FIRST_PAGE = 50


def find_runs(store: ProvStore, query: dict[str, Any] | str | None = None,
              order_by: str | list[str] | None = None, limit: int | None = None, *,
              include_deleted: bool = False) -> list[Run]:
    """Runs matching ``query``, ordered by ``order_by`` (``"metrics.acc desc"``; default
    newest first), at most ``limit``."""
    query = _checked(query, limit)
    index = index_of(store)
    return load_runs(store, _trees(index, _run_ids(index, query, order_by, limit, include_deleted)))


def iter_runs(store: ProvStore, query: dict[str, Any] | str | None = None,
              order_by: str | list[str] | None = None, limit: int | None = None, *,
              include_deleted: bool = False) -> Iterator[Run]:
    """The runs of ``find_runs``, yielded as they are read through one ``git cat-file``:
    the first ``FIRST_PAGE`` at once, the rest a page at a time (``reading.PAGE``) once
    they have begun, so memory stays bounded whatever the number of runs. The index
    is read in short statements, never held open while runs are yielded: a run another
    process changes meanwhile is yielded as it is when its page is read, one it removes
    is left out."""
    return _stream(store, _checked(query, limit), order_by, limit, include_deleted)


def _stream(store: ProvStore, query: dict[str, Any] | None, order_by: str | list[str] | None, limit: int | None,
            include_deleted: bool) -> Iterator[Run]:
    index = index_of(store)
    size = FIRST_PAGE if limit is None else min(limit, FIRST_PAGE)
    first = _run_ids(index, query, order_by, size, include_deleted)
    if len(first) < size or size == limit:  # that is the whole listing
        yield from load_runs(store, _trees(index, first))
        return

    def pages() -> Iterator[list[tuple[str, str]]]:
        from .reading import PAGE

        yield _trees(index, first)
        ids = _run_ids(index, query, order_by, limit, include_deleted)  # asked once the first page is out
        if ids[:len(first)] == first:
            rest = ids[len(first):]
        else:  # the index changed in between: go on without repeating a run
            shown = set(first)
            rest = [run_id for run_id in ids if run_id not in shown]
        del ids
        for start in range(0, len(rest), PAGE):
            yield _trees(index, rest[start:start + PAGE])

    for blobs in read_run_pages(store.git, pages()):
        yield Run.load(store, blobs.run_id, blobs=(blobs.record, blobs.state))


def load_runs(store: ProvStore, trees: Iterable[tuple[str, str]]) -> list[Run]:
    """Runs read from their ``(run id, directory tree id)``: many at once through the
    bulk reader, no path walk from the ledger root."""
    return [Run.load(store, b.run_id, blobs=(b.record, b.state)) for b in read_run_blobs(store.git, list(trees))]


def _checked(query: dict[str, Any] | str | None, limit: int | None) -> dict[str, Any] | None:
    from .filter import parse_filter

    if isinstance(query, str):
        query = parse_filter(query)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise UsageError(f"limit must be a non-negative integer, not {limit!r}")
    return query


def _run_ids(index: RunIndex, query: dict[str, Any] | None, order_by: str | list[str] | None,
             limit: int | None, include_deleted: bool) -> list[str]:
    import sqlite3

    from .query import select_run_ids

    db = index.connection()
    try:
        return select_run_ids(db, query, order_by, limit, include_deleted)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc


def _trees(index: RunIndex, run_ids: list[str]) -> list[tuple[str, str]]:
    import sqlite3

    try:
        return index.run_trees(run_ids)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc
