"""``GitMetadataTracker``: the metadata-tracker interface common in MLOps frameworks,
backed by git-prov runs.

Mapping: every *resource* is a run. Its id and type are the tags ``resource.id`` and
``resource.type`` (the run's name and experiment are the same id and type, for
``prov runs``); creating a resource with an id that exists starts a new *version* of it
(a new run), and lookups return the latest. A resource's parent is the tag
``resource.parent`` (set with ``update_resource(r, {"parent": other})``), else the run's
``parent``. Metadata is the attribute ``metadata/<id>``, version-control information
``vc/<key>``, tags are tags, artifacts are artifacts (data profiles, checks and
comparisons under ``data_profile/``, ``checks/``, ``data_comparison/``). Model lineage
is run lineage: a model version's inputs name the dataset versions' runs. A model
version is *deployed* when it carries the tag ``deployed`` = ``true``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..runs.run import Run

__all__ = ["GitMetadataTracker"]

ID_TAG, TYPE_TAG, PARENT_TAG = "resource.id", "resource.type", "resource.parent"
DEFAULT_TYPE = "resource"


class GitMetadataTracker:
    """Resources (runs) in the git repository at ``repo_path``."""

    def __init__(self, repo_path: str | os.PathLike[str] = ".", *, environment: bool = True) -> None:
        from ..api import Repository

        self.repo = Repository(repo_path)
        self._environment = environment  # fingerprint the interpreter in each new resource
        self._active: dict[str, Run] = {}

    # -- resources -------------------------------------------------------------------
    def create_resource(self, id: str, type: str | None = None) -> Run:
        """A new version of resource ``id`` (a new active run, visible at once)."""
        rtype = type or DEFAULT_TYPE
        if not isinstance(id, str) or not id:
            raise UsageError("a resource id must be a non-empty string")
        run = self.repo.start_run(name=id, experiment=rtype, tags={ID_TAG: id, TYPE_TAG: rtype},
                                  environment=self._environment)
        run.flush()
        self._active[run.id] = run
        return run

    def get_resource(self, id: str, type: str | None = None) -> Run | None:
        """The latest version of resource ``id`` of ``type``, or None."""
        query: dict[str, Any] = {"tags.resource.id": id, "tags.resource.type": type or DEFAULT_TYPE}
        found = self.repo.find_runs(query, order_by="created desc", limit=1)
        return self._live(found[0]) if found else None

    def update_resource(self, resource: Run, updates: dict[str, Any]) -> Run:
        """Set attributes; ``parent`` (a resource or its run id) sets the parent."""
        if not isinstance(updates, dict):
            raise UsageError("updates must be a dict")
        run = self._run(resource)
        updates = dict(updates)
        if "parent" in updates:
            parent = updates.pop("parent")
            run.log_tags({PARENT_TAG: parent.id if hasattr(parent, "id") else str(parent)})
        if updates:
            run.log_attributes(updates, overwrite=True)
        return self._flush(run)

    def clean_resource(self, resource: Run, type: str | None = None) -> int:
        """Delete (tombstone) every version of the resource; returns how many."""
        rid = self.get_resource_id(resource)
        rtype = type or self._run(resource).state.tags.get(TYPE_TAG, DEFAULT_TYPE)
        runs = self.repo.find_runs({"tags.resource.id": rid, "tags.resource.type": rtype})
        for run in runs:
            self._active.pop(run.id, None)
            self._live(run).delete()
        return len(runs)

    def get_resource_id(self, resource: Run) -> str:
        return self._run(resource).state.tags.get(ID_TAG, self._run(resource).id)

    def get_parent_id(self, resource: Run, type: str | None = None) -> str | None:
        """The resource id of the parent (of ``type``, when given), or None."""
        parent = self._parent(resource)
        if parent is None or (type is not None and parent.state.tags.get(TYPE_TAG) != type):
            return None
        return self.get_resource_id(parent)

    # -- artifacts, tags, metadata ----------------------------------------------------------
    def log_artifact(self, resource: Run, id: str, path: str | os.PathLike[str]) -> Any:
        run = self._run(resource)
        ref = run.log_artifact(id, path, overwrite=True)
        self._flush(run)
        return ref

    def get_artifact(self, resource: Run, id: str) -> bytes:
        return self._run(resource).get_artifact(id)

    def log_tag(self, resource: Run, key: str, value: str) -> None:
        self._flush(self._run(resource), tags={key: str(value)})

    def get_tag(self, resource: Run, key: str) -> str | None:
        return self._run(resource).get_tags().get(key)

    def log_metadata(self, resource: Run, id: str, data: Any) -> None:
        self._flush(self._run(resource), attributes={f"metadata/{id}": data})

    def get_metadata(self, resource: Run, id: str) -> Any:
        return self._run(resource).get_attribute(f"metadata/{id}")

    def register_vc_resource(self, resource: Run, vc_info: dict[str, Any], key: str | None = None,
                             additional_metadata: dict[str, Any] = {}) -> None:  # noqa: B006 (interface)
        """Record version-control information (e.g. ``{"hexsha": ..., "url": ...}``)."""
        if not isinstance(vc_info, dict):
            raise UsageError("vc_info must be a dict such as {'hexsha': ..., 'url': ...}")
        self._flush(self._run(resource), attributes={f"vc/{key or 'default'}": {**vc_info, **(additional_metadata or {})}})

    def get_vc_info(self, resource: Run, key: str = "hexsha") -> dict[str, Any]:
        """The registered version-control information, a dict as the interface returns
        (``get_vc_info(r)["hexsha"]``): the one registered under ``key`` (or
        ``<key>_hexsha``), else the first holding a field ``key`` (the default
        registration first); with nothing registered, ``{"hexsha": <the run's commit>}``
        (and its ``uri``), or ``{"hexsha": None}`` for another key."""
        run = self._run(resource)
        registered = {name[3:]: value for name, value in sorted(run.get_attributes().items())
                      if name.startswith("vc/") and isinstance(value, dict)}
        base = key.removesuffix("_hexsha") if key != "hexsha" else key
        found = registered.get(base)
        if found is None:
            order = sorted(registered, key=lambda k: k != "default")
            found = next((registered[k] for k in order if key in registered[k]), None)
        if found is not None:
            return dict(found)
        if key == "hexsha":
            code = run.get_code()
            return {"hexsha": code.commit, **({"uri": code.repo_url} if code.repo_url else {})}
        return {"hexsha": None}

    def log_data_profile(self, resource: Run, file_path: str | os.PathLike[str]) -> Any:
        return self._log_file(resource, "data_profile", file_path)

    def log_checks(self, resource: Run, file_path: str | os.PathLike[str]) -> Any:
        return self._log_file(resource, "checks", file_path)

    def log_data_comparison(self, resource: Run, file_path: str | os.PathLike[str]) -> Any:
        return self._log_file(resource, "data_comparison", file_path)

    # -- models -------------------------------------------------------------------------
    def build_model_lineage(self, model_version: Run, dataset_versions: list[Run]) -> Run:
        """Record that ``model_version`` was built from ``dataset_versions``."""
        from ..lineage import of

        run = self._run(model_version)
        builder = of(run)
        for dataset in dataset_versions:
            builder.with_input_artifact(self._run(dataset).id)
        builder.register()
        return self._flush(run)

    def get_prev_resource_version(self, resource: Run) -> Run | None:
        """The version of the same resource created just before this one."""
        run = self._run(resource)
        query = {"tags.resource.id": self.get_resource_id(run),
                 "tags.resource.type": run.state.tags.get(TYPE_TAG, DEFAULT_TYPE),
                 "created": {"$lt": run.record.created}}
        found = self.repo.find_runs(query, order_by="created desc", limit=1)
        return self._live(found[0]) if found else None

    def get_latest_model_resource(self, model: Run | str, type: str) -> Run | None:
        """The latest resource of ``type`` whose parent is ``model`` (a resource or its id)."""
        parent_id = model if isinstance(model, str) else self.get_resource_id(model)
        candidates = self.repo.find_runs({"tags.resource.type": type}, order_by="created desc")
        for run in candidates:
            parent = self._parent(run)
            if parent is not None and self.get_resource_id(parent) == parent_id:
                return self._live(run)
        return None

    def get_currently_deployed_model_version(self, model_version: Run) -> Run | None:
        """The latest version of this model version's resource tagged ``deployed=true``."""
        run = self._run(model_version)
        query = {"tags.resource.id": self.get_resource_id(run),
                 "tags.resource.type": run.state.tags.get(TYPE_TAG, DEFAULT_TYPE), "tags.deployed": "true"}
        found = self.repo.find_runs(query, order_by="created desc", limit=1)
        return self._live(found[0]) if found else None

    def get_winning_experiment(self, model_version: Run) -> Run | None:
        """The experiment the model version came from: its parent of type ``experiment``."""
        parent = self._parent(model_version)
        return parent if parent is not None and parent.state.tags.get(TYPE_TAG) == "experiment" else None

    def get_prediction_job_model_version(self, prediction_job: Run) -> Run | None:
        """The model version a prediction job used: a ``model_version`` resource among
        its lineage inputs, else its parent when that is one."""
        from ..lineage import inputs_of

        job = self._run(prediction_job)
        for run_id in sorted(inputs_of(job).runs):
            try:
                candidate = self.repo.get_run(run_id)
            except UsageError:
                continue
            if candidate.state.tags.get(TYPE_TAG) == "model_version":
                return self._live(candidate)
        parent = self._parent(job)
        return parent if parent is not None and parent.state.tags.get(TYPE_TAG) == "model_version" else None

    def load_model(self, model_obj: Any, model_version: Run | None, ref_model: Run | None = None) -> Any:
        """The ``model`` artifact of ``model_version`` (else of ``ref_model``): given to
        ``model_obj.loads(bytes)`` when it has that method, else returned as bytes."""
        source = model_version if model_version is not None else ref_model
        if source is None:
            raise UsageError("load_model needs a model_version or a ref_model")
        data = self._run(source).get_artifact("model")
        loads = getattr(model_obj, "loads", None)
        return loads(data) if callable(loads) else data

    def stop(self) -> None:
        """End every resource this tracker started (``finished``)."""
        for run in list(self._active.values()):
            if run._active:
                run.end("finished")
        self._active.clear()

    # -- helpers --------------------------------------------------------------------------
    def _run(self, resource: Any) -> Run:
        if isinstance(resource, str):
            return self._live(self.repo.get_run(resource))
        if not hasattr(resource, "state") or not hasattr(resource, "_touch"):
            raise UsageError(f"a resource is a Run (from create_resource/get_resource), not {type(resource).__name__}")
        return self._live(resource)

    def _live(self, run: Run) -> Run:
        """This process's active object for the run when there is one."""
        return self._active.get(run.id, run)

    def _parent(self, resource: Run) -> Run | None:
        run = self._run(resource)
        parent_id = run.state.tags.get(PARENT_TAG) or run.record.parent
        if not parent_id:
            return None
        try:
            return self._live(self.repo.get_run(parent_id))
        except UsageError:
            return None

    def _flush(self, run: Run, tags: dict[str, str] | None = None, attributes: dict[str, Any] | None = None) -> Run:
        if tags:
            run.log_tags(tags)
        if attributes:
            run.log_attributes(attributes, overwrite=True)  # the interface replaces metadata
        run.flush()  # visible to queries at once (a no-op for a stored run, written already)
        return run

    def _log_file(self, resource: Run, folder: str, file_path: str | os.PathLike[str]) -> Any:
        path = os.fspath(file_path)
        if not os.path.isfile(path):
            raise UsageError(f"{folder}: {path!r} is not a file")
        return self.log_artifact(resource, f"{folder}/{os.path.basename(path)}", path)
