"""Deeply nested filters and query dicts are one ``QueryError``, not a RecursionError
(issue 16)."""

from __future__ import annotations

import pytest

from gitprov.errors import QueryError
from gitprov.index.filter import MAX_NESTING, parse_filter
from gitprov.index.query import compile_query


@pytest.mark.parametrize("text", [
    "(" * 5000 + "params.a = 1" + ")" * 5000,
    "not " * 5000 + "params.a = 1",
    "(not " * 3000 + "params.a = 1" + ")" * 3000,
])
def test_thousands_of_nested_levels_are_a_query_error_with_a_short_message(text: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_filter(text)
    assert f"at most {MAX_NESTING} nested" in str(err.value) and len(str(err.value)) < 400


def test_the_deepest_accepted_filter_compiles() -> None:
    query = parse_filter("(" * MAX_NESTING + "params.a = 1" + ")" * MAX_NESTING)
    assert compile_query(query)[1][-1] == 1
    query = parse_filter("not " * MAX_NESTING + "params.a = 1")
    compile_query(query)


def test_a_deeply_nested_query_dict_is_a_query_error() -> None:
    query: dict = {"params.a": 1}
    for _ in range(5000):
        query = {"$not": query}
    with pytest.raises(QueryError, match="nests"):
        compile_query(query)
    deep: dict = {"params.a": 1}
    for _ in range(3000):
        deep = {"$and": [deep, {"params.b": 2}]}
    with pytest.raises(QueryError, match="nests"):
        compile_query(deep)
