"""The MLflow bridge: one prov run -> one MLflow run, found again by its ``prov.run_id`` tag.

What goes where (see docs/sync.md): hyperparameters -> params (canonical JSON text for
non-strings), metric series -> metric history with the original steps and timestamps,
tags -> tags, attributes -> ``prov.attribute.<key>`` tags, code version ->
``mlflow.source.git.*`` tags, parent -> ``mlflow.parentRunId``, artifacts -> files,
datasets -> ``log_inputs``, lineage models -> logged models linked as the run's inputs
and outputs (a model the run logged with ``run.log_model`` becomes a loadable MLflow
model there, ``sync/mlflow_model.py``, and not a run artifact), observations -> a JSON
artifact per key (``prov/observations/<key>.json``) plus, for numeric values, the metric
``obs/<key>`` at step = epoch; status and end time
-> ``set_terminated``. Keys MLflow refuses are escaped reversibly (``keymap``). mlflow is
imported on first use.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import SyncError
from ..runs.artifacts import DIRECTORY_TYPE
from ..scrub import scrub_url
from .bridge import RunResult, RunSource, import_tracker, millis
from .keymap import mlflow_key, prov_key
from .mlflow_datasets import dataset_digest, dataset_inputs
from .mlflow_logged_models import LoggedModels, in_model, model_info, model_links
from .mlflow_model import MODEL_LAYOUT
from .mlflow_store import (
    MLFLOW_EXTRA,
    create_local_store,
    is_http,
    local_artifact_root,
    mlflow_home,
    reach,
    request_settings,
    require_mlflow,
    resolve_tracking_uri,
)
from .state import value_digest

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["MLFLOW_EXTRA", "MlflowBridge", "import_mlflow"]

MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
#: stay under MLflow's 1 MB request limit for one log_batch call.
MAX_BATCH_BYTES = 900_000
RUN_ID_TAG = "prov.run_id"
#: on an MLflow run an older git-prov made outside its parent's experiment: the run
#: that replaces it there (the old one is deleted, which MLflow lets you undo).
MOVED_TO_TAG = "prov.moved_to"
#: numeric observations become this metric prefix + key (step = epoch).
OBSERVATION_METRIC_PREFIX = "obs/"
OBSERVATION_ARTIFACTS = "prov/observations"
DEFAULT_EXPERIMENT = "Default"
#: ``--retries`` and ``--timeout`` (seconds) when not given: an unreachable server ends
#: a sync in a few seconds (MLflow's own defaults wait about four minutes a request).
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT = 8.0
_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED", "crashed": "FAILED"}


def import_mlflow(purpose: str = "syncing to MLflow") -> Any:
    """``mlflow``, or a ``MissingExtraError`` naming the extra to install."""
    return import_tracker("mlflow", MLFLOW_EXTRA, purpose)


def canonical_value(value: Any) -> str:
    """A param value as text: strings as they are, anything else as canonical JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked and with the full value's digest."""
    if len(text) <= limit:
        return text
    marker = f"…[truncated; sha1 {value_digest(text)}]"
    return text[: limit - len(marker)] + marker


def _entity_batches(params: list[Any], metrics: list[Any], tags: list[Any]) -> list[tuple[list[Any], list[Any], list[Any]]]:
    """Params, metrics and tags packed into as few ``log_batch`` calls as MLflow's limits
    allow (each call is several database transactions: fewer calls, faster syncs)."""
    out: list[tuple[list[Any], list[Any], list[Any]]] = []
    cur: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    count = size = 0
    limits = (MAX_PARAMS_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH)
    for slot, items in enumerate((params, metrics, tags)):
        for item in items:
            n = len(item.key) + (40 if slot == 1 else len(item.value))
            if count and (len(cur[slot]) >= limits[slot] or count >= MAX_ENTITIES_PER_BATCH
                          or size + n > MAX_BATCH_BYTES):
                out.append(cur)
                cur, count, size = ([], [], []), 0, 0
            cur[slot].append(item)
            count += 1
            size += n
    if count:
        out.append(cur)
    return out


class MlflowBridge(LoggedModels):
    """Sync target: one MLflow tracking server or store (``sqlite:///…``, ``http://…``)."""

    kind = "mlflow"

    def __init__(self, tracking_uri: str | None = None, *, experiment_prefix: str = "",
                 artifact_location: str | None = None, store: ProvStore | None = None,
                 retries: int = DEFAULT_RETRIES, timeout: float = DEFAULT_TIMEOUT,
                 register_models: bool = False) -> None:
        require_mlflow()
        home = mlflow_home(store)
        uri = resolve_tracking_uri(tracking_uri, store)
        self.tracking_uri = uri
        #: what keys the local state and is shown to people: never credentials.
        self.address = scrub_url(uri)
        self.experiment_prefix = experiment_prefix
        self.artifact_location = artifact_location or local_artifact_root(uri, home, store)
        self.retries = retries
        self.timeout = timeout
        self.register_models = register_models
        #: an HTTP server: MLflow retries each request itself (``retries`` times), so the
        #: engine does not retry the whole run on top of that.
        self.retries_requests = is_http(uri)
        self._reached = False
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()
        self._parents: dict[str, str] = {}
        self._init_logged_models()
        #: ``(prov run id, old MLflow run id, new MLflow run id)`` of children moved to
        #: their parent's experiment by this sync (see ``take_warnings``).
        self.moved: list[tuple[str, str, str]] = []

    def take_warnings(self) -> list[str]:
        """What the user should know about the sync just made, one line each, said once."""
        with self._lock:
            moved, self.moved = self.moved, []
        if not moved:
            return []
        old = ", ".join(m[1] for m in moved[:3]) + (", …" if len(moved) > 3 else "")
        return [f"{len(moved)} child run(s) an older git-prov synced outside their parent's MLflow "
                f"experiment now live in the parent's, so MLflow nests them; the old MLflow runs ({old}) are "
                f"deleted and tagged {MOVED_TO_TAG} (undo with 'mlflow runs restore --run-id ID')"]

    def session(self) -> contextlib.AbstractContextManager[None]:
        """MLflow's own HTTP retries, backoff and timeout set from ``retries`` and
        ``timeout`` while a sync runs (``mlflow_store.request_settings``)."""
        return request_settings(self.retries, self.timeout)

    def connect(self) -> None:
        """Fail fast, before mlflow is imported, when an HTTP tracking server cannot be
        reached: ``retries`` more tries with a short backoff, ``timeout`` seconds in all,
        then a ``SyncError``. Local stores need no check."""
        if self._reached or not is_http(self.tracking_uri):
            return
        reason = reach(self.tracking_uri, self.retries, self.timeout)
        if reason is not None:
            raise SyncError(f"cannot reach MLflow at {self.address}: {reason}; start the server or fix "
                            "--tracking-uri (nothing was synced; the runs stay pending)")
        self._reached = True

    @property
    def client(self) -> Any:
        """The ``MlflowClient``, made (and mlflow imported, ~3 s) on first use: a sync
        that finds every run unchanged never pays for it."""
        with self._client_lock:
            if self._client is None:
                import_mlflow()
                from mlflow import MlflowClient

                create_local_store(self.tracking_uri, self.artifact_location)
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            return self._client

    # -- experiments and lookup --------------------------------------------------------
    def experiment_name(self, prov_experiment: str) -> str:
        return f"{self.experiment_prefix}{prov_experiment or DEFAULT_EXPERIMENT}"

    def experiment_id(self, prov_experiment: str, create: bool = True) -> str | None:
        name = self.experiment_name(prov_experiment)
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            found = self.client.get_experiment_by_name(name)
            if found is None and create:
                from mlflow.exceptions import MlflowException

                try:
                    self.client.create_experiment(name, artifact_location=self.artifact_location)
                except MlflowException as exc:  # created meanwhile by another process
                    if "already exists" not in str(exc).lower():
                        raise
                found = self.client.get_experiment_by_name(name)
            if found is None:
                return None
            if found.lifecycle_stage != "active":
                raise SyncError(f"MLflow experiment {name!r} is deleted; restore it "
                                f"('mlflow experiments restore --experiment-id {found.experiment_id}') or use --experiment-prefix")
            self._experiments[name] = found.experiment_id
            return found.experiment_id

    def find_existing(self, prov_run_id: str, experiment: str = "", also: str | None = None) -> str | None:
        """The MLflow run tagged ``prov.run_id`` = ``prov_run_id`` (oldest if several), in
        the run's experiment or the experiment id ``also`` (its parent's)."""
        exps = [e for e in (self.experiment_id(experiment, create=False), also) if e is not None]
        if not exps:
            return None
        found = self.client.search_runs(sorted(set(exps)), filter_string=f"tags.`{RUN_ID_TAG}` = '{prov_run_id}'",
                                        max_results=10, order_by=["attributes.start_time ASC"])
        return found[0].info.run_id if found else None

    def parent_experiment(self, source: RunSource) -> str | None:
        """The MLflow experiment id of the run's synced parent: a child run goes there,
        since MLflow's UI nests runs only within one experiment."""
        parent = source.parent_external_id
        if not parent:
            return None
        with self._lock:
            if parent in self._parents:
                return self._parents[parent]
        exp = self.client.get_run(parent).info.experiment_id
        with self._lock:
            self._parents[parent] = exp
        return exp

    # -- what the target should hold -------------------------------------------------
    def desired(self, source: RunSource) -> dict[str, Any]:
        """Params, tags, metrics, artifacts, datasets and status of the MLflow run."""
        run = source.run
        record, state = run.record, run.state
        code = run.get_code()
        params = {mlflow_key(k): _clip(canonical_value(v), MAX_PARAM_VALUE)
                  for k, v in sorted(run.get_hyperparameters().items())}
        tags: dict[str, str] = {RUN_ID_TAG: run.id, "prov.status": state.status,
                                "prov.created": record.created, "prov.lexicon": record.schema.lexicon}
        if record.user:
            tags["mlflow.user"] = record.user
        if record.host:
            tags["prov.host"] = record.host
        if state.experiment:
            tags["prov.experiment"] = state.experiment
        if state.name:
            tags["mlflow.runName"] = state.name
        for key, value in sorted(state.tags.items()):
            tags[mlflow_key(key)] = value
        for key, value in sorted(state.attributes.items()):
            if key not in ("prov.code", "prov.environment"):
                tags[mlflow_key(f"prov.attribute.{key}")] = canonical_value(value)
        if code.commit:
            tags["mlflow.source.git.commit"] = code.commit
            tags["mlflow.source.git.dirty"] = "true" if code.is_dirty else "false"
        if code.repo_url:
            tags["mlflow.source.git.repoURL"] = scrub_url(code.repo_url)
        if code.patch:
            tags["prov.code.patch"] = code.patch
        if code.exec_path:
            tags["mlflow.source.name"] = code.exec_path
        if record.command:
            tags["prov.command"] = " ".join(record.command)
        if record.parent:
            tags["prov.parent_run_id"] = record.parent
            if source.parent_external_id:
                tags["mlflow.parentRunId"] = source.parent_external_id
        if state.lineage.inputs:
            tags["prov.lineage.inputs"] = canonical_value(state.lineage.inputs)
        if state.lineage.outputs:
            tags["prov.lineage.outputs"] = canonical_value(state.lineage.outputs)
        mapped = {k: mlflow_key(k) for k in [*run.get_hyperparameters(), *state.tags, *run.get_metric_keys()]}
        shortened = {v: k for k, v in mapped.items() if prov_key(v) != k}
        if shortened:
            tags["prov.keys"] = canonical_value(shortened)
        tags = {k: _clip(v, MAX_TAG_VALUE) for k, v in tags.items()}
        return {
            "params": params,
            "tags": tags,
            "metrics": {k: mlflow_key(k) for k in run.get_metric_keys()},
            "observations": {k: mlflow_key(OBSERVATION_METRIC_PREFIX + k) for k in sorted(state.observations)},
            "artifacts": {k: ref.sha256 for k, ref in sorted(state.artifacts.items())
                          if ref.media_type != DIRECTORY_TYPE and not in_model(k, model_info(run))},
            "datasets": dict(sorted(state.datasets.items())),
            "models": model_links(state.lineage),
            "status": _STATUS.get(state.status, "RUNNING"),
            "end_time": millis(state.ended),
        }

    def _remote_view(self, external_id: str, metric_keys: list[str]) -> dict[str, Any]:
        """What an existing MLflow run holds (when local state cannot be trusted)."""
        remote = self.client.get_run(external_id)
        series = {}
        for mkey in metric_keys:
            if mkey in remote.data.metrics:
                series[mkey] = len(self.client.get_metric_history(external_id, mkey))
        return {
            "params": {k: value_digest(v) for k, v in remote.data.params.items()},
            "tags": {k: value_digest(v) for k, v in remote.data.tags.items()},
            "series": series,
            "artifacts": {},  # re-uploading overwrites: safe
            "observations": {},  # the same
            "datasets": {d.dataset.name: d.dataset.digest for d in (remote.inputs.dataset_inputs if remote.inputs else [])},
            "models": self._remote_model_links(remote),
            "status": remote.info.status if remote.info.end_time else "RUNNING",
        }

    # -- the sync ----------------------------------------------------------------------
    def unchanged(self, run_id: str, name: str, version: str, entry: dict[str, Any] | None,
                  parent_pending: bool) -> RunResult | None:
        trusted = bool(entry and entry.get("version") and entry.get("external_id"))
        registered = not self.register_models or bool(entry and entry.get("registered"))
        # synced by an older git-prov: a child may sit outside its parent's experiment, a
        # model may lack its MLmodel; read the run once to check
        current = not entry or entry.get("layout") == MODEL_LAYOUT or not (
            entry.get("parent") or any(m.startswith("out\t") for m in entry.get("models", [])))
        if trusted and entry["version"] == version and not parent_pending and registered and current:  # type: ignore[index]
            return RunResult(run_id=run_id, name=name, status="unchanged", external_id=entry["external_id"])  # type: ignore[index]
        return None

    def sync_run(self, source: RunSource, entry: dict[str, Any] | None, *,
                 dry_run: bool = False) -> tuple[RunResult, dict[str, Any]]:
        started = time.monotonic()
        run = source.run
        result = RunResult(run_id=run.id, name=run.name, status="unchanged")
        trusted = bool(entry and entry.get("version") and entry.get("external_id"))
        parent_pending = bool(run.record.parent and source.parent_external_id
                              and not (entry or {}).get("parent"))
        same = self.unchanged(run.id, run.name, source.version, entry, parent_pending)
        if same is not None:
            return same, entry  # type: ignore[return-value]
        want = self.desired(source)
        external_id = entry.get("external_id") if entry else None
        if not trusted:
            external_id = external_id or self.find_existing(run.id, run.experiment, self.parent_experiment(source))
        experiment = (entry or {}).get("experiment") if trusted else None
        moved_from = None
        home = self.parent_experiment(source)
        if external_id and home:
            experiment = experiment or self.client.get_run(external_id).info.experiment_id
            if experiment != home:
                # an older git-prov put this child in its own experiment, where MLflow's UI
                # cannot nest it under its parent and MLflow cannot move it: make it again
                # in the parent's experiment, then delete the old one (see ``take_warnings``)
                moved_from, external_id, trusted, experiment = external_id, None, False, None
        if trusted:
            have = {k: entry.get(k, {}) for k in ("params", "tags", "series", "artifacts", "datasets", "observations")}  # type: ignore[union-attr]
            have["status"] = entry.get("status", "RUNNING")  # type: ignore[union-attr]
            have["models"] = entry.get("models", [])  # type: ignore[union-attr]
        else:
            if external_id is None:
                have = {"params": {}, "tags": {}, "series": {}, "artifacts": {}, "datasets": {}, "observations": {},
                        "models": [], "status": "RUNNING"}
            else:
                have = self._remote_view(external_id, [*want["metrics"].values(), *want["observations"].values()])
        written = {"params": 0, "tags": 0, "metrics": 0, "artifacts": 0, "datasets": 0, "observations": 0, "models": 0,
                   "model_files": 0, "registered": 0, "status": 0, "moved": int(moved_from is not None)}

        from mlflow.entities import Metric, Param, RunTag

        params, tags = [], []
        for key, value in want["params"].items():
            digest = value_digest(value)
            if key not in have["params"]:
                params.append(Param(key, value))
            elif have["params"][key] != digest:
                # MLflow refuses to change a param: keep the new value as a tag
                want["tags"][f"prov.param_changed.{key}"] = _clip(value, MAX_TAG_VALUE)
        for key, value in want["tags"].items():
            if have["tags"].get(key) != value_digest(value):
                tags.append(RunTag(key, value))
        metrics: list[Any] = []
        series_counts: dict[str, int] = {}
        for key, mkey in want["metrics"].items():
            points = run.get_metric_history(key)
            series_counts[mkey] = len(points)
            for p in points[have["series"].get(mkey, 0):]:
                metrics.append(Metric(mkey, p.value, p.timestamp, p.step))
        observations: dict[str, Any] = {}
        observation_counts: dict[str, int] = {}
        for key, okey in want["observations"].items():
            points = run.get_observations(key)
            observation_counts[key] = len(points)
            if have["observations"].get(key) != len(points):
                observations[key] = points
            numeric = [o for o in points if _is_number(o.value)]
            if numeric:
                series_counts[okey] = len(numeric)
                for o in numeric[have["series"].get(okey, 0):]:
                    metrics.append(Metric(okey, float(o.value), o.timestamp, o.epoch))
        artifacts = [k for k, sha in want["artifacts"].items() if have["artifacts"].get(k) != sha]
        datasets = [d for k, d in want["datasets"].items() if have["datasets"].get(k) != dataset_digest(d.digest)]
        models = [link for link in want["models"] if link not in have["models"]]
        logged = model_info(run)
        files_key = f"{MODEL_LAYOUT}:{logged.get('sha256')}" if logged else None
        files_due = bool(logged) and (entry or {}).get("model_files") != files_key or (
            bool(logged) and not trusted)
        register = ([link for link in want["models"] if link.split("\t")[2]]
                    if self.register_models and not (trusted and (entry or {}).get("registered")
                                                     and (entry or {}).get("layout") == MODEL_LAYOUT) else [])
        end_status = want["status"] if want["status"] != "RUNNING" else None
        status_due = end_status is not None and have["status"] != end_status
        written.update(params=len(params), tags=len(tags), metrics=len(metrics), artifacts=len(artifacts),
                       datasets=len(datasets), observations=len(observations), models=len(models),
                       model_files=int(files_due), registered=len(register), status=int(status_due))
        result.written = {k: v for k, v in written.items() if v}
        changed = any(written.values()) or external_id is None
        if dry_run:
            result.status = "would-sync" if changed else "unchanged"
            result.external_id = external_id
            return result, entry or {}

        if external_id is None:
            # a new run gets its tags (prov.run_id first) in the create_run transaction
            first = {RUN_ID_TAG: run.id, **{t.key: t.value for t in tags[:MAX_PARAMS_TAGS_PER_BATCH - 1]
                                            if t.key != RUN_ID_TAG}}
            tags = [t for t in tags if t.key not in first]
            exp = home or self.experiment_id(run.experiment)
            experiment = exp
            if run.record.user:
                first["mlflow.user"] = run.record.user  # MLflow takes the run's user_id from it
            created = self.client.create_run(exp, start_time=millis(run.record.created),
                                             tags=first, run_name=run.name or None)
            external_id = created.info.run_id
        for batch_params, batch_metrics, batch_tags in _entity_batches(params, metrics, tags):
            self.client.log_batch(external_id, metrics=batch_metrics, params=batch_params, tags=batch_tags,
                                  synchronous=True)
        if artifacts:
            self._upload(run, external_id, artifacts)
        if datasets:
            self.client.log_inputs(external_id, datasets=dataset_inputs(datasets, run.get_code()))
        model_exp = home or self.experiment_id(run.experiment) or "0"
        if models:
            self._link_models(external_id, model_exp, models, run)
        if files_due:
            self._upload_model(external_id, model_exp, run, logged)  # type: ignore[arg-type]
        if register:
            self._register(external_id, model_exp, register)
        for key, points in observations.items():
            self.client.log_text(external_id, observation_json(key, points),
                                 f"{OBSERVATION_ARTIFACTS}/{mlflow_key(key)}.json")
        if status_due:
            self._terminate(external_id, end_status, want["end_time"])
        if moved_from is not None:
            self.client.set_tag(moved_from, MOVED_TO_TAG, external_id)
            self.client.delete_run(moved_from)
            with self._lock:
                self.moved.append((run.id, moved_from, external_id))
        new_entry = {
            "version": source.version,
            "external_id": external_id,
            "params": {k: value_digest(v) for k, v in want["params"].items()},
            "tags": {k: value_digest(v) for k, v in want["tags"].items()},
            "series": series_counts,
            "artifacts": want["artifacts"],
            "datasets": {k: dataset_digest(d.digest) for k, d in want["datasets"].items()},
            "observations": observation_counts,
            "models": want["models"],
            "status": want["status"],
            "parent": bool(source.parent_external_id),
            "layout": MODEL_LAYOUT,
        }
        if experiment:
            new_entry["experiment"] = experiment
        if files_key:
            new_entry["model_files"] = files_key
        if self.register_models or (entry or {}).get("registered"):
            new_entry["registered"] = True
        result.status = "synced" if changed else "unchanged"
        result.external_id = external_id
        result.seconds = time.monotonic() - started
        return result, new_entry

    def _terminate(self, external_id: str, status: str, end_time: int | None) -> None:
        """``set_terminated`` without its "View run at" lines on stdout (they would
        corrupt ``--json`` output) and without its extra ``get_run``."""
        from mlflow.entities import RunStatus

        store = getattr(getattr(self.client, "_tracking_client", None), "store", None)
        if store is None or end_time is None:
            self.client.set_terminated(external_id, status=status, end_time=end_time)
            return
        store.update_run_info(external_id, run_status=RunStatus.from_string(status), end_time=end_time, run_name=None)

    def _upload(self, run: Any, external_id: str, keys: list[str]) -> None:
        from ..runs.artifacts import safe_file_name

        with tempfile.TemporaryDirectory(prefix="prov-sync-") as tmp:
            for key in keys:
                parts = [safe_file_name(p) for p in key.split("/") if p]
                folder = posixpath.join(*parts[:-1]) if len(parts) > 1 else None
                path = os.path.join(tmp, parts[-1])
                with open(path, "wb") as f:
                    f.write(run.get_artifact(key))
                self.client.log_artifact(external_id, path, folder)
                os.unlink(path)

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def observation_json(key: str, points: list[Any]) -> str:
    """The JSON file of one observation series: every epoch, timestamp (ms) and value."""
    body = {"key": key, "points": [{"epoch": o.epoch, "timestamp": o.timestamp, "value": o.value} for o in points]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
