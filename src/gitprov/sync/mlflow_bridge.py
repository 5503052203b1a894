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
import os
import posixpath
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import SyncError
from ..scrub import scrub_url
from .bridge import RunResult, RunSource, import_tracker, millis, observation_json
from .keymap import mlflow_key
from .mlflow_changes import (
    MAX_PARAMS_TAGS_PER_BATCH,
    RUN_ID_TAG,
    RunChanges,
    desired,
    entity_batches,
    nothing_held,
    plan_changes,
    sync_entry,
)
from .mlflow_datasets import dataset_inputs
from .mlflow_logged_models import LoggedModels
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

#: on an MLflow run an older git-prov made outside its parent's experiment: the run
#: that replaces it there (the old one is deleted, which MLflow lets you undo).
MOVED_TO_TAG = "prov.moved_to"
OBSERVATION_ARTIFACTS = "prov/observations"
DEFAULT_EXPERIMENT = "Default"
#: ``--retries`` and ``--timeout`` (seconds) when not given: an unreachable server ends
#: a sync in a few seconds (MLflow's own defaults wait about four minutes a request).
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT = 8.0


def import_mlflow(purpose: str = "syncing to MLflow") -> Any:
    """``mlflow``, or a ``MissingExtraError`` naming the extra to install."""
    return import_tracker("mlflow", MLFLOW_EXTRA, purpose)


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
        """Params, tags, metrics, artifacts, datasets and status of the MLflow run
        (``mlflow_changes.desired``)."""
        return desired(source)

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
        parent_pending = bool(run.record.parent and source.parent_external_id
                              and not (entry or {}).get("parent"))
        same = self.unchanged(run.id, run.name, source.version, entry, parent_pending)
        if same is not None:
            return same, entry  # type: ignore[return-value]
        want = self.desired(source)
        home = self.parent_experiment(source)
        external_id, experiment, trusted, moved_from = self._locate(source, entry, home)
        have = self._held(entry, trusted, external_id, want)
        todo = plan_changes(source, want, have, entry, trusted=trusted, register_models=self.register_models)
        result = RunResult(run_id=run.id, name=run.name, status="unchanged", external_id=external_id,
                           written=todo.counts(moved=moved_from is not None))
        changed = bool(result.written) or external_id is None
        if dry_run:
            result.status = "would-sync" if changed else "unchanged"
            return result, entry or {}
        if external_id is None:
            external_id, experiment = self._create(source, todo, home)
        self._write(source, todo, external_id, home or self.experiment_id(run.experiment) or "0", want["end_time"])
        if moved_from is not None:
            self.client.set_tag(moved_from, MOVED_TO_TAG, external_id)
            self.client.delete_run(moved_from)
            with self._lock:
                self.moved.append((run.id, moved_from, external_id))
        result.status = "synced" if changed else "unchanged"
        result.external_id = external_id
        result.seconds = time.monotonic() - started
        return result, sync_entry(source, want, todo, entry, external_id=external_id, experiment=experiment,
                                  register_models=self.register_models)

    def _locate(self, source: RunSource, entry: dict[str, Any] | None,
                home: str | None) -> tuple[str | None, str | None, bool, str | None]:
        """The MLflow run that mirrors ``source`` and its experiment (None, None for one to
        create), whether the local state ``entry`` says what it holds, and the run to
        replace (an older git-prov's child outside its parent's experiment)."""
        run = source.run
        trusted = bool(entry and entry.get("version") and entry.get("external_id"))
        external_id = entry.get("external_id") if entry else None
        if not trusted:
            external_id = external_id or self.find_existing(run.id, run.experiment, home)
        experiment = (entry or {}).get("experiment") if trusted else None
        if external_id and home:
            experiment = experiment or self.client.get_run(external_id).info.experiment_id
            if experiment != home:
                # an older git-prov put this child in its own experiment, where MLflow's UI
                # cannot nest it under its parent and MLflow cannot move it: make it again
                # in the parent's experiment, then delete the old one (see ``take_warnings``)
                return None, None, False, external_id
        return external_id, experiment, trusted, None

    def _held(self, entry: dict[str, Any] | None, trusted: bool, external_id: str | None,
              want: dict[str, Any]) -> dict[str, Any]:
        """What the MLflow run holds: the local state when it can be trusted, else the run
        read back (nothing for a run to create)."""
        if trusted:
            have = {k: entry.get(k, {}) for k in ("params", "tags", "series", "artifacts", "datasets", "observations")}  # type: ignore[union-attr]
            have["status"] = entry.get("status", "RUNNING")  # type: ignore[union-attr]
            have["models"] = entry.get("models", [])  # type: ignore[union-attr]
            return have
        if external_id is None:
            return nothing_held()
        return self._remote_view(external_id, [*want["metrics"].values(), *want["observations"].values()])

    def _create(self, source: RunSource, todo: RunChanges, home: str | None) -> tuple[str, str | None]:
        """A new MLflow run for ``source`` and its experiment. It gets its first tags
        (``prov.run_id`` first) in the ``create_run`` transaction; they leave ``todo``."""
        run = source.run
        first = {RUN_ID_TAG: run.id, **{t.key: t.value for t in todo.tags[:MAX_PARAMS_TAGS_PER_BATCH - 1]
                                        if t.key != RUN_ID_TAG}}
        todo.tags = [t for t in todo.tags if t.key not in first]
        experiment = home or self.experiment_id(run.experiment)
        if run.record.user:
            first["mlflow.user"] = run.record.user  # MLflow takes the run's user_id from it
        created = self.client.create_run(experiment, start_time=millis(run.record.created),
                                         tags=first, run_name=run.name or None)
        return created.info.run_id, experiment

    def _write(self, source: RunSource, todo: RunChanges, external_id: str, model_experiment: str,
               end_time: int | None) -> None:
        """Write ``todo`` to the MLflow run ``external_id``, its end status last."""
        run = source.run
        for batch_params, batch_metrics, batch_tags in entity_batches(todo.params, todo.metrics, todo.tags):
            self.client.log_batch(external_id, metrics=batch_metrics, params=batch_params, tags=batch_tags,
                                  synchronous=True)
        if todo.artifacts:
            self._upload(run, external_id, todo.artifacts)
        if todo.datasets:
            self.client.log_inputs(external_id, datasets=dataset_inputs(todo.datasets, run.get_code()))
        if todo.models:
            self._link_models(external_id, model_experiment, todo.models, run)
        if todo.files_due:
            self._upload_model(external_id, model_experiment, run, todo.logged_model)
        if todo.register:
            self._register(external_id, model_experiment, todo.register)
        for key, points in todo.observations.items():
            self.client.log_text(external_id, observation_json(key, points),
                                 f"{OBSERVATION_ARTIFACTS}/{mlflow_key(key)}.json")
        if todo.status_due:
            self._terminate(external_id, todo.end_status, end_time)  # type: ignore[arg-type]

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
