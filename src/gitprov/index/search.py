"""Finding runs: a query (MongoDB-style dict or MLflow-style filter string) answered by
the index, and the matching runs loaded many at once — as a list, or streamed page by
page for listings of any length.

``find_runs`` answers with the runs' ids and directory tree ids from one index query.
A run's summary — name, experiment, status, times, params, latest metric values, tags,
attributes: what ``mlflow.search_runs`` gives of a run — comes from the index rows
(``summary``; the first use of any run of the list reads those of all of them). Any
other field reads the runs from git: the stored bytes of all of them at once (one ``git
cat-file`` for many, ``reading``), each run decoded when it is used. A tree id names the
run's directory as it was when the query was answered, so what is read later, from
the index or from git, is exactly what the query matched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import DataError, UsageError
from ..runs.run import Run
from .reading import read_run_blobs, read_run_pages
from .store import RunIndex, index_of
from .summary import CREATED, NAME, UPDATED, moment

if TYPE_CHECKING:
    from datetime import datetime

    from ..store.prov_store import ProvStore
    from .summary import Summaries

__all__ = ["FIRST_PAGE", "find_runs", "iter_runs", "load_runs"]

#: a ``_LazyRun`` whose summary is not looked up yet
_UNREAD: Any = object()
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
    found = _select(index, query, order_by, limit, include_deleted, rids=True)
    batch = _Batch(store, found, index)
    return [_LazyRun(store, run_id, batch) for run_id, _, _ in found]


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
            limit: int | None, include_deleted: bool, rids: bool = False) -> list[Any]:
    """``(run id, tree id)`` of the runs found, or with ``rids`` ``(run id, tree id as bytes, rid)``."""
    import sqlite3

    from .query import select_found, select_runs

    db = index.connection()
    try:
        return (select_found if rids else select_runs)(db, query, order_by, limit, include_deleted)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc


def _trees(index: RunIndex, run_ids: list[str]) -> list[tuple[str, str]]:
    import sqlite3

    try:
        return index.run_trees(run_ids)
    except sqlite3.Error as exc:
        raise DataError(f"the query index cannot answer ({exc}); delete {index.path} to rebuild it") from exc


class _Batch:
    """The runs of one ``find_runs`` answer: their summaries (``summary``), all read from
    the index at the first use of any of them, and their stored bytes, all read at the
    first use of a field the index lacks; each run's bytes given up once decoded."""

    def __init__(self, store: ProvStore, found: list[tuple[str, bytes, int]], index: RunIndex) -> None:
        self.store = store
        self.found = found
        self.index = index
        self.blobs: dict[str, tuple[bytes, bytes]] | None = None
        #: the answer's summaries, once read (``summary``)
        self.summaries: Summaries | None = None

    def summary(self, run_id: str) -> tuple | None:
        """The index's summary row of ``run_id`` as the query found it (``summaries``
        decodes it), or None (read it)."""
        if self.summaries is None:
            self.summaries = self._read_summaries()
        return self.summaries.rows.get(run_id)

    def _read_summaries(self) -> Summaries:
        import sqlite3

        from .summary import Summaries, read_summaries

        db = self.index._db
        if db is None or not self.found or db.in_transaction:
            return Summaries({}, None)  # type: ignore[arg-type]
        try:
            return read_summaries(db, self.found)
        except sqlite3.Error:  # locked, or gone: the runs are read from git instead
            return Summaries({}, None)  # type: ignore[arg-type]

    def take(self, run_id: str) -> tuple[bytes, bytes]:
        if self.blobs is None:
            runs = [(run_id, tree.hex()) for run_id, tree, _ in self.found]
            self.blobs = {b.run_id: (b.record, b.state) for b in read_run_blobs(self.store.git, runs)}
        return self.blobs[run_id]

    def done(self, run_id: str) -> None:
        """``run_id`` is decoded: its bytes are no longer needed."""
        if self.blobs is not None:
            self.blobs.pop(run_id, None)


class _LazyRun(Run):
    """A ``Run`` of a ``find_runs`` answer, read when it is first used, its record and
    state each decoded at its first use (``record``, ``state``, any method); the same
    run as ``Run.load`` gives."""

    #: a stored run, never the active one (a class default: one assignment less for each run)
    _active = False

    def __init__(self, store: ProvStore, run_id: str, batch: _Batch) -> None:  # noqa: D107 (no Run.__init__)
        self._store = store
        self.id = run_id
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
        own = vars(self)
        own[slot] = value
        if slot == "_lazy_state":
            own["_lazy_summary"] = None  # the state answers from now on
        if own.get("_lazy_record") is not None and own.get("_lazy_state") is not None:
            self._batch.done(self.id)
        return value

    def _lazy(slot: str) -> property:  # type: ignore[misc]  # noqa: N805 (a class-body helper)
        def get(self: _LazyRun) -> Any:
            return self._part(slot)

        def put(self: _LazyRun, value: Any) -> None:
            vars(self)[slot] = value
            if slot == "_lazy_state" and value is not None:
                vars(self)["_lazy_summary"] = None

        return property(get, put)

    record = _lazy("_lazy_record")
    _state = _lazy("_lazy_state")
    _writer = _lazy("_lazy_writer")
    del _lazy

    # -- the summary, from the index until the run is read -------------------------
    #: the summary row once looked up (``_summary``); ``_UNREAD`` before, so an accessor
    #: tests it without a call; None once the state answers
    _lazy_summary: Any = _UNREAD
    #: the decoded record, once read (``_part``)
    _lazy_record: Any = None

    def _summary(self) -> tuple | None:
        """The index's summary row of this run, unless its state has been read (then the
        state, which a later change goes to, answers: ``_part`` sets it to None)."""
        own = self.__dict__
        summary = own.get("_lazy_summary", _UNREAD)
        if summary is _UNREAD:
            summary = own["_lazy_summary"] = None if own.get("_lazy_state") is not None else \
                self._batch.summary(self.id)
        return summary

    def _kept(self, part: str) -> dict[str, Any] | None:
        """A part of the summary decoded once and kept, for lookups of one key (None: read
        it from the run)."""
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        if row is None:
            return None
        own = self.__dict__
        slot = f"_lazy_{part}"
        if slot not in own:
            own[slot] = getattr(self._batch.summaries, part)(row)
        return own[slot]

    # each accessor reads ``_lazy_summary`` itself and calls ``_summary`` only the first
    # time: at 1,000 results a call less per accessor is a millisecond
    @property
    def name(self) -> str:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        return row[NAME] if row is not None else self._state.name

    @property
    def experiment(self) -> str:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        return self._batch.summaries.experiment(row) if row is not None else self._state.experiment

    @property
    def status(self) -> str:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        return self._batch.summaries.status(row) if row is not None else self._state.status

    def get_hyperparameters(self) -> dict[str, Any]:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        if row is not None and self._lazy_record is None:
            params = self._batch.summaries.params(row)
            if params is not None:
                return params
        return super().get_hyperparameters()

    def get_hyperparameter(self, key: str) -> Any:
        params = self._kept("params") if self._lazy_record is None else None
        return params.get(key) if params is not None else super().get_hyperparameter(key)

    def get_metric(self, key: str) -> float | None:
        metrics = self._kept("metrics")
        return metrics.get(key) if metrics is not None else super().get_metric(key)

    def get_metric_keys(self) -> list[str]:
        metrics = self._kept("metrics")
        return sorted(metrics) if metrics is not None else super().get_metric_keys()

    def get_metrics(self) -> dict[str, float]:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        metrics = self._batch.summaries.metrics(row) if row is not None else None
        return metrics if metrics is not None else super().get_metrics()  # sorted by key, as Run.get_metrics

    def get_tags(self) -> dict[str, str]:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        return self._batch.summaries.tags(row) if row is not None else super().get_tags()

    def get_attribute(self, key: str) -> Any:
        attributes = self._kept("attributes")
        return attributes.get(key) if attributes is not None else super().get_attribute(key)

    def get_attributes(self) -> dict[str, Any]:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        attributes = self._batch.summaries.attributes(row) if row is not None else None
        return attributes if attributes is not None else super().get_attributes()

    def get_date_created(self) -> datetime:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        if row is not None:  # a record never changes its creation time
            return moment(row[CREATED])  # type: ignore[return-value]
        return super().get_date_created()

    def get_date_updated(self) -> datetime:
        row = self._lazy_summary
        if row is _UNREAD:
            row = self._summary()
        if row is not None:
            return moment(row[UPDATED]) or self.get_date_created()
        return super().get_date_updated()
