"""Sync bridges: mirror the repository's runs to MLflow and Weights & Biases.

Nothing here imports a tracker library; each bridge imports its own when it is made
and raises ``SyncError`` naming the extra to install when it is missing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: the hooks load sync.auto
if TYPE_CHECKING:
    from typing import Any

    from ..store.prov_store import ProvStore
    from .bridge import Bridge, RunResult, RunSource
    from .engine import SyncReport, TargetStatus, sync_runs, sync_status
    from .watch import watch

__all__ = [
    "Bridge",
    "RunResult",
    "RunSource",
    "SyncReport",
    "TargetStatus",
    "sync_mlflow",
    "sync_runs",
    "sync_status",
    "sync_wandb",
    "watch",
]


_LAZY = {"Bridge": "bridge", "RunResult": "bridge", "RunSource": "bridge", "SyncReport": "engine",
         "TargetStatus": "engine", "sync_runs": "engine", "sync_status": "engine", "watch": "watch"}


def __getattr__(name: str) -> Any:
    """The engine and bridges load on first use (``sync.auto`` runs on git hook paths)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gitprov.sync' has no attribute {name!r}")


def sync_mlflow(store: ProvStore, tracking_uri: str | None = None, *, experiment_prefix: str = "",
                artifact_location: str | None = None, timeout: float = 8.0, register_models: bool = False,
                **options: Any) -> SyncReport:
    """Mirror the store's runs to MLflow (``options``: see ``sync_runs``; ``retries`` and
    ``timeout`` also govern MLflow's own HTTP requests). Without a tracking URI or
    ``$MLFLOW_TRACKING_URI``, the store is ``.git/prov/mlflow/mlflow.db``."""
    from ..store.prov_store import ProvStore
    from .engine import sync_runs
    from .mlflow_bridge import DEFAULT_RETRIES, MlflowBridge

    store = ProvStore.of(store)
    bridge = MlflowBridge(tracking_uri, experiment_prefix=experiment_prefix, artifact_location=artifact_location,
                          store=store, retries=options.get("retries", DEFAULT_RETRIES), timeout=timeout,
                          register_models=register_models)
    return sync_runs(store, bridge, **options)


def sync_wandb(store: ProvStore, project: str, *, entity: str | None = None, directory: str | None = None,
               **options: Any) -> SyncReport:
    """Mirror the store's runs to Weights & Biases (``options``: see ``sync_runs``);
    without ``directory`` or ``$WANDB_DIR``, W&B's files go under ``.git/prov/wandb``."""
    from ..store.prov_store import ProvStore
    from .engine import sync_runs
    from .wandb_bridge import WandbBridge

    store = ProvStore.of(store)
    bridge = WandbBridge(project, entity=entity, directory=directory, store=store)
    return sync_runs(store, bridge, **options)
