"""Versions: of the tool, and of the record format it writes (no imports: hot path)."""

__version__ = "0.1.0"

#: The record format this git-prov writes and the newest it reads.
FORMAT_VERSION = 1
