"""The W&B bridge: one prov run -> one W&B run whose id is derived from the prov run id.

Hyperparameters -> config, metric series -> history rows with explicit, increasing
steps and the original timestamps (``_timestamp``), latest values -> summary, tags ->
tags (``key`` or ``key:value``), code version -> the run's git commit and remote,
artifacts -> ``log_artifact`` (one W&B artifact per run: the run's output lineage),
observations -> summary ``observation/<key>`` (latest value) and one JSON file per key
in the artifact ``prov-<id>-observations`` (every epoch; a new version when they
change), lineage -> ``config.prov.lineage``, and online, the artifacts of the runs it
consumed -> ``use_artifact`` (its input lineage; W&B refuses that offline). Works offline
(``WANDB_MODE=offline``); ``wandb sync`` uploads those runs later. A later sync resumes
the same run id and appends only points past the last step already sent. Offline there
is no way to ask W&B what it holds, so the local state is the only record of what was
sent (online, ``find_existing`` asks the public API).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ProvError
from ..runs.artifacts import DIRECTORY_TYPE
from ..scrub import scrub_url
from .bridge import (
    RunResult,
    RunSource,
    canonical_value,
    import_tracker,
    millis,
    observation_json,
    require_tracker,
)
from .keymap import mlflow_key

if TYPE_CHECKING:
    from ..store.prov_store import ProvStore

__all__ = ["WANDB_EXTRA", "WandbBridge", "import_wandb", "wandb_run_id"]

WANDB_EXTRA = "pip install 'git-prov[wandb]'"
_FORBIDDEN = set(":;,#?/'")


def import_wandb(purpose: str = "syncing to W&B") -> Any:
    """``wandb``, or a ``MissingExtraError`` naming the extra to install."""
    return import_tracker("wandb", WANDB_EXTRA, purpose)


def require_wandb(purpose: str = "syncing to W&B") -> None:
    """Fail early, without importing it, when wandb is not installed."""
    require_tracker("wandb", WANDB_EXTRA, purpose)


def wandb_run_id(prov_run_id: str) -> str:
    """``prov-`` and the first 32 hex digits of the run id: stable, ≤ 64 characters,
    none of the characters W&B forbids (``:;,#?/'``)."""
    run_id = f"prov-{prov_run_id[:32]}"
    assert not (_FORBIDDEN & set(run_id)) and len(run_id) <= 64
    return run_id


def use_input_artifacts(wb: Any, run: Any) -> list[str]:
    """Mark the artifacts of the runs ``run`` consumed as its inputs (``use_artifact``),
    so W&B's lineage graph links them; returns the artifact names used. Online only: an
    offline W&B run cannot reference another run's artifact. Input runs given by a
    prefix are resolved in the run's repository; ones it does not hold, or that logged
    no artifact, are skipped."""
    from ..runs.lineage import inputs_of
    from ..runs.reading import resolve_run_id
    from ..runs.run import Run

    names = []
    for ref in sorted(inputs_of(run).runs):
        try:
            source = Run.load(run.store, resolve_run_id(run.store.ledger, ref))
        except ProvError:  # a dangling input (prov verify reports it)
            continue
        if not source.state.artifacts:
            continue  # nothing of it was logged to W&B
        name = f"{wandb_run_id(source.id)}-artifacts:latest"
        wb.use_artifact(name)
        names.append(name)
    return names


def code_requirements(run: Any) -> dict[str, bytes]:
    """The lock and requirement files at the root of the run's commit, by name."""
    from ..runs.code import lockfiles_at

    return lockfiles_at(run.store.git, run.get_code().commit)


def _environment(env: Any) -> dict[str, Any] | None:
    if env is None:
        return None
    return {"python": f"{env.python_implementation} {env.python_version}", "platform": env.platform,
            "machine": env.machine, "distributions_digest": env.distributions_digest,
            "distributions": env.distributions_count}


def _uploaded(directory: str) -> bool:
    """``wandb sync`` marks an uploaded offline run with ``run-<id>.wandb.synced``."""
    try:
        return any(name.endswith(".wandb.synced") for name in os.listdir(directory))
    except OSError:
        return False


@contextlib.contextmanager
def _timeline(run: Any) -> Iterator[None]:
    """While W&B starts the run: its start time is the prov run's start and its runtime
    so far the prov run's duration (W&B takes both from the clock of the syncing
    machine otherwise). W&B exposes no setting for them, so the record it sends is
    amended where it is made (``InterfaceBase._make_run``); a W&B without that hook
    keeps its own times."""
    try:
        from wandb.sdk.interface.interface import InterfaceBase
    except ImportError:
        yield
        return
    original = getattr(InterfaceBase, "_make_run", None)
    start = millis(run.record.created)
    if original is None or start is None:
        yield
        return
    end = millis(run.state.ended) or max([start, *(m.timestamp for m in run.state.metrics.values())])

    def make_run(self: Any, wandb_run: Any) -> Any:
        proto = original(self, wandb_run)
        proto.start_time.FromMilliseconds(start)
        proto.runtime = max(0, (end - start) // 1000)
        return proto

    InterfaceBase._make_run = make_run
    try:
        yield
    finally:
        InterfaceBase._make_run = original


class WandbBridge:
    """Sync target: one W&B project (online or offline)."""

    kind = "wandb"

    def __init__(self, project: str, *, entity: str | None = None, directory: str | None = None,
                 store: ProvStore | None = None) -> None:
        require_wandb()
        self._wandb: Any = None
        self.project = project
        self.entity = entity
        # read now: wandb's process-wide setup keeps the WANDB_DIR it saw first; by
        # default W&B's files (its ``wandb/`` folder) go under .git/prov, never into
        # the work tree
        prov_dir = store.git.prov_dir() if store is not None else None
        self.directory = directory or os.environ.get("WANDB_DIR") or prov_dir or None
        if self.directory:
            os.makedirs(self.directory, exist_ok=True)
        self.address = f"{entity}/{project}" if entity else project
        self._lock = threading.Lock()  # wandb runs one run at a time per process here

    @property
    def wandb(self) -> Any:
        """The wandb module, imported on first use (a sync with nothing new skips it)."""
        if self._wandb is None:
            self._wandb = import_wandb()
        return self._wandb

    def offline(self) -> bool:
        """True when W&B writes offline run directories (``WANDB_MODE=offline``)."""
        return self.wandb.setup().settings.mode in ("offline", "disabled")

    def find_existing(self, prov_run_id: str, experiment: str = "") -> str | None:
        """The W&B run id if the run exists online (offline: unknown, None)."""
        if self.offline():
            return None
        try:
            api = self.wandb.Api()
            path = f"{self.entity or api.default_entity}/{self.project}/{wandb_run_id(prov_run_id)}"
            api.run(path)
            return wandb_run_id(prov_run_id)
        except Exception:  # noqa: BLE001 - "not found" has no stable exception type
            return None

    def unchanged(self, run_id: str, name: str, version: str, entry: dict[str, Any] | None,
                  parent_pending: bool) -> RunResult | None:
        if entry and entry.get("version") == version:
            return RunResult(run_id=run_id, name=name, status="unchanged", external_id=wandb_run_id(run_id))
        return None

    def sync_run(self, source: RunSource, entry: dict[str, Any] | None, *,
                 dry_run: bool = False) -> tuple[RunResult, dict[str, Any]]:
        started = time.monotonic()
        run = source.run
        state = run.state
        result = RunResult(run_id=run.id, name=run.name, status="unchanged", external_id=wandb_run_id(run.id))
        same = self.unchanged(run.id, run.name, source.version, entry, False)
        if same is not None:
            return same, entry  # type: ignore[return-value]
        offline = self.offline()
        previous_dir = (entry or {}).get("offline_dir")
        # offline, a run directory W&B has not uploaded yet is written again whole and
        # the old one removed: one directory per run, holding all of it; once uploaded
        # (``wandb sync`` left its marker), only what is new goes in a resumed run
        rewrite = bool(offline and previous_dir and os.path.isdir(previous_dir) and not _uploaded(previous_dir))
        if rewrite:
            entry = {"version": None}
        have = (entry or {}).get("series", {}) if entry and entry.get("version") else {}
        last_step = (entry or {}).get("last_step", -1) if entry and entry.get("version") else -1
        rows: dict[int, dict[str, Any]] = {}
        counts: dict[str, int] = {}
        sent = 0
        for key in run.get_metric_keys():
            points = run.get_metric_history(key)
            counts[key] = len(points)
            for p in points[have.get(key, 0):]:
                if p.step <= last_step:
                    continue  # W&B history steps only increase; the point is already there
                row = rows.setdefault(p.step, {})
                row[key] = p.value
                row["_timestamp"] = max(row.get("_timestamp", 0), p.timestamp / 1000)
                sent += 1
        artifacts = {k: ref.sha256 for k, ref in sorted(state.artifacts.items()) if ref.media_type != DIRECTORY_TYPE}
        new_artifacts = [k for k, sha in artifacts.items() if (entry or {}).get("artifacts", {}).get(k) != sha]
        observations = {k: run.get_observations(k) for k in sorted(state.observations)}
        observation_counts = {k: len(v) for k, v in observations.items()}
        sent_counts = (entry or {}).get("observations", {}) if entry and entry.get("version") else {}
        changed_observations = [k for k, n in observation_counts.items() if sent_counts.get(k) != n]
        result.written = {k: v for k, v in {"metrics": sent, "artifacts": len(new_artifacts),
                                             "observations": len(changed_observations)}.items() if v}
        if dry_run:
            result.status = "would-sync"
            return result, entry or {}
        code = run.get_code()
        wandb = self.wandb
        used_before = bool((entry or {}).get("used")) and (entry or {}).get("inputs") == state.lineage.inputs
        used: list[str] = list((entry or {}).get("used", [])) if used_before else []
        # the run's own machine and requirements, not the syncing machine's
        settings = wandb.Settings(silent=True, x_disable_stats=True, x_disable_machine_info=True,
                                  x_save_requirements=False, host=run.record.host,  # "": unknown, not this machine
                                  git_commit=code.commit or None,
                                  git_remote_url=scrub_url(code.repo_url) if code.repo_url else None)
        tags = sorted({(f"{k}:{v}" if v else k)[:64] for k, v in state.tags.items()})
        config = {k: v for k, v in run.get_hyperparameters().items()}
        config["prov"] = {"run_id": run.id, "commit": code.commit, "dirty": code.is_dirty,
                          "created": run.record.created, "lexicon": run.record.schema.lexicon,
                          "parent": run.record.parent, "experiment": state.experiment,
                          "ended": state.ended, "user": run.record.user, "host": run.record.host,
                          "environment": _environment(run.record.environment),
                          "lineage": {"inputs": state.lineage.inputs, "outputs": state.lineage.outputs}}
        requirements = code_requirements(run)
        with self._lock, _timeline(run):
            wb = wandb.init(project=self.project, entity=self.entity, id=wandb_run_id(run.id), name=run.name or None,
                            group=state.experiment or None, config=config, tags=tags, dir=self.directory,
                            resume="allow", settings=settings, reinit="finish_previous")
            try:
                if requirements and not (entry or {}).get("requirements"):
                    for name, data in requirements.items():
                        with open(os.path.join(wb.dir, name), "wb") as f:
                            f.write(data)
                        wb.save(os.path.join(wb.dir, name), base_path=wb.dir, policy="now")
                for step in sorted(rows):
                    wb.log(rows[step], step=step)
                for key, summary in state.metrics.items():
                    wb.summary[key] = summary.value
                wb.summary["prov/status"] = state.status
                for key, value in state.attributes.items():
                    if not key.startswith("prov."):
                        wb.summary[f"attribute/{key}"] = canonical_value(value) if not isinstance(value, (int, float, str)) else value
                if new_artifacts:
                    art = wandb.Artifact(f"{wandb_run_id(run.id)}-artifacts", type="prov-artifacts",
                                         metadata={"prov.run_id": run.id, "sha256": artifacts})
                    from ..runs.artifacts import safe_file_name

                    for key in artifacts:
                        name = "/".join(safe_file_name(p) for p in key.split("/") if p)
                        with art.new_file(name, mode="wb") as f:
                            f.write(run.get_artifact(key))
                    wb.log_artifact(art)
                for key, points in observations.items():
                    if points:
                        wb.summary[f"observation/{key}"] = points[-1].value
                if changed_observations:
                    obs = wandb.Artifact(f"{wandb_run_id(run.id)}-observations", type="prov-observations",
                                         metadata={"prov.run_id": run.id, "epochs": observation_counts})
                    for key, points in observations.items():
                        with obs.new_file(f"{mlflow_key(key)}.json", mode="w", encoding="utf-8") as f:
                            f.write(observation_json(key, points))
                    wb.log_artifact(obs)
                if not offline and not used_before:
                    used = use_input_artifacts(wb, run)
                exit_code = {"finished": 0, "running": 0}.get(state.status, 1)
            finally:
                written_dir = getattr(wb.settings, "sync_dir", None)
                wb.finish(exit_code=locals().get("exit_code", 1))
        last = max([last_step, *rows]) if rows else last_step
        new_entry = {"version": source.version, "external_id": result.external_id, "series": counts,
                     "last_step": last, "artifacts": artifacts, "observations": observation_counts,
                     "inputs": state.lineage.inputs, "used": used, "requirements": sorted(requirements)}
        if offline:
            new_entry["offline_dir"] = written_dir
            if rewrite and previous_dir != written_dir:
                shutil.rmtree(previous_dir, ignore_errors=True)
        result.status = "synced"
        result.seconds = time.monotonic() - started
        return result, new_entry
