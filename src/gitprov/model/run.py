"""The run record and its parts (stored in the ledger by run tracking)."""

from __future__ import annotations

from typing import Any

import msgspec

from .capture import Environment
from .common import FORMAT_VERSION, SchemaPin

__all__ = ["ArtifactRef", "CodeVersion", "DatasetVersion", "Lineage", "RunRecord"]


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
    nonce: str
    name: str = ""
    experiment: str = ""
    code: CodeVersion
    params: dict[str, Any] = {}
    environment: Environment | None = None
    datasets: list[DatasetVersion] = []
    schema: SchemaPin
