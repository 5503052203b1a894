"""Adapters that plug a git-prov repository into other tools' interfaces."""

from __future__ import annotations

__all__: list[str] = []
