"""Pieces shared by every record: the format version and the schema pin."""

from __future__ import annotations

import msgspec

from .._version import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "SchemaPin"]


class SchemaPin(msgspec.Struct, frozen=True, kw_only=True):
    """The lexicon a record was written against: ``sha256:`` of its manifest."""

    lexicon: str
    version: int
