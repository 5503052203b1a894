"""git-prov: provenance for machine learning, stored inside the git repository.

Importing this package is cheap: the verbs and the repository class load on first
use, and click, pydantic, mlflow, wandb and dulwich are never imported here.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    AmbiguousRevisionError,
    BareRepositoryError,
    BuildChildError,
    ConcurrentUpdateError,
    ConfigError,
    DataError,
    DriftError,
    EmptyRepositoryError,
    FormatVersionError,
    MissingExtraError,
    MissingObjectError,
    NotARepositoryError,
    PackStreamError,
    ProvError,
    QueryError,
    ReadOnlyRepositoryError,
    RemoteDataError,
    RemoteError,
    RepositoryError,
    RerunError,
    RevisionError,
    SyncError,
    UnknownFieldError,
    UnknownRevisionError,
    UsageError,
    VerificationError,
    WriteError,
)

TYPE_CHECKING = False  # typing is not imported at run time: hook path
if TYPE_CHECKING:
    from typing import Any

    from .api import CommitProvenance, Repository, capture, export, init, log, show, start_run
    from .runs import MetricPoint, Observation, Run

__all__ = [
    "AmbiguousRevisionError",
    "BareRepositoryError",
    "BuildChildError",
    "CommitProvenance",
    "ConcurrentUpdateError",
    "ConfigError",
    "DataError",
    "DriftError",
    "EmptyRepositoryError",
    "FormatVersionError",
    "MissingExtraError",
    "MissingObjectError",
    "NotARepositoryError",
    "PackStreamError",
    "ProvError",
    "QueryError",
    "ReadOnlyRepositoryError",
    "RemoteDataError",
    "RemoteError",
    "RerunError",
    "Repository",
    "RepositoryError",
    "RevisionError",
    "SyncError",
    "UnknownFieldError",
    "UnknownRevisionError",
    "UsageError",
    "VerificationError",
    "WriteError",
    "__version__",
    "capture",
    "export",
    "init",
    "log",
    "show",
    "start_run",
    "Run",
    "MetricPoint",
    "Observation",
]

_LAZY = {"Repository", "CommitProvenance", "capture", "export", "init", "log", "show", "start_run"}
_LAZY_RUNS = {"Run", "MetricPoint", "Observation"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    if name in _LAZY_RUNS:
        from . import runs

        return getattr(runs, name)
    if name == "lineage":  # the submodule, loaded on first use: gitprov.lineage.of(run)
        import importlib

        return importlib.import_module(".lineage", __name__)
    raise AttributeError(f"module 'gitprov' has no attribute {name!r}")
