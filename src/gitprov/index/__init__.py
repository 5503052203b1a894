"""The SQLite query index over the ledger (derived, rebuildable) and run queries."""

from __future__ import annotations

from ..errors import QueryError, UnknownFieldError
from .filter import parse_filter, parse_order
from .query import compile_order, compile_query, select_run_ids
from .store import INDEX_FILE, RunIndex

__all__ = [
    "INDEX_FILE",
    "QueryError",
    "RunIndex",
    "UnknownFieldError",
    "compile_order",
    "compile_query",
    "parse_filter",
    "parse_order",
    "select_run_ids",
]
