"""What one sync must write to an MLflow run: the run MLflow should hold, against what it holds.

``desired`` maps a prov run to the MLflow run it should become (params, tags, metric
keys, artifacts, datasets, models, status; see the table in docs/sync.md);
``plan_changes`` compares that with what the run holds (the local sync state, or the
run read back) and lists only what is missing; ``sync_entry`` is the local state the
sync leaves. Nothing here talks to MLflow: ``sync/mlflow_bridge.py`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..runs.artifacts import DIRECTORY_TYPE
from ..scrub import scrub_url
from .bridge import canonical_value, is_number, millis
from .keymap import mlflow_key, prov_key
from .mlflow_datasets import dataset_digest
from .mlflow_logged_models import in_model, model_info, model_links
from .mlflow_model import MODEL_LAYOUT
from .state import value_digest

if TYPE_CHECKING:
    from .bridge import RunSource

__all__ = [
    "MAX_PARAM_VALUE",
    "MAX_TAG_VALUE",
    "OBSERVATION_METRIC_PREFIX",
    "RUN_ID_TAG",
    "RunChanges",
    "clip",
    "desired",
    "entity_batches",
    "nothing_held",
    "plan_changes",
    "sync_entry",
]

MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
#: stay under MLflow's 1 MB request limit for one log_batch call.
MAX_BATCH_BYTES = 900_000
RUN_ID_TAG = "prov.run_id"
#: numeric observations become this metric prefix + key (step = epoch).
OBSERVATION_METRIC_PREFIX = "obs/"
_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED", "crashed": "FAILED"}


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked and with the full value's digest."""
    if len(text) <= limit:
        return text
    marker = f"…[truncated; sha1 {value_digest(text)}]"
    return text[: limit - len(marker)] + marker


def entity_batches(params: list[Any], metrics: list[Any], tags: list[Any]) -> list[tuple[list[Any], list[Any], list[Any]]]:
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


def desired(source: RunSource) -> dict[str, Any]:
    """Params, tags, metrics, artifacts, datasets, models and status of the MLflow run
    that mirrors ``source``."""
    run = source.run
    record, state = run.record, run.state
    code = run.get_code()
    params = {mlflow_key(k): clip(canonical_value(v), MAX_PARAM_VALUE)
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
    tags = {k: clip(v, MAX_TAG_VALUE) for k, v in tags.items()}
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


@dataclass
class RunChanges:
    """What one sync writes to one MLflow run."""

    params: list[Any] = field(default_factory=list)  # mlflow ``Param``s
    tags: list[Any] = field(default_factory=list)  # ``RunTag``s
    metrics: list[Any] = field(default_factory=list)  # ``Metric``s: the points not yet there
    #: points each MLflow metric holds once written (the run's series and numeric observations)
    series_counts: dict[str, int] = field(default_factory=dict)
    observations: dict[str, Any] = field(default_factory=dict)  # key -> points, for the JSON artifact
    observation_counts: dict[str, int] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    datasets: list[Any] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # lineage links to log as logged models
    logged_model: dict[str, Any] = field(default_factory=dict)  # the model ``run.log_model`` stored, if any
    files_key: str | None = None  # which files of that model the state records as uploaded
    files_due: bool = False
    register: list[str] = field(default_factory=list)  # model links to register
    end_status: str | None = None
    status_due: bool = False

    def counts(self, *, moved: bool) -> dict[str, int]:
        """How many of each kind are written (what a sync reports), zeros left out."""
        written = {"params": len(self.params), "tags": len(self.tags), "metrics": len(self.metrics),
                   "artifacts": len(self.artifacts), "datasets": len(self.datasets),
                   "observations": len(self.observations), "models": len(self.models),
                   "model_files": int(self.files_due), "registered": len(self.register),
                   "status": int(self.status_due), "moved": int(moved)}
        return {k: v for k, v in written.items() if v}


def nothing_held() -> dict[str, Any]:
    """What a run MLflow has never seen holds (``have`` for ``plan_changes``)."""
    return {"params": {}, "tags": {}, "series": {}, "artifacts": {}, "datasets": {}, "observations": {},
            "models": [], "status": "RUNNING"}


def plan_changes(source: RunSource, want: dict[str, Any], have: dict[str, Any], entry: dict[str, Any] | None, *,
                 trusted: bool, register_models: bool) -> RunChanges:
    """What to write so that the MLflow run holding ``have`` holds ``want``. A param whose
    value changed is kept as a ``prov.param_changed.<key>`` tag (added to ``want``):
    MLflow refuses to change a param."""
    from mlflow.entities import Metric, Param, RunTag

    run, entry = source.run, entry or {}
    todo = RunChanges()
    for key, value in want["params"].items():
        if key not in have["params"]:
            todo.params.append(Param(key, value))
        elif have["params"][key] != value_digest(value):
            want["tags"][f"prov.param_changed.{key}"] = clip(value, MAX_TAG_VALUE)
    todo.tags = [RunTag(k, v) for k, v in want["tags"].items() if have["tags"].get(k) != value_digest(v)]
    for key, mkey in want["metrics"].items():
        points = run.get_metric_history(key)
        todo.series_counts[mkey] = len(points)
        todo.metrics.extend(Metric(mkey, p.value, p.timestamp, p.step) for p in points[have["series"].get(mkey, 0):])
    for key, okey in want["observations"].items():
        points = run.get_observations(key)
        todo.observation_counts[key] = len(points)
        if have["observations"].get(key) != len(points):
            todo.observations[key] = points
        numeric = [o for o in points if is_number(o.value)]
        if numeric:
            todo.series_counts[okey] = len(numeric)
            todo.metrics.extend(Metric(okey, float(o.value), o.timestamp, o.epoch)
                                for o in numeric[have["series"].get(okey, 0):])
    todo.artifacts = [k for k, sha in want["artifacts"].items() if have["artifacts"].get(k) != sha]
    todo.datasets = [d for k, d in want["datasets"].items() if have["datasets"].get(k) != dataset_digest(d.digest)]
    todo.models = [link for link in want["models"] if link not in have["models"]]
    todo.logged_model = model_info(run)
    if todo.logged_model:
        todo.files_key = f"{MODEL_LAYOUT}:{todo.logged_model.get('sha256')}"
        todo.files_due = entry.get("model_files") != todo.files_key or not trusted
    registered = trusted and entry.get("registered") and entry.get("layout") == MODEL_LAYOUT
    if register_models and not registered:
        todo.register = [link for link in want["models"] if link.split("\t")[2]]
    todo.end_status = want["status"] if want["status"] != "RUNNING" else None
    todo.status_due = todo.end_status is not None and have["status"] != todo.end_status
    return todo


def sync_entry(source: RunSource, want: dict[str, Any], todo: RunChanges, entry: dict[str, Any] | None, *,
               external_id: str, experiment: str | None, register_models: bool) -> dict[str, Any]:
    """The local sync state of the run once ``todo`` is written: what the MLflow run
    holds, so that the next sync of an unchanged run reads nothing from MLflow."""
    new_entry: dict[str, Any] = {
        "version": source.version,
        "external_id": external_id,
        "params": {k: value_digest(v) for k, v in want["params"].items()},
        "tags": {k: value_digest(v) for k, v in want["tags"].items()},
        "series": todo.series_counts,
        "artifacts": want["artifacts"],
        "datasets": {k: dataset_digest(d.digest) for k, d in want["datasets"].items()},
        "observations": todo.observation_counts,
        "models": want["models"],
        "status": want["status"],
        "parent": bool(source.parent_external_id),
        "layout": MODEL_LAYOUT,
    }
    if experiment:
        new_entry["experiment"] = experiment
    if todo.files_key:
        new_entry["model_files"] = todo.files_key
    if register_models or (entry or {}).get("registered"):
        new_entry["registered"] = True
    return new_entry
