"""The SQLite query index over the ledger (derived, rebuildable) and run queries.

Its modules load on first use: importing ``gitprov.index.lineage_query`` (what
``gitprov.lineage`` re-exports) does not load sqlite3.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..errors import QueryError, UnknownFieldError
    from .filter import parse_filter, parse_order
    from .query import compile_order, compile_query, select_run_ids
    from .store import INDEX_FILE, RunIndex, index_of

__all__ = [
    "INDEX_FILE",
    "QueryError",
    "RunIndex",
    "UnknownFieldError",
    "compile_order",
    "compile_query",
    "index_of",
    "parse_filter",
    "parse_order",
    "select_run_ids",
]

_LAZY = {"parse_filter": "filter", "parse_order": "filter", "QueryError": "..errors", "UnknownFieldError": "..errors",
         "compile_order": "query", "compile_query": "query", "select_run_ids": "query", "INDEX_FILE": "store",
         "RunIndex": "store", "index_of": "store"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        where = _LAZY[name]
        return getattr(importlib.import_module(where if where.startswith("..") else f".{where}", __name__), name)
    raise AttributeError(f"module 'gitprov.index' has no attribute {name!r}")
