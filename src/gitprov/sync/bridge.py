"""The protocol every tracker bridge implements, and what it reports per run.

A bridge mirrors one prov run into one external run. The engine hands it a
``RunSource`` (the stored run plus its ledger version) and what the local state says
the target already holds; the bridge writes only what is missing and returns a
``RunResult`` event. Bridges import their tracker library lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import MissingExtraError

if TYPE_CHECKING:
    from ..runs.run import Run

__all__ = ["Bridge", "RunResult", "RunSource", "canonical_value", "import_tracker", "is_number", "is_transient", "millis",
           "observation_json", "require_tracker"]

def require_tracker(module: str, extra: str, purpose: str) -> None:
    """Fail early, without importing it (mlflow takes seconds), when the tracker library
    ``module`` is not installed: a ``MissingExtraError`` naming ``extra``."""
    from importlib.util import find_spec

    try:
        found = find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(module, extra, purpose)


def import_tracker(module: str, extra: str, purpose: str) -> Any:
    """The tracker library ``module``, or a ``MissingExtraError`` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _missing(module, extra, purpose) from exc


def _missing(module: str, extra: str, purpose: str) -> MissingExtraError:
    return MissingExtraError(f"{purpose} needs the {module} package: {extra}")


#: result statuses: ``synced`` (data written), ``unchanged`` (nothing to write),
#: ``would-sync`` (dry run), ``failed``, ``skipped`` (not attempted: tracker down).
RESULT_STATUSES = ("synced", "unchanged", "would-sync", "failed", "skipped")


@dataclass
class RunSource:
    """A stored run as the bridge sees it: ``version`` is its ledger directory tree id."""

    run: Run
    version: str
    #: the external id of the parent run on this target, when the parent is synced.
    parent_external_id: str | None = None

    @property
    def id(self) -> str:
        return self.run.id


@dataclass
class RunResult:
    """One per-run event of a sync (what the result table shows)."""

    run_id: str
    name: str
    status: str
    external_id: str | None = None
    #: counts of what was (or, in a dry run, would be) written.
    written: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "name": self.name, "status": self.status,
            "external_id": self.external_id, "written": self.written, "error": self.error,
            "attempts": self.attempts, "seconds": round(self.seconds, 3),
        }


class Bridge(Protocol):
    """A tracker target. ``kind`` names it (``mlflow``, ``wandb``); ``address`` plus
    ``kind`` key its local state; ``sync_run`` is called from worker threads."""

    kind: str
    address: str

    def find_existing(self, prov_run_id: str, experiment: str = "") -> str | None:
        """The external id of the run carrying ``prov.run_id`` = ``prov_run_id``."""
        ...

    def sync_run(self, source: RunSource, entry: dict[str, Any] | None, *, dry_run: bool = False) -> tuple[RunResult, dict[str, Any]]:
        """Write what ``entry`` (the local state; None or unversioned = unknown) says
        the target lacks; return the result and the new entry."""
        ...

    def unchanged(self, run_id: str, name: str, version: str, entry: dict[str, Any] | None,
                  parent_pending: bool) -> RunResult | None:
        """The ``unchanged`` result ``sync_run`` would give, decided from the local state
        alone (the run is not read), or None when the run must be read. ``parent_pending``:
        the run has a parent that is synced and ``entry`` does not point at it yet."""
        ...


_TRANSIENT_TEXT = (
    "connection refused", "max retries exceeded", "failed to establish a new connection",
    "connection aborted", "connection reset", "remotedisconnected", "timed out", "read timed out",
    "database is locked", "temporarily unavailable", "service unavailable", "bad gateway",
    "gateway timeout", "too many requests", "response ended prematurely",
    # two workers inserting the same row (MLflow checks, then inserts): retrying is safe
    "unique constraint failed", "duplicate key value",
)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: connection failures, timeouts, locked databases,
    lost insert races, HTTP 429/502/503/504 (anywhere in the exception's cause chain).
    Every bridge write is idempotent, so retrying one is always safe."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (ConnectionError, TimeoutError)):
            return True
        text = str(cur).lower()
        if any(marker in text for marker in _TRANSIENT_TEXT):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def millis(timestamp: str | None) -> int | None:
    """Milliseconds since the epoch of a prov RFC 3339 UTC timestamp."""
    if not timestamp:
        return None
    from datetime import datetime, timezone

    dt = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def canonical_value(value: Any) -> str:
    """A value as a tracker's text field: strings as they are, anything else as
    canonical JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_number(value: Any) -> bool:
    """An int or float that a tracker can chart (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def observation_json(key: str, points: list[Any]) -> str:
    """The JSON file of one observation series: every epoch, timestamp (ms) and value."""
    body = {"key": key, "points": [{"epoch": o.epoch, "timestamp": o.timestamp, "value": o.value} for o in points]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
