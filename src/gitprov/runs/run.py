"""``Run``: an experiment run recorded in the repository's ledger.

What a run logs is buffered by its ``RunWriter`` (``runs/writer.py``): points spill
into journaled chunk blobs and the ledger gets one transaction per ``flush()``, every
``flush_seconds`` and at ``end()``; a run killed with SIGKILL loses at most the points
logged since the last spill. Build a stored run with ``Run.load``.

``Run`` itself is the run's identity and lifecycle (start, end, clone, delete); its
calls by concept are mixed in: hyperparameters, attributes and tags (``run_values``),
metrics and observations (``run_metrics``), code, data, environment, seeds and schema
(``run_context``), artifacts and the model (``run_artifacts``).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import UsageError
from ..keys import check_label
from ..model import RunRecord, RunState
from ..store.journal import Journal
from . import open_runs, reading
from .run_artifacts import ArtifactMethods
from .run_context import ContextMethods
from .run_metrics import MetricMethods
from .run_values import ValueMethods
from .writer import RunSettings, RunWriter

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["Run", "RunSettings", "write_report"]

#: git-prov's attributes that describe the run that holds them, so a full clone makes its
#: own rather than copying them: its code, environment, duration, generator states, and
#: the verdict of a rerun (a clone reproduces nothing).
_CLONE_OWN_ATTRIBUTES = frozenset({"prov.code", "prov.environment", "prov.duration_seconds", "prov.seeds",
                                   "prov.rerun"})

_ENDED_STATUSES = ("finished", "failed", "killed", "crashed")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


class Run(ValueMethods, MetricMethods, ContextMethods, ArtifactMethods):
    """One run. Create with ``Repository.start_run``; load with ``Repository.get_run``."""

    def __init__(self, store: ProvStore, run_id: str, record: RunRecord, state: RunState,
                 *, settings: RunSettings | None = None, journal: Journal | None = None,
                 stored: bool = True, active: bool = False) -> None:
        self._store = store
        self.id = run_id
        self.record = record
        self._state = state
        self._active = active
        self._writer = RunWriter(store, run_id, record, state, settings=settings, journal=journal, stored=stored)
        if active:  # ended at the process's exit if the caller never ends it
            open_runs.remember(self)

    @classmethod
    def load(cls, store: ProvStore, run_id: str, tip: str | None = None, *,
             blobs: tuple[bytes, bytes] | None = None) -> Run:
        """The stored run ``run_id`` (a full id) as of the ledger commit ``tip`` (default:
        now), or from its ``(record, state)`` bytes already read (bulk readers)."""
        if blobs is not None:
            record = codec.decode(blobs[0], RunRecord, f"record of run {run_id[:12]}")
            state = codec.decode(blobs[1], RunState, f"state of run {run_id[:12]}")
        else:
            tip = store.ledger.tip() if tip is None else tip
            record = reading.read_record(store.ledger, run_id, tip)
            state = reading.read_state(store.ledger, run_id, tip)
        return cls(store, run_id, record, state)

    @property
    def store(self) -> ProvStore:
        """The repository storage the run lives in."""
        return self._store

    # -- identity ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._state.name

    @property
    def experiment(self) -> str:
        return self._state.experiment

    @property
    def status(self) -> str:
        return self._state.status

    @property
    def state(self) -> RunState:
        return self._state

    def __repr__(self) -> str:
        return f"<Run {self.id[:12]} {self.name!r} {self.status}>"

    @property
    def url(self) -> str:
        """This run's page in the web interface: the ``prov ui`` serving this repository
        now, else where ``prov ui`` serves it by default (``http://127.0.0.1:8470/``)."""
        from .._util.ui_address import ui_url

        return f"{ui_url(self._store.git.prov_dir())}#/run/{self.id}"

    def report(self, path: str | os.PathLike[str] | None = None, title: str | None = None) -> str:
        """Write a self-contained HTML report of this run (``prov report``) to ``path``
        (default ``report-<id12>.html``) and return its path. Needs the ui extra."""
        if self._active:
            self.flush()
        return write_report(self._store, [self.id], path or f"report-{self.id[:12]}.html", title, "Run.report")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._active:
            return
        if exc_type is not None and issubclass(exc_type, SystemExit):  # sys.exit(n): by its status
            self.end(*open_runs.exit_ending(exc.code))
        else:
            self.end("finished" if exc_type is None else "killed" if issubclass(exc_type, KeyboardInterrupt)
                     else "failed")

    # -- guards ------------------------------------------------------------------
    def _require_active(self, what: str) -> None:
        if not self._active:
            if self._state.status in _ENDED_STATUSES:
                raise UsageError(f"cannot {what}: run {self.id[:12]} has ended ({self._state.status})")
            raise UsageError(f"cannot {what}: run {self.id[:12]} is not active in this process")

    def _touch(self) -> None:
        self._writer.dirty = True
        if not self._active:  # metadata edit of a stored run: write it now
            self._writer.write_state_now()

    # -- pipeline stages -------------------------------------------------------------
    def stage(self, name: str, params: dict[str, Any] | None = None, inputs: Any = None, *,
              code: bool = False, data: bool | dict[str, Any] = False) -> Any:
        """A named pipeline stage with a cache key (``stage.cache_key``: arguments and
        inputs, and the code and data when asked); see ``gitprov.runs.stage`` and
        ``Repository.find_cached(stage)``."""
        from .stage import Stage

        return Stage(self, name, params, inputs, code=code, data=data)

    # -- dates and lifecycle ---------------------------------------------------------
    def get_date_created(self) -> datetime:
        return _parse_time(self.record.created)  # type: ignore[return-value]

    def get_date_updated(self) -> datetime:
        return _parse_time(self._state.updated) or self.get_date_created()

    def rename(self, name: str) -> None:
        self._state.name = check_label(name, "run name")
        self._touch()

    def clone(self, experiment: str | None = None, *, full: bool = True) -> Run:
        """A new active run (its parent: this one) that is a copy of this run: its
        hyperparameters, tags, attributes, every metric point and observation (steps,
        epochs and timestamps kept), artifacts (by reference: no blob is written
        again), dataset versions, schema, lineage and model record. The clone's code
        version is its own (HEAD now). ``full=False``: hyperparameters, tags and user
        attributes only."""
        from .start import start_run

        new = start_run(
            self._store, name=self.name, experiment=self.experiment if experiment is None else experiment,
            params=self.get_hyperparameters(), parent=self.id,
        )
        new.log_tags(self.get_tags())
        keep = (lambda k: k not in _CLONE_OWN_ATTRIBUTES) if full else (
            lambda k: not k.startswith("prov."))
        attributes = {k: v for k, v in self.get_attributes().items() if keep(k)}
        if attributes:
            new.log_attributes(attributes)
        if full:
            from .cloning import copy_contents

            copy_contents(self, new)
        return new

    def delete(self) -> None:
        """Mark the run deleted (a tombstone; the ledger's history keeps it)."""
        self._state.deleted = True
        if self._active:
            self.end("killed" if self._state.status == "running" else self._state.status)
        else:
            self._touch()

    def flush(self) -> None:
        """Write everything logged so far to the ledger now."""
        if self._active:
            self._writer.flush()

    def end(self, status: str = "finished", exit_code: int | None = None) -> None:
        """End the run; nothing can be logged afterwards."""
        if status not in _ENDED_STATUSES:
            raise UsageError(f"status must be one of {', '.join(_ENDED_STATUSES)}, not {status!r}")
        self._require_active("end the run")
        if self.record.environment is not None and self.record.launcher != "command":  # beside those at start
            from .seeds import generator_states

            ending = {f"{key}@end": value for key, value in generator_states().items()}
            if ending:
                self._state.attributes["prov.seeds"] = {**(self._state.attributes.get("prov.seeds") or {}), **ending}
        try:
            self._writer.finish(status, exit_code)
        finally:  # ended, or its failure already raised to the caller: not tried again at exit
            open_runs.forget(self)
        self._active = False


def write_report(store: ProvStore, run_ids: list[str], path: str | os.PathLike[str], title: str | None,
                 what: str, start: str | None = None) -> str:
    """``prov report`` of ``run_ids`` written to ``path`` (for ``Run.report`` and
    ``Stage.report``, named ``what`` in the error when the ui extra is missing)."""
    import importlib

    try:
        import numpy  # noqa: F401  (the ui extra)
    except ImportError as exc:
        from ..errors import MissingExtraError

        raise MissingExtraError(f"{what} needs the ui extra: pip install 'git-prov[ui]'") from exc
    # the report is a front end (gitprov.ui, above this layer): loaded by name at call time
    report = importlib.import_module("gitprov.ui.report")
    return report.write_report(store, run_ids, path, title, start=start)
