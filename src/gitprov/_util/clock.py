"""Timestamps as every record stores them (no heavy imports: used on hook paths)."""

from __future__ import annotations

import time

__all__ = ["utc_timestamp"]


def utc_timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC with microseconds: ``2026-11-22T04:56:35.123456Z``."""
    now = time.time() if now is None else now
    whole = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((now - whole) * 1e6):06d}Z"
