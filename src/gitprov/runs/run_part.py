"""``RunPart``: what each of ``Run``'s mixins (``run_values``, ``run_metrics``,
``run_context``, ``run_artifacts``) may use of the run: the attributes ``Run`` sets and
its guards. Declarations only: nothing here runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model import ArtifactRef, RunRecord, RunState
    from ..store.prov_store import ProvStore
    from .writer import RunWriter

__all__ = ["RunPart"]


class RunPart:
    """The base of ``Run``'s mixins."""

    id: str
    record: RunRecord
    _store: ProvStore
    _state: RunState
    _writer: RunWriter
    _active: bool

    if TYPE_CHECKING:
        def _require_active(self, what: str) -> None: ...  # Run's

        def _touch(self) -> None: ...  # Run's

        def log_artifact(self, key: str, source: Any, overwrite: bool = False,
                         media_type: str | None = None) -> ArtifactRef: ...  # ArtifactMethods'
