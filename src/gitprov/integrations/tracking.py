"""Pin a repository revision in an MLflow or W&B run: ``log_revision``.

A tracker run made outside git-prov (a notebook, a training script that already uses
MLflow or W&B) can still say exactly which code and which lexicon its numbers belong to.
``log_revision`` resolves a revision in the repository and logs a ``ProvenanceBundle``
(commit id, the lexicon's tree id and manifest hash at that commit, schema version,
work tree) as a tracked artifact of a run — the revision itself, never a copy of the
repository's data:

- MLflow: the bundle as ``prov/provenance_bundle.json``, tags ``mlflow.source.git.*``
  and ``prov.*``, and the revision as a dataset input (source type ``git``).
- W&B: an artifact of type ``git-revision`` holding the bundle file, a reference to the
  revision (nothing uploaded) and the bundle as metadata; the run's git commit is set.

Neither mlflow nor wandb is imported until a run is logged. ``ProvenanceBundle`` is a
frozen pydantic model (``model_dump``, ``model_validate_json`` to read a logged bundle
back, ``model_json_schema``), so importing this module loads pydantic; the CLI imports
it only for ``prov sync revision``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ..errors import ProvError, SyncError, UsageError
from ..names import LEXICON_DIR

if TYPE_CHECKING:
    from ..api import Repository
    from ..store.repo import GitRepository

__all__ = ["BACKENDS", "BUNDLE_ARTIFACT", "LoggedRevision", "ProvenanceBundle", "log_revision", "provenance_bundle"]

BACKENDS = ("mlflow", "wandb")
#: where the bundle lands among the MLflow run's artifacts (and its file name in W&B).
BUNDLE_ARTIFACT = "prov/provenance_bundle.json"
_MLFLOW_OPTIONS = {"tracking_uri", "experiment", "run_id", "run_name", "artifact_location"}
_WANDB_OPTIONS = {"project", "entity", "directory", "run_id", "run_name"}


class ProvenanceBundle(BaseModel):
    """What a tracker run pins: the commit and the lexicon its records were made against.

    ``lexicon_tree_hash`` is the git tree id of ``.provenance-schema/`` in that commit
    (None when the commit has no lexicon committed); ``lexicon`` is the ``sha256:`` of
    its manifest, the pin every prov record carries (the running git-prov's own lexicon
    when the commit has none); ``working_dir`` is the repository's work tree.
    ``layers_version``, the name lairs gives the schema version, is accepted for
    ``schema_version`` (``model_validate({"layers_version": 1, ...})``) and read as a
    property; the bundle is written with ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    revision: str
    lexicon_tree_hash: str | None
    schema_version: int = Field(validation_alias=AliasChoices("schema_version", "layers_version"))
    working_dir: str | None
    lexicon: str
    repo_url: str | None = None

    @property
    def layers_version(self) -> int:
        """``schema_version`` under the name lairs uses."""
        return self.schema_version

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class LoggedRevision(str):
    """What ``log_revision`` returns: as lairs, the tracked artifact's identifier
    ``"<artifact name>:<revision>"`` (a ``str``; in W&B a valid artifact reference, the
    full revision being one of the artifact's aliases), with the tracker's run id,
    the artifact name, the revision and the backend as attributes."""

    run_id: str
    artifact: str
    revision: str
    backend: str

    def __new__(cls, artifact: str, revision: str, run_id: str, backend: str) -> LoggedRevision:
        self = super().__new__(cls, f"{artifact}:{revision}")
        self.artifact, self.revision, self.run_id, self.backend = artifact, revision, run_id, backend
        return self


def _git(repo: Repository | GitRepository | str | os.PathLike[str]) -> GitRepository:
    from ..store.repo import GitRepository

    if isinstance(repo, GitRepository):
        return repo
    git = getattr(repo, "git", None)
    if isinstance(git, GitRepository):
        return git
    return GitRepository.open(os.fspath(repo))  # type: ignore[arg-type]


def provenance_bundle(repo: Repository | GitRepository | str | os.PathLike[str], revision: str = "HEAD") -> ProvenanceBundle:
    """The bundle of ``revision`` (raises ``RevisionError``, a ``ValueError``, when it
    names no commit)."""
    from ..schema import current_pin_fields
    from ..scrub import scrub_url
    from ..store.trees import read_path

    git = _git(repo)
    commit = git.resolve(revision)
    tree = git.read_commit(commit).tree
    folder = read_path(git.odb, tree, LEXICON_DIR)
    manifest = read_path(git.odb, tree, f"{LEXICON_DIR}/manifest.json")
    if folder is not None and folder.is_tree and manifest is not None and not manifest.is_tree:
        data = git.odb.read_typed(manifest.oid, "blob")
        lexicon = "sha256:" + hashlib.sha256(data).hexdigest()
        try:
            fields = json.loads(data)
            version = int(fields["schema_version"] if "schema_version" in fields else fields["layers_version"])
        except (ValueError, KeyError, TypeError):
            from ..errors import DataError

            raise DataError(f"{LEXICON_DIR}/manifest.json in commit {commit[:12]} has no valid schema_version; "
                            "check it with 'prov schema verify'") from None
        lexicon_tree: str | None = folder.oid
    else:
        pin = current_pin_fields()
        lexicon, version, lexicon_tree = pin["lexicon"], int(pin["version"]), None
    url = git.config.get("remote.origin.url")
    return ProvenanceBundle(revision=commit, lexicon_tree_hash=lexicon_tree, schema_version=version,
                            working_dir=git.work_tree, lexicon=lexicon, repo_url=scrub_url(url) if url else None)


def log_revision(repo: Repository | GitRepository | str | os.PathLike[str], revision: str = "HEAD",
                 backend: str = "mlflow", **options: Any) -> LoggedRevision:
    """Log ``revision`` of ``repo`` to a tracker run; returns, as lairs does, the
    tracked artifact's identifier ``"git-<repository>:<revision>"`` (a ``str``), whose
    ``run_id`` is the tracker's run id.

    MLflow options: ``tracking_uri``, ``experiment`` (name, default ``Default``),
    ``run_id`` (an existing run to add to; default: the active run, else a new run),
    ``run_name``, ``artifact_location``. W&B options: ``project`` (default
    ``git-prov``), ``entity``, ``directory``, ``run_id`` (resume that run; default: the
    active run, else a new run), ``run_name``.

    The revision is resolved first: a mistyped one raises ``ValueError``
    (``RevisionError``) before anything is logged. A missing tracker library raises
    ``ImportError`` (``MissingExtraError``) naming the ``pip install`` command.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown tracker {backend!r}; use one of: {', '.join(BACKENDS)}")
    allowed = _MLFLOW_OPTIONS if backend == "mlflow" else _WANDB_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"log_revision(backend={backend!r}) got unknown option(s) {', '.join(unknown)}; "
                        f"it takes {', '.join(sorted(allowed))}")
    bundle = provenance_bundle(repo, revision)
    if backend == "mlflow":
        from ..sync.mlflow_bridge import import_mlflow

        import_mlflow("logging a revision to MLflow")
        logger = _log_mlflow
    else:
        from ..sync.wandb_bridge import import_wandb

        import_wandb("logging a revision to W&B")
        logger = _log_wandb
    try:
        return LoggedRevision(f"git-{_repo_name(bundle)}", bundle.revision, logger(bundle, **options), backend)
    except ProvError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        name = "MLflow" if backend == "mlflow" else "W&B"
        raise SyncError(f"logging revision {bundle.revision[:12]} to {name} failed: {type(exc).__name__}: {text}") from exc


def _bundle_text(bundle: ProvenanceBundle) -> str:
    return json.dumps(bundle.to_json(), sort_keys=True, indent=2) + "\n"


def _mlflow_tags(bundle: ProvenanceBundle) -> dict[str, str]:
    tags = {
        "mlflow.source.git.commit": bundle.revision,
        "prov.revision": bundle.revision,
        "prov.lexicon": bundle.lexicon,
        "prov.schema_version": str(bundle.schema_version),
    }
    if bundle.lexicon_tree_hash:
        tags["prov.lexicon_tree"] = bundle.lexicon_tree_hash
    if bundle.repo_url:
        tags["mlflow.source.git.repoURL"] = bundle.repo_url
    if bundle.working_dir:
        tags["prov.working_dir"] = bundle.working_dir
    return tags


def _log_mlflow(bundle: ProvenanceBundle, *, tracking_uri: str | None = None, experiment: str | None = None,
                run_id: str | None = None, run_name: str | None = None, artifact_location: str | None = None) -> str:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag, RunStatus, RunTag

    client = MlflowClient(tracking_uri=tracking_uri)
    active = mlflow.active_run() if run_id is None and tracking_uri is None else None
    own = False
    if run_id is None and active is not None:
        run_id = active.info.run_id
    if run_id is None:
        name = experiment or "Default"
        found = client.get_experiment_by_name(name)
        exp_id = found.experiment_id if found is not None else client.create_experiment(name, artifact_location=artifact_location)
        created = client.create_run(exp_id, run_name=run_name or f"revision {bundle.revision[:12]}",
                                    tags={"prov.revision": bundle.revision})
        run_id, own = created.info.run_id, True
    else:
        client.get_run(run_id)  # an unknown run id fails here, before anything is written
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in _mlflow_tags(bundle).items()], synchronous=True)
    client.log_text(run_id, _bundle_text(bundle), BUNDLE_ARTIFACT)
    source = {"uri": bundle.repo_url or bundle.working_dir, "revision": bundle.revision}
    dataset = Dataset(name=_repo_name(bundle), digest=bundle.revision[:36], source_type="git",
                      source=json.dumps(source, sort_keys=True), profile=json.dumps(bundle.to_json(), sort_keys=True))
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "prov-revision")])])
    if own:
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        if store is not None:  # set_terminated would print "View run" lines on stdout
            import time

            store.update_run_info(run_id, run_status=RunStatus.from_string("FINISHED"),
                                  end_time=int(time.time() * 1000), run_name=None)
        else:
            client.set_terminated(run_id, "FINISHED")
    return run_id


def _repo_name(bundle: ProvenanceBundle) -> str:
    where = (bundle.repo_url or bundle.working_dir or "repository").rstrip("/")
    base = where.rsplit("/", 1)[-1].removesuffix(".git") or "repository"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", base)[:80]


def _log_wandb(bundle: ProvenanceBundle, *, project: str | None = None, entity: str | None = None,
               directory: str | None = None, run_id: str | None = None, run_name: str | None = None) -> str:
    import wandb

    active = wandb.run if run_id is None else None
    own = active is None
    if own:
        settings = wandb.Settings(silent=True, x_disable_stats=True, x_disable_machine_info=True,
                                  git_commit=bundle.revision, git_remote_url=bundle.repo_url)
        run = wandb.init(project=project or "git-prov", entity=entity, id=run_id, name=run_name,
                         dir=directory or os.environ.get("WANDB_DIR") or None, job_type="prov-revision",
                         config={"prov": bundle.to_json()}, resume="allow" if run_id else None,
                         settings=settings, reinit="finish_previous")
    else:
        run = active
        run.config.update({"prov": bundle.to_json()}, allow_val_change=True)
    try:
        art = wandb.Artifact(f"git-{_repo_name(bundle)}", type="git-revision", metadata=bundle.to_json(),
                             description=f"git revision {bundle.revision}")
        with art.new_file(os.path.basename(BUNDLE_ARTIFACT), mode="w", encoding="utf-8") as f:
            f.write(_bundle_text(bundle))
        where = bundle.repo_url or f"file://{bundle.working_dir}"
        # a reference, not a copy: W&B records the URI and checks nothing
        art.add_reference(f"git+{where}@{bundle.revision}", name="revision", checksum=False)
        run.log_artifact(art, aliases=["latest", f"rev-{bundle.revision[:12]}", bundle.revision])
        external = run.id
    finally:
        if own:
            run.finish()
    return external
