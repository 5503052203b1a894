"""The record model: msgspec Structs that know nothing of git, click or trackers.

Every stored record carries ``format_version``; note lines are tagged by ``kind``.
"""

from .capture import CommitCapture, Environment, InputFile
from .common import FORMAT_VERSION, SchemaPin
from .links import CommitRuns, NoteLine, RewriteLink, RunLink
from .run import (
    RUN_STATUSES,
    ArtifactRef,
    CodeVersion,
    DatasetVersion,
    Lineage,
    MetricSummary,
    RunRecord,
    RunState,
)

__all__ = [
    "FORMAT_VERSION",
    "ArtifactRef",
    "CodeVersion",
    "CommitCapture",
    "CommitRuns",
    "DatasetVersion",
    "Environment",
    "InputFile",
    "Lineage",
    "NoteLine",
    "RewriteLink",
    "RunLink",
    "MetricSummary",
    "RUN_STATUSES",
    "RunRecord",
    "RunState",
    "SchemaPin",
]
