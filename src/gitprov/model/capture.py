"""What a commit capture holds: the provenance of one commit."""

from __future__ import annotations

import msgspec

from .common import FORMAT_VERSION, SchemaPin

__all__ = ["CommitCapture", "Environment", "InputFile"]


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    """A fingerprint of the software environment; never a dump of variables."""

    python_implementation: str
    python_version: str
    platform: str
    machine: str
    #: sha256 over the sorted ``name==version`` of every installed distribution.
    distributions_digest: str
    distributions_count: int
    #: lock/requirement files in the commit: path -> git blob id.
    lockfiles: dict[str, str] = {}


class InputFile(msgspec.Struct, frozen=True, kw_only=True):
    """A declared data input (``.provenance.toml`` ``[inputs] paths``)."""

    path: str
    sha256: str
    size: int


class CommitCapture(msgspec.Struct, frozen=True, kw_only=True, tag="commit", tag_field="kind"):
    """The provenance of one commit, stored as a line of its ``refs/notes/prov`` note."""

    format_version: int = FORMAT_VERSION
    commit: str
    tree: str
    captured_at: str
    tool: str
    schema: SchemaPin
    environment: Environment
    inputs: list[InputFile] = []
    #: well-known CI identifiers (allow-listed variables only, values scrubbed).
    ci: dict[str, str] = {}
    #: how the capture was made: "hook", "cli", "backfill", "api".
    trigger: str = "cli"
