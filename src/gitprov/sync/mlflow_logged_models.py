"""Lineage models in MLflow: a logged model per prov model version, linked to the runs
that consume and produce it, its files when the run logged it (``run.log_model``; laid
out by ``mlflow_model``), and, with ``--register-models``, a registered model version.

``LoggedModels`` is the part of ``MlflowBridge`` that does this; it uses the bridge's
``client``, experiments (``_experiments`` under ``_lock``) and ``tracking_uri``.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from ..runs.models import MODEL_ATTRIBUTE
from .mlflow_store import is_http
from .state import value_digest

__all__ = ["MODEL_KEY_TAG", "PRODUCED_BY_TAG", "LoggedModels", "in_model", "logged_model_name", "model_info",
           "model_links", "registry_name", "version_alias"]

#: the tag that finds a logged model again: a digest of the prov model name and version.
MODEL_KEY_TAG = "prov.model.key"
#: on a logged model: the MLflow run that produced it.
PRODUCED_BY_TAG = "prov.model.produced_by"
#: characters MLflow refuses in a logged model's name.
_MODEL_NAME_FORBIDDEN = str.maketrans({c: "_" for c in "/:.%\"'"})


class LoggedModels:
    """Logged and registered models of a sync to one MLflow target (a mixin of
    ``MlflowBridge``, whose ``client`` it calls; ``_init_logged_models`` sets up its caches)."""

    tracking_uri: str
    _lock: threading.Lock
    _experiments: dict[str, str]

    def _init_logged_models(self) -> None:
        self._models: dict[str, str] = {}
        self._model_lock = threading.Lock()
        #: logged model id -> its artifact location, and the producer its tag names
        self._model_locations: dict[str, str] = {}
        self._produced: dict[str, str] = {}
        #: experiment ids that existed when this sync first looked for a logged model (a
        #: sync to one target holds its lock, so only experiments it makes come after)
        self._all_experiments: list[str] | None = None

    def _remote_model_links(self, remote: Any) -> list[str]:
        """The model links an existing MLflow run holds, as ``model_links`` writes them."""
        linked = [("in", m.model_id) for m in (remote.inputs.model_inputs or [] if remote.inputs else [])]
        linked += [("out", m.model_id) for m in (remote.outputs.model_outputs or [] if remote.outputs else [])]
        out = []
        for direction, model_id in linked:
            tags = self.client.get_logged_model(model_id).tags
            if "prov.model.name" in tags:
                out.append(_link(direction, tags["prov.model.name"], tags.get("prov.model.version", "")))
        return sorted(out)

    def _link_models(self, external_id: str, experiment_id: str, links: list[str], run: Any = None) -> None:
        """Link the run to a logged model per lineage model: its inputs through
        ``log_inputs``, its outputs through ``log_outputs``. A model version is one
        logged model per tracking store, named after the prov model (so every version of
        ``classifier`` is found by ``name = 'classifier'``), found again by its
        ``prov.model.key`` tag and created in the experiment of the first run that links it."""
        from mlflow.entities import LoggedModelInput, LoggedModelOutput

        inputs, outputs = [], []
        logged = model_info(run) if run is not None else None
        for link in links:
            direction, name, version = link.split("\t")
            info = logged if direction == "out" and logged and (logged.get("name"), logged.get("version")) == (
                name, version) else None
            model_id = self._logged_model(experiment_id, name, version, external_id if direction == "out" else None,
                                          info)
            if direction == "in":
                inputs.append(LoggedModelInput(model_id))
            else:
                # MLflow's source run is fixed at creation: a model a consumer synced first
                # names its producer in this tag (on every produced model, for one lookup)
                if self._produced.get(model_id) != external_id:
                    self.client.set_logged_model_tags(model_id, {PRODUCED_BY_TAG: external_id})
                    self._produced[model_id] = external_id
                outputs.append(LoggedModelOutput(model_id, 0))
        if inputs:
            self.client.log_inputs(external_id, models=inputs)
        if outputs:
            self.client.log_outputs(external_id, outputs)

    def _register(self, external_id: str, experiment_id: str, links: list[str]) -> None:
        """Register each versioned lineage model in MLflow's model registry: registered
        model = the prov model name, one model version per prov version (its source the
        logged model, its run the producer when this run produced it), found again by
        its ``prov.model.key`` tag. MLflow numbers versions in the order they are
        registered; the alias ``@<prov version>`` (``version_alias``) names git-prov's."""
        from mlflow.exceptions import MlflowException

        for link in links:
            direction, name, version = link.split("\t")
            if not version:
                continue
            registered = registry_name(name)
            key = value_digest(f"{name}\0{version}")
            model_id = self._logged_model(experiment_id, name, version, external_id if direction == "out" else None)
            with self._model_lock:
                try:
                    self.client.create_registered_model(registered, tags={"prov.model.name": name})
                except MlflowException as exc:
                    if "already exists" not in str(exc).lower():
                        raise
                found = self.client.search_model_versions(
                    f"name = '{_quoted(registered)}' and tags.`{MODEL_KEY_TAG}` = '{key}'", max_results=1)
                if found:
                    number, aliases = found[0].version, list(found[0].aliases or [])
                else:
                    with self._global_uri():
                        number = self.client.create_model_version(
                            registered, f"models:/{model_id}", run_id=external_id if direction == "out" else None,
                            tags={MODEL_KEY_TAG: key, "prov.model.version": version}, model_id=model_id,
                            description=f"prov model {name} version {version}").version
                    aliases = []
                if version_alias(version) not in aliases:
                    self.client.set_registered_model_alias(registered, version_alias(version), number)

    @contextlib.contextmanager
    def _global_uri(self) -> Iterator[None]:
        """A local registry resolves ``models:/<id>`` through MLflow's global tracking URI,
        not its client's (MLflow's own TODO): point it at this store meanwhile."""
        if is_http(self.tracking_uri):
            yield
            return
        from mlflow.tracking._tracking_service import utils

        previous = utils._tracking_uri
        utils.set_tracking_uri(self.tracking_uri)
        try:
            yield
        finally:
            utils._tracking_uri = previous

    def _upload_model(self, external_id: str, experiment_id: str, run: Any, info: dict[str, Any]) -> None:
        """The model the run logged (``run.log_model``) as the files of its logged model,
        laid out as MLflow's ``log_model`` does (``MLmodel``, environment files, the model;
        ``sync/mlflow_model.py``), so ``mlflow.pyfunc.load_model`` loads it by
        ``models:/<id>``, ``runs:/<run id>/<name>`` or a registered version."""
        from .mlflow_model import write_mlflow_model

        model_id = self._logged_model(experiment_id, str(info["name"]), str(info["version"]), external_id, info)
        location = self._model_locations.get(model_id) or self.client.get_logged_model(model_id).artifact_location
        with tempfile.TemporaryDirectory(prefix="prov-model-") as tmp:
            flavors = write_mlflow_model(tmp, run, info, model_id=model_id, run_id=external_id,
                                         artifact_location=location)
            self.client.log_model_artifacts(model_id, tmp)
        if flavors:
            self.client.set_logged_model_tags(model_id, {"prov.model.flavors": ",".join(flavors)})

    def _logged_model(self, experiment_id: str, name: str, version: str, source_run: str | None,
                      info: dict[str, Any] | None = None) -> str:
        key = value_digest(f"{name}\0{version}")
        with self._model_lock:
            if key in self._models:
                return self._models[key]
            if self._all_experiments is None:
                self._all_experiments = [e.experiment_id for e in self.client.search_experiments()]
            with self._lock:
                experiments = sorted({*self._all_experiments, *self._experiments.values()})
            found = self.client.search_logged_models(experiments, filter_string=f"tags.`{MODEL_KEY_TAG}` = '{key}'",
                                                     max_results=1)
            if found:
                model = found[0]
                if PRODUCED_BY_TAG in model.tags:
                    self._produced[model.model_id] = model.tags[PRODUCED_BY_TAG]
            else:
                tags = {MODEL_KEY_TAG: key, "prov.model.name": name, "prov.model.version": version}
                if source_run:
                    tags[PRODUCED_BY_TAG] = source_run
                params = {"prov.model.version": version} if version else {}
                framework = (info or {}).get("framework")
                if info is not None:
                    tags.update({"prov.model.format": str(info.get("format")), "prov.model.sha256": str(info.get("sha256"))})
                    params.update({"framework": framework} if framework else {})
                model = self.client.create_logged_model(experiment_id, name=logged_model_name(name),
                                                        source_run_id=source_run, tags=tags, params=params or None,
                                                        model_type=framework)
                self.client.finalize_logged_model(model.model_id, "READY")
                if source_run:
                    self._produced[model.model_id] = source_run
            self._models[key] = model.model_id
            self._model_locations[model.model_id] = model.artifact_location
            return model.model_id


def model_info(run: Any) -> dict[str, Any] | None:
    """What ``run.log_model`` recorded (the attribute ``prov.model``), or None."""
    info = run.state.attributes.get(MODEL_ATTRIBUTE)
    return info if isinstance(info, dict) and info.get("name") else None


def in_model(key: str, info: dict[str, Any] | None) -> bool:
    """True when artifact ``key`` is (part of) the model ``info`` describes: it goes to
    MLflow as the logged model, not as a run artifact (as MLflow 3's ``log_model``)."""
    if info is None:
        return False
    root = info.get("artifact") or "model"
    return key == root or key.startswith(root + "/")


def logged_model_name(name: str) -> str:
    """The MLflow logged-model name of a prov model (characters MLflow refuses -> ``_``)."""
    return name.translate(_MODEL_NAME_FORBIDDEN)[:200] or "_"


def registry_name(name: str) -> str:
    """The registered-model name of a prov model (``/`` and ``:`` -> ``_``)."""
    return name.replace("/", "_").replace(":", "_")[:200] or "_"


def version_alias(version: str) -> str:
    """The registered-model alias of a prov model version: the version with characters
    MLflow refuses in an alias as ``_``, ``prov-`` before one MLflow reserves (``latest``,
    ``v3``), so ``models:/classifier@1`` loads what git-prov calls version 1."""
    alias = "".join(c if c.isalnum() and c.isascii() or c in "_-" else "_" for c in version)[:200]
    return f"prov-{alias}" if alias.lower() == "latest" or (alias[:1] in "vV" and alias[1:].isdigit()) else alias


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _link(direction: str, name: str, version: str) -> str:
    return f"{direction}\t{name}\t{version}"


def model_links(lineage: Any) -> list[str]:
    """``in``/``out``, model name and version (empty: any version) of every model in a
    run's lineage, tab-separated and sorted: what the run's logged-model links hold."""
    out = []
    for direction, side in (("in", lineage.inputs), ("out", lineage.outputs)):
        for key, versions in side.items():
            if key.startswith("model:"):
                out += [_link(direction, key[len("model:"):], v) for v in (versions or [""])]
    return sorted(out)
