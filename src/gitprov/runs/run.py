"""``Run``: an experiment run recorded in the repository's ledger.

What a run logs is buffered by its ``RunWriter`` (``runs/writer.py``): points spill
into journaled chunk blobs and the ledger gets one transaction per ``flush()``, every
``flush_seconds`` and at ``end()``; a run killed with SIGKILL loses at most the points
logged since the last spill. Build a stored run with ``Run.load``.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import codec
from ..errors import UsageError
from ..keys import check_json_value, check_key, check_label
from ..model import ArtifactRef, DatasetVersion, RunRecord, RunState
from ..store.journal import Journal
from . import reading
from .reading import MetricPoint, Observation
from .run_artifacts import ArtifactMethods
from .writer import RunSettings, RunWriter, SeriesBuffer

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["Run", "RunSettings", "write_report"]

#: git-prov's attributes that describe the run that holds them, so a full clone makes its
#: own rather than copying them: its code, environment, duration, generator states, and
#: the verdict of a rerun (a clone reproduces nothing).
_CLONE_OWN_ATTRIBUTES = frozenset({"prov.code", "prov.environment", "prov.duration_seconds", "prov.seeds",
                                   "prov.rerun"})

_ENDED_STATUSES = ("finished", "failed", "killed", "crashed")


def _now_ms() -> int:
    return int(time.time() * 1000)


#: steps are stored as int64 deltas: any two must differ by less than 2**63
STEP_LIMIT = 1 << 62
#: timestamps: from the epoch to the year 10000, in seconds
LAST_TIMESTAMP = 253_402_300_800


def _to_ms(timestamp: Any) -> int:
    if isinstance(timestamp, datetime):
        seconds = timestamp.timestamp()
    elif isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        seconds = timestamp
    else:
        raise UsageError(f"timestamp must be seconds since the epoch or a datetime, got {type(timestamp).__name__}")
    if not 0 <= seconds < LAST_TIMESTAMP:  # NaN fails this too
        raise UsageError(f"timestamp {timestamp!r} is not between 1970 and the year 10000; pass seconds since the "
                         "epoch (time.time()) or a datetime")
    return int(seconds * 1000)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


class Run(ArtifactMethods):
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
        if self._active:
            status = "finished" if exc_type is None else ("killed" if exc_type is KeyboardInterrupt else "failed")
            self.end(status)

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

    # -- hyperparameters ---------------------------------------------------------
    def log_hyperparameter(self, key: str, value: Any, overwrite: bool = False) -> None:
        self.log_hyperparameters({key: value}, overwrite=overwrite)

    def log_hyperparameters(self, params: dict[str, Any], overwrite: bool = False) -> None:
        self._require_active("log hyperparameters")
        if not isinstance(params, dict):
            raise UsageError("hyperparameters must be a dict of key -> value")
        from ..settings import scrubber

        current = self.get_hyperparameters()
        for key, value in params.items():
            check_key(key, "hyperparameter key")
            check_json_value(value, f"hyperparameter {key!r}")
        params = scrubber(self._store.work_tree).redact_params(params, self._store.redaction_key)
        for key, value in params.items():
            if key in current and current[key] != value and not overwrite:
                raise UsageError(
                    f"hyperparameter {key!r} is already {current[key]!r}; pass overwrite=True to change it to {value!r}"
                )
        self._state.params.update(params)
        self._touch()

    def get_hyperparameter(self, key: str) -> Any:
        return self.get_hyperparameters().get(key)

    def get_hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter, those given at the start and those logged since, by key
        in sorted order (as the stored record has each part)."""
        return dict(sorted({**self.record.params, **self._state.params}.items()))

    # -- metrics -----------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: Any = None) -> None:
        """Append a point to series ``key``; ``step`` defaults to the previous step + 1,
        ``timestamp`` (seconds or datetime) to now. NaN and ±Inf are kept exactly."""
        writer = self._writer
        series = writer.series.get(key)
        if series is None or not self._active:
            series = self._open_series(key)
        if value.__class__ is not float:
            value = self._coerce_value(key, value)
        if step is None:
            step = series.next_step
            if step >= 0x4000000000000000:  # STEP_LIMIT; a default step only grows
                raise UsageError(f"the next step of metric {key!r} would be 2**62 or more; steps must lie strictly "
                                 "between -2**62 and 2**62")
        else:
            if step.__class__ is not int:
                step = self._coerce_step(step)
            if not -0x4000000000000000 < step < 0x4000000000000000:  # STEP_LIMIT, as a constant: no lookup
                raise UsageError(f"step {step} of metric {key!r} is out of range; steps must lie strictly between "
                                 "-2**62 and 2**62")
        now = time.time()
        stamp = int(now * 1000) if timestamp is None else _to_ms(timestamp)
        series.steps.append(step)
        series.next_step = step + 1
        series.stamps.append(stamp)
        series.values.append(value)
        writer.buffered += 1
        if writer.buffered >= writer.spill_points or now >= writer.spill_due:
            writer.on_interval(now)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, timestamp: Any = None) -> None:
        if not isinstance(metrics, dict):
            raise UsageError("metrics must be a dict of key -> number")
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp)

    def _open_series(self, key: str) -> SeriesBuffer:
        self._require_active("log metrics")
        check_key(key, "metric key")
        series = self._writer.series.get(key)
        if series is None:
            series = self._writer.series[key] = SeriesBuffer()
            summary = self._state.metrics.get(key)
            if summary is not None:
                series.next_step = summary.step + 1
        return series

    @staticmethod
    def _coerce_value(key: str, value: Any) -> float:
        if isinstance(value, bool) or not hasattr(value, "__float__"):
            raise UsageError(f"metric {key!r} must be a number, got {type(value).__name__}")
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError) as exc:
            raise UsageError(f"metric {key!r} cannot be stored as a float64: {exc}") from exc

    @staticmethod
    def _coerce_step(step: Any) -> int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise UsageError(f"step must be an integer, got {type(step).__name__}")
        return int(step.__index__())

    def get_metric(self, key: str) -> float | None:
        """The latest logged value of ``key`` (None if never logged)."""
        series = self._writer.series.get(key)
        if series is not None and series.values:
            return series.values[-1]
        summary = self._state.metrics.get(key)
        return summary.value if summary is not None else None

    def get_metric_history(self, key: str) -> list[MetricPoint]:
        """Every point of ``key`` in logging order: ``(step, timestamp_ms, value)``."""
        writer, odb = self._writer, self._store.git.odb
        points = reading.metric_history(self._store.ledger, self.id, key) if writer.stored else []
        pending = [odb.read_typed(oid, "blob") for oid in writer.pending_chunks.get(key, [])]
        points += reading.metric_history_from_blobs(pending)
        series = writer.series.get(key)
        if series is not None:
            points += [MetricPoint(*p) for p in zip(series.steps, series.stamps, series.values, strict=True)]
        return points

    def get_metric_keys(self) -> list[str]:
        return sorted(set(self._state.metrics) | {k for k, s in self._writer.series.items() if s.values})

    def get_metrics(self) -> dict[str, float]:
        """The latest value of every metric, by key (Verta's ``get_metrics()``)."""
        return {key: self.get_metric(key) for key in self.get_metric_keys()}  # type: ignore[misc]

    # -- observations ------------------------------------------------------------
    def log_observation(self, key: str, value: Any, timestamp: Any = None, epoch_num: int | None = None) -> int:
        """Record an observation (any JSON value); epochs count up per key."""
        self._require_active("log observations")
        check_key(key, "observation key")
        check_json_value(value, f"observation {key!r}")
        count = self._state.observations.get(key, 0)
        epoch = count if epoch_num is None else self._coerce_step(epoch_num)
        stamp = _now_ms() if timestamp is None else _to_ms(timestamp)
        self._writer.observations.setdefault(key, []).append((epoch, stamp, value))
        self._state.observations[key] = max(count, epoch) + 1
        self._writer.dirty = True
        return epoch

    def _observation_series(self, key: str) -> list[Observation]:
        writer = self._writer
        stored = reading.observations(self._store.ledger, self.id, key) if writer.stored else []
        return stored + [Observation(*o) for o in writer.observations.get(key, [])]

    def get_observations(self, key: str | None = None) -> Any:
        """The observations of ``key`` in logging order (``(epoch, timestamp_ms, value)``);
        with no key, every series by key (Verta's ``get_observations()``)."""
        if key is None:
            keys = sorted(set(self._state.observations) | set(self._writer.observations))
            return {k: self._observation_series(k) for k in keys}
        return self._observation_series(key)

    def get_observation(self, key: str) -> list[Observation]:
        """The observation series ``key``, a list, as Verta's ``get_observation`` returns;
        the latest value alone is ``get_latest_observation``."""
        return self._observation_series(key)

    def get_latest_observation(self, key: str) -> Any:
        """The value of the latest observation of ``key`` (None if never logged)."""
        found = self._observation_series(key)
        return found[-1].value if found else None

    # -- attributes and tags -----------------------------------------------------
    def log_attribute(self, key: str, value: Any, overwrite: bool = False) -> None:
        self.log_attributes({key: value}, overwrite=overwrite)

    def log_attributes(self, attributes: dict[str, Any], overwrite: bool = False) -> None:
        """Set attributes; one that exists with another value is replaced only with
        ``overwrite=True`` (as in Verta; the same value again is fine)."""
        if not isinstance(attributes, dict):
            raise UsageError("attributes must be a dict of key -> JSON value")
        current = self._state.attributes
        for key, value in attributes.items():
            check_key(key, "attribute key")
            check_json_value(value, f"attribute {key!r}")
            if not overwrite and key in current and current[key] != value:
                raise UsageError(f"attribute {key!r} is already {_short(current[key])}; pass overwrite=True to replace "
                                 "it, or log a value that changes as an observation")
        self._state.attributes.update(attributes)
        self._touch()

    def get_attribute(self, key: str) -> Any:
        return self._state.attributes.get(key)

    def get_attributes(self) -> dict[str, Any]:
        return dict(self._state.attributes)

    def log_tag(self, key: str, value: str = "") -> None:
        self.log_tags({key: value})

    def log_tags(self, tags: dict[str, str] | list[str]) -> None:
        items = {t: "" for t in tags} if isinstance(tags, (list, tuple, set)) else tags
        if not isinstance(items, dict):
            raise UsageError("tags must be a dict of key -> string or a list of strings")
        for key, value in items.items():
            check_key(key, "tag")
            if not isinstance(value, str):
                raise UsageError(f"tag {key!r} value must be a string, got {type(value).__name__}")
            check_json_value(value, f"tag {key!r}")
        self._state.tags.update(items)
        self._touch()

    def get_tags(self) -> dict[str, str]:
        return dict(self._state.tags)

    # -- code, data, environment, schema -------------------------------------------
    def log_code(self, exec_path: str | os.PathLike[str] | None = None, repo_url: str | None = None,
                 commit_hash: str | None = None, overwrite: bool = False, is_dirty: bool | None = None,
                 autocapture: bool = True) -> Any:
        """Record the code version now, as Verta's ``log_code``: with ``autocapture``, the
        commit, dirty flag + patch, exec path and repo URL found here, each replaced by the
        value given; without it, only the values given. ``exec_path`` must be an existing
        file (kept relative to the work tree); ``overwrite=False`` refuses to replace a
        code version logged before with another."""
        from .code import given_code_version

        self._require_active("log code")
        code = given_code_version(self._store.git, exec_path, repo_url, commit_hash, is_dirty, autocapture)
        plain = codec.to_plain(code)
        earlier = self._state.attributes.get("prov.code")
        if not overwrite and earlier is not None and earlier != plain:
            raise UsageError("a code version was logged already; pass overwrite=True to replace it")
        self._state.attributes["prov.code"] = plain
        self._writer.stage_edits({"code.patch": code.patch} if code.patch else {})
        return code

    def get_code(self) -> Any:
        import msgspec

        from ..model import CodeVersion

        later = self._state.attributes.get("prov.code")
        return msgspec.convert(later, CodeVersion) if later else self.record.code

    def get_code_patch(self) -> bytes | None:
        """The uncommitted changes recorded with the code version (a git diff)."""
        code = self.get_code()
        return self._store.git.odb.read_typed(code.patch, "blob") if code.patch else None

    def log_dataset_version(self, key: str, path_or_digest: str | os.PathLike[str]) -> DatasetVersion:
        from .inputs import looks_like_a_path, sha256_file

        self._require_active("log dataset versions")
        check_key(key, "dataset key")
        text = os.fspath(path_or_digest)
        if os.path.isfile(text):
            rel = os.path.relpath(os.path.abspath(text), self._store.work_tree or os.getcwd())
            version = DatasetVersion(key=key, digest="sha256:" + sha256_file(text),
                                     path=rel.replace(os.sep, "/"), size=os.path.getsize(text))
        elif os.path.isdir(text):
            from .artifacts import directory_digest

            digest, size = directory_digest(text)
            version = DatasetVersion(key=key, digest=digest, path=text, size=size)
        else:
            if not text or len(text) > 200 or any(ord(c) < 33 for c in text):
                raise UsageError(f"dataset {key!r}: {text!r} is neither an existing path nor a digest")
            if looks_like_a_path(text):
                raise UsageError(f"dataset {key!r}: {text!r} does not exist (from {os.getcwd()}); pass an existing "
                                 "file or directory, or a digest or version such as sha256:<hex> or s3://bucket/key?versionId=…")
            version = DatasetVersion(key=key, digest=text)
        self._state.datasets[key] = version
        self._writer.dirty = True
        return version

    def get_dataset_versions(self) -> dict[str, DatasetVersion]:
        return dict(self._state.datasets)

    @property
    def has_environment(self) -> bool:
        """Whether the run records its Python environment (at start, or ``log_environment``)."""
        return self.record.environment is not None or "prov.environment" in self._state.attributes

    def log_setup_script(self, script: str, overwrite: bool = False) -> ArtifactRef:
        """Store a Python setup script for deploying the model (artifact ``setup_script``),
        checked to be valid Python first, as Verta's ``log_setup_script``."""
        import ast

        if not isinstance(script, str):
            raise UsageError(f"the setup script must be Python source text (str), not {type(script).__name__}; "
                             "read a file with open(path).read()")
        try:
            ast.parse(script)
        except SyntaxError as exc:
            raise UsageError(f"the setup script is not valid Python: {exc.msg} on line {exc.lineno}") from exc
        return self.log_artifact("setup_script", script.encode("utf-8"), overwrite=overwrite,
                                 media_type="text/x-python")

    def log_environment(self) -> Any:
        from ..fingerprint import environment

        self._require_active("log the environment")
        env = environment()
        self._state.attributes["prov.environment"] = codec.to_plain(env)
        self._writer.dirty = True
        return env

    def log_seed(self, seed: int | str, key: str = "seed") -> None:
        """Record a seed the script chose (``random.seed(seed)``, ``np.random.seed(seed)``)
        in the attribute ``prov.seeds``, beside the generator states recorded at start:
        ``prov rerun`` then tells nondeterminism apart from drift."""
        check_key(key, "seed key")
        if isinstance(seed, bool) or not isinstance(seed, (int, str)):
            raise UsageError(f"seed {key!r} must be an integer or a string, got {type(seed).__name__}")
        check_json_value(seed, f"seed {key!r}")
        seeds = dict(self._state.attributes.get("prov.seeds") or {})
        seeds[key] = seed
        self._state.attributes["prov.seeds"] = seeds
        self._touch()

    def get_seeds(self) -> dict[str, Any]:
        """Seeds logged with ``log_seed`` and generator states recorded at start and end."""
        return dict(self._state.attributes.get("prov.seeds") or {})

    def log_schema(self, input: Any, output: Any = None) -> None:
        """Record the input (and output) schema of the model this run trained."""
        check_json_value(input, "input schema")
        check_json_value(output, "output schema")
        self._state.io_schema = {"input": input} if output is None else {"input": input, "output": output}
        self._touch()

    def get_schema(self) -> dict[str, Any] | None:
        """``{"input": ..., "output": ...}``; ``output`` left out when none was logged (as Verta)."""
        schema = self._state.io_schema
        if schema is None:
            return None
        return {k: v for k, v in schema.items() if not (k == "output" and v is None)}

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
        self._writer.finish(status, exit_code)
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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
