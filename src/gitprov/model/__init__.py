"""The record model: msgspec Structs that know nothing of git, click or trackers.

Every stored record carries ``format_version``; note lines are tagged by ``kind``.
"""

from .capture import CommitCapture, Environment, InputFile
from .common import FORMAT_VERSION, SchemaPin
from .links import NoteLine, RewriteLink, RunLink
from .run import ArtifactRef, CodeVersion, DatasetVersion, Lineage, RunRecord

__all__ = [
    "FORMAT_VERSION",
    "ArtifactRef",
    "CodeVersion",
    "CommitCapture",
    "DatasetVersion",
    "Environment",
    "InputFile",
    "Lineage",
    "NoteLine",
    "RewriteLink",
    "RunLink",
    "RunRecord",
    "SchemaPin",
]
