"""Pieces shared by every record: the format version and the schema pin."""

from __future__ import annotations

import msgspec

__all__ = ["FORMAT_VERSION", "SchemaPin"]

#: The record format this git-prov writes and the newest it reads.
FORMAT_VERSION = 1


class SchemaPin(msgspec.Struct, frozen=True, kw_only=True):
    """The lexicon a record was written against: ``sha256:`` of its manifest."""

    lexicon: str
    version: int
