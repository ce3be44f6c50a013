"""The jail client's pure parts, on the host: how ``tool`` types ``key=value`` words and prints
results, and how ``tools`` names a server's tools and documents them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.jailside import tool, tools

SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "ratio": {"type": "number"},
        "fast": {"type": "boolean"},
        "name": {"type": "string"},
        "tags": {"type": "array"},
        "opts": {"type": "object"},
        "maybe": {"type": ["integer", "null"]},
        "either": {"type": ["integer", "string"]},
    },
    "required": ["n"],
}


def test_key_value_words_take_the_types_of_the_schema() -> None:
    words = [
        "n=3",
        "ratio=0.5",
        "fast=yes",
        "name=007",
        "tags=[1, 2]",
        "opts={}",
        "maybe=null",
        "either=12",
        "other=1",
    ]
    assert tool.arguments(words, schema=SCHEMA) == {
        "n": 3,
        "ratio": 0.5,
        "fast": True,
        "name": "007",
        "tags": [1, 2],
        "opts": {},
        "maybe": None,
        "either": "12",  # a string is allowed: the word is kept as it was written
        "other": "1",  # not in the schema: sent as written, the broker names it
    }


def test_raw_json_words_are_taken_as_json() -> None:
    assert tool.arguments(['q:={"a": [1]}', 's:="x=y"', "v=a=b"], schema=SCHEMA) == {
        "q": {"a": [1]},
        "s": "x=y",
        "v": "a=b",
    }


@pytest.mark.parametrize(
    ("word", "problem"),
    [
        ("n=three", "n: 'three' is not an integer"),
        ("n=1.5", "n: '1.5' is not an integer"),
        ("ratio=nan", "ratio: 'nan' is not a number"),
        ("fast=maybe", "fast: 'maybe' is not a boolean"),
        ("tags={}", "tags: '{}' is not an array"),
        ("q:={", "q: '{' is not JSON"),
        ("novalue", "'novalue' is not key=value"),
        ("=x", "'=x' is not key=value"),
    ],
)
def test_a_word_that_cannot_be_its_type_is_a_misuse_naming_it(word: str, problem: str) -> None:
    with pytest.raises(tool.Misuse, match=problem.replace("[", r"\[").replace("{", r"\{")):
        tool.arguments([word], schema=SCHEMA)


def test_results_print_as_text_as_is_and_as_indented_json_otherwise() -> None:
    assert tool.shown("plain") == "plain\n"
    assert tool.shown("ends\n") == "ends\n"
    assert tool.shown("") == ""
    assert tool.shown({"a": [1]}) == '{\n  "a": [\n    1\n  ]\n}\n'
    assert tool.shown(None) == "null\n"


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("search", "search"),
        ("read-file", "read_file"),
        ("get.thing", "get_thing"),
        ("2fa", "_2fa"),
        ("class", "class_"),
        ("__init__", None),
        ("::0", None),
        ("_private", "_private"),
        ("über", "_ber"),
    ],
)
def test_a_server_tools_attribute_name_is_an_identifier(name: str, alias: str | None) -> None:
    assert tools._alias(name) == alias


@given(st.text(min_size=1, max_size=20))
def test_every_alias_is_a_usable_attribute_name(name: str) -> None:
    alias = tools._alias(name)
    assert alias is None or (alias.isidentifier() and not alias.startswith("__"))


def _entry(name: str) -> dict[str, object]:
    return {"name": f"docs.{name}", "server": "docs", "signature": f"{name}()", "schema": {}}


def test_an_alias_two_tools_would_share_goes_to_the_one_named_so_or_to_neither() -> None:
    server = tools._Server("docs", [_entry("a-b"), _entry("a_b"), _entry("x-y"), _entry("x.y")])
    assert dir(server) == ["a_b"]
    assert server.a_b.__doc__.startswith("a_b()")
    assert server["x-y"].__doc__.startswith("x-y()")  # by exact name, always
    with pytest.raises(AttributeError, match="tools: a_b"):
        server.x_y  # noqa: B018


def test_positional_arguments_follow_the_signature_required_first() -> None:
    schema = {"properties": {"b": {}, "a": {}, "c": {}}, "required": ["c", "a"]}
    assert tools._order(schema) == ["c", "a", "b"]
    assert tools._bind("t", ["c", "a", "b"], (1, 2), {"b": 3}) == {"c": 1, "a": 2, "b": 3}
    with pytest.raises(TypeError, match="multiple values for 'c'"):
        tools._bind("t", ["c"], (1,), {"c": 2})
    with pytest.raises(TypeError, match="at most 1 positional"):
        tools._bind("t", ["c"], (1, 2), {})


def test_the_module_offers_nothing_but_list_tool_error_and_the_tools() -> None:
    public = [name for name in vars(tools) if not name.startswith("_")]
    assert sorted(public) == ["ToolError", "list"]
