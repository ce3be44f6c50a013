"""The JSON-schema subset checked on MCP tools' arguments before they reach the server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.tools.errors import BadArguments
from bot.tools.schema import check_schema

SEARCH = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "pattern": "^[a-z ]+$"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        "mode": {"enum": ["fast", "deep"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "filter": {
            "type": "object",
            "properties": {"since": {"type": ["string", "null"]}},
            "required": ["since"],
        },
    },
    "required": ["query"],
}


def refused(arguments: dict[str, Any], schema: dict[str, Any] = SEARCH) -> str:
    with pytest.raises(BadArguments) as caught:
        check_schema(schema, arguments)
    return str(caught.value)


def passes(schema: dict[str, Any], arguments: dict[str, Any]) -> bool:
    """Whether ``check_schema`` lets ``arguments`` through."""
    try:
        check_schema(schema, arguments)
    except BadArguments:
        return False
    return True


def test_arguments_that_fit_the_schema_pass() -> None:
    assert passes(SEARCH, {"query": "disk full", "limit": 5, "tags": ["a"], "mode": "fast"})
    assert passes(SEARCH, {"query": "x", "filter": {"since": None}})


def test_each_broken_rule_names_the_argument() -> None:
    assert refused({}) == "parameter 'query' is missing"
    assert refused({"query": ""}) == "parameter 'query' must be at least 1 characters"
    assert refused({"query": "DROP"}).startswith("parameter 'query' must match the pattern")
    assert refused({"query": "x", "limit": 0}) == "parameter 'limit' must be at least 1"
    assert refused({"query": "x", "limit": "5"}) == (
        "parameter 'limit' must be integer (got string)"
    )
    assert refused({"query": "x", "mode": "slow"}) == (
        "parameter 'mode' must be one of 'fast', 'deep'"
    )
    assert (
        refused({"query": "x", "tags": [1]}) == "parameter 'tags[0]' must be string (got integer)"
    )
    assert (
        refused({"query": "x", "tags": ["a"] * 4}) == "parameter 'tags' must have at most 3 items"
    )
    assert refused({"query": "x", "filter": {}}) == "parameter 'filter.since' is missing"
    assert refused({"query": "x", "lmit": 5}).startswith("parameter 'lmit' is not a parameter")


def test_additional_properties_are_allowed_when_the_schema_says_so() -> None:
    assert passes({**SEARCH, "additionalProperties": True}, {"query": "x", "other": 1})
    assert passes({"type": "object"}, {"anything": [1, 2]})


@given(value=st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()))
def test_integer_means_a_whole_number_never_a_boolean(value: object) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    whole = (type(value) is int) or (type(value) is float and float(value).is_integer())
    if whole:
        check_schema(schema, {"n": value})
    else:
        assert refused({"n": value}, schema).startswith("parameter 'n' must be integer")


def test_a_keyword_outside_the_subset_is_left_to_the_server() -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"anyOf": [{"type": "string"}], "format": "email"}},
    }
    assert passes(schema, {"x": 42})
