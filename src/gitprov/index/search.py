"""Finding runs: a query (MongoDB-style dict or MLflow-style filter string) answered by
the index, and the matching runs loaded many at once — as a list, or streamed page by
page for listings of any length.

``find_runs`` answers with the runs' ids and directory tree ids from one index query and
reads the runs when they are first used: the first use of any run of the list reads the
stored bytes of all of them (one ``git cat-file`` for many, ``reading``), and each run is
decoded when it is used. A tree id names the run's directory as it was when the query
was answered, so what is read later is exactly what the query matched."""

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
    found = _select(index_of(store), query, order_by, limit, include_deleted)
    batch = _Batch(store, found)
    return [_LazyRun(store, run_id, batch) for run_id, _ in found]


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
    first_trees = _select(index, query, order_by, size, include_deleted)
    if len(first_trees) < size or size == limit:  # that is the whole listing
        yield from load_runs(store, first_trees)
        return
    first = [run_id for run_id, _ in first_trees]

    def pages() -> Iterator[list[tuple[str, str]]]:
        from .reading import PAGE

        yield first_trees
        ids = [run_id for run_id, _ in _select(index, query, order_by, limit, include_deleted)]  # once the first page is out
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


def _select(index: RunIndex, query: dict[str, Any] | None, order_by: str | list[str] | None,
            limit: int | None, include_deleted: bool) -> list[tuple[str, str]]:
    import sqlite3

    from .query import select_runs

    db = index.connection()
    try:
        return select_runs(db, query, order_by, limit, include_deleted)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc


def _trees(index: RunIndex, run_ids: list[str]) -> list[tuple[str, str]]:
    import sqlite3

    try:
        return index.run_trees(run_ids)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc


class _Batch:
    """The runs of one ``find_runs`` answer: their stored bytes, all read at the first
    use of any of them, each run's given up once it is decoded."""

    def __init__(self, store: ProvStore, runs: list[tuple[str, str]]) -> None:
        self.store = store
        self.runs = runs
        self.blobs: dict[str, tuple[bytes, bytes]] | None = None

    def take(self, run_id: str) -> tuple[bytes, bytes]:
        if self.blobs is None:
            self.blobs = {b.run_id: (b.record, b.state) for b in read_run_blobs(self.store.git, self.runs)}
            self.runs = []
        return self.blobs[run_id]

    def done(self, run_id: str) -> None:
        """``run_id`` is decoded: its bytes are no longer needed."""
        if self.blobs is not None:
            self.blobs.pop(run_id, None)


class _LazyRun(Run):
    """A ``Run`` of a ``find_runs`` answer, read when it is first used, its record and
    state each decoded at its first use (``record``, ``state``, any method); the same
    run as ``Run.load`` gives."""

    def __init__(self, store: ProvStore, run_id: str, batch: _Batch) -> None:  # noqa: D107 (no Run.__init__)
        self._store = store
        self.id = run_id
        self._active = False
        self._batch = batch

    def _part(self, slot: str) -> Any:
        """The decoded record, state or writer (``slot``), made at its first use."""
        value = vars(self).get(slot)
        if value is not None:
            return value
        if slot == "_lazy_writer":
            from ..runs.writer import RunWriter

            value = vars(self)[slot] = RunWriter(self._store, self.id, self.record, self._state)
            return value
        from ..model import RunRecord, RunState
        from .rows import decode_part  # not imported before a run is used: the CLI's start

        record, state = self._batch.take(self.id)
        if slot == "_lazy_record":
            value = decode_part(record, RunRecord, RunRecord, f"record of run {self.id[:12]}")
        else:
            value = decode_part(state, RunState, RunState, f"state of run {self.id[:12]}")
        vars(self)[slot] = value
        if vars(self).get("_lazy_record") is not None and vars(self).get("_lazy_state") is not None:
            self._batch.done(self.id)
        return value

    def _lazy(slot: str) -> property:  # type: ignore[misc]  # noqa: N805 (a class-body helper)
        def get(self: _LazyRun) -> Any:
            return self._part(slot)

        def put(self: _LazyRun, value: Any) -> None:
            vars(self)[slot] = value

        return property(get, put)

    record = _lazy("_lazy_record")
    _state = _lazy("_lazy_state")
    _writer = _lazy("_lazy_writer")
    del _lazy
