"""Note lines that link a commit to runs and to the commits it replaced."""

from __future__ import annotations

import msgspec

from .capture import CommitCapture
from .common import FORMAT_VERSION, SchemaPin

__all__ = ["NoteLine", "RewriteLink", "RunLink"]


class RunLink(msgspec.Struct, frozen=True, kw_only=True, tag="run", tag_field="kind"):
    """A run made against this commit; the run itself lives in the ledger."""

    format_version: int = FORMAT_VERSION
    run: str
    name: str = ""
    experiment: str = ""
    created: str
    schema: SchemaPin


class RewriteLink(msgspec.Struct, frozen=True, kw_only=True, tag="rewrite", tag_field="kind"):
    """This commit replaced ``old`` (amend, rebase, cherry-pick, squash)."""

    format_version: int = FORMAT_VERSION
    old: str
    new: str
    how: str
    recorded_at: str
    schema: SchemaPin


NoteLine = CommitCapture | RunLink | RewriteLink
