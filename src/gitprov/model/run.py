"""The run record and its parts (stored in the ledger by run tracking)."""

from __future__ import annotations

from typing import Any

import msgspec

from .capture import Environment
from .common import FORMAT_VERSION, SchemaPin

__all__ = [
    "ArtifactRef",
    "CodeVersion",
    "DatasetVersion",
    "Lineage",
    "MetricSummary",
    "RunRecord",
    "RunState",
    "RUN_STATUSES",
]

#: ``running`` until ended; ``crashed`` when a dead process's journal was folded in.
RUN_STATUSES = ("running", "finished", "failed", "killed", "crashed")


class CodeVersion(msgspec.Struct, frozen=True, kw_only=True):
    """The exact code a run executed."""

    commit: str | None
    is_dirty: bool = False
    #: blob id of ``git diff HEAD`` when dirty, so the exact code can be rebuilt.
    patch: str | None = None
    exec_path: str | None = None
    #: remote URL with any credentials removed.
    repo_url: str | None = None


class DatasetVersion(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    digest: str
    path: str | None = None
    size: int | None = None


class ArtifactRef(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    sha256: str
    size: int
    media_type: str = "application/octet-stream"
    #: "tree" (blob in the run's tree), "cache" (local CAS) or an external URI.
    location: str = "tree"


class Lineage(msgspec.Struct, frozen=True, kw_only=True):
    """What a run consumed and produced."""

    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}


class RunRecord(msgspec.Struct, frozen=True, kw_only=True, tag="run-record", tag_field="kind"):
    """The immutable header of a run; its git blob id is the run id."""

    format_version: int = FORMAT_VERSION
    created: str
    #: random, so two runs started in the same microsecond still differ.
    nonce: str
    name: str = ""
    experiment: str = ""
    code: CodeVersion
    #: parameters given when the run started (later ones live in ``state``).
    params: dict[str, Any] = {}
    environment: Environment | None = None
    #: the command line, scrubbed of secrets (``prov run``).
    command: list[str] = []
    #: the run this one was cloned from, or its parent.
    parent: str | None = None
    schema: SchemaPin
    #: how the run was started, which says whether ``prov rerun`` can execute it again:
    #: "command" (``prov run``), "script" (``start_run`` in a script), "interactive",
    #: "notebook"; "" in records older than ``prov rerun``.
    launcher: str = ""
    #: the working directory of the command, relative to the work tree ("." its root).
    cwd: str | None = None
    #: the sorted ``name==version`` of every installed distribution, one a line: the text
    #: whose sha256 is the environment's ``distributions_digest``, so a rerun can name each
    #: package that differs (one string, not a list: records are scanned element by element
    #: when encoded, and a run's start and end encode its record).
    packages: str | None = None
    #: the run this one re-executes (``prov rerun``).
    reproduces: str | None = None
    #: ``Name <email>``: the git identity that started the run (the committer git would
    #: use); None in records older than it, or where git has no identity.
    recorded_by: str | None = None


class MetricSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The latest point of a metric series."""

    value: float
    step: int
    timestamp: int


class RunState(msgspec.Struct, kw_only=True, tag="run-state", tag_field="kind"):
    """The mutable part of a run, rewritten at each flush by its writer."""

    format_version: int = FORMAT_VERSION
    #: logical clock of this state; the highest (then ``writer``) wins a merge.
    lamport: int = 0
    writer: str = ""
    name: str = ""
    experiment: str = ""
    status: str = "running"
    updated: str = ""
    ended: str | None = None
    exit_code: int | None = None
    deleted: bool = False
    tags: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    params: dict[str, Any] = {}
    metrics: dict[str, MetricSummary] = {}
    #: observation key -> number of epochs logged.
    observations: dict[str, int] = {}
    datasets: dict[str, DatasetVersion] = {}
    artifacts: dict[str, ArtifactRef] = {}
    io_schema: dict[str, Any] | None = None
    lineage: Lineage = Lineage()
