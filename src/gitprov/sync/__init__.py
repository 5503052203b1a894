"""Sync bridges: mirror the repository's runs to MLflow and Weights & Biases.

Nothing here imports a tracker library; each bridge imports its own when it is made
and raises ``SyncError`` naming the extra to install when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .bridge import Bridge, RunResult, RunSource
from .engine import SyncReport, TargetStatus, sync_runs, sync_status
from .watch import watch

if TYPE_CHECKING:
    from ..api import Repository

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


def sync_mlflow(repo: Repository, tracking_uri: str | None = None, *, experiment_prefix: str = "",
                artifact_location: str | None = None, **options: Any) -> SyncReport:
    """Mirror ``repo``'s runs to MLflow (``options``: see ``sync_runs``)."""
    from .mlflow_bridge import MlflowBridge

    bridge = MlflowBridge(tracking_uri, experiment_prefix=experiment_prefix, artifact_location=artifact_location)
    return sync_runs(repo, bridge, **options)


def sync_wandb(repo: Repository, project: str, *, entity: str | None = None, directory: str | None = None,
               **options: Any) -> SyncReport:
    """Mirror ``repo``'s runs to Weights & Biases (``options``: see ``sync_runs``)."""
    from .wandb_bridge import WandbBridge

    bridge = WandbBridge(project, entity=entity, directory=directory)
    return sync_runs(repo, bridge, **options)

