"""Note lines that link a commit to runs and to the commits it replaced."""

from __future__ import annotations

import msgspec

from .capture import CommitCapture
from .common import FORMAT_VERSION, SchemaPin

__all__ = ["CommitRuns", "NoteLine", "RewriteLink", "RunLink"]


class CommitRuns(msgspec.Struct, frozen=True, kw_only=True, tag="runs", tag_field="kind"):
    """Where the runs made against ``commit`` are listed under ``ref``, for plain git:
    ``path`` is the ledger directory of them (formats 2 and 3: one entry per run, named by
    its id) or the pathspec of their run blobs in the log (format 4: ``*^<commit>``).
    Written once, with the first run of the commit, so a run never rewrites the note."""

    format_version: int = FORMAT_VERSION
    commit: str
    ref: str
    path: str
    schema: SchemaPin


class RunLink(msgspec.Struct, frozen=True, kw_only=True, tag="run", tag_field="kind"):
    """A run made against this commit; the run itself lives in the ledger. Format 1
    wrote one such note line per run; format 2 lists runs in the ledger
    (``CommitRuns``), and ``prov show`` reports them in this shape."""

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


NoteLine = CommitCapture | CommitRuns | RunLink | RewriteLink
