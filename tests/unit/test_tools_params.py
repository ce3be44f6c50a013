"""Parameter validation of command and http tools, and the signature the prompt shows."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.tools.config import ToolParam
from bot.tools.errors import BadArguments
from bot.tools.params import check_arguments, params_schema, signature

TYPES = ("string", "integer", "number", "boolean")
json_scalars = st.one_of(
    st.text(max_size=10),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def fits(kind: str, value: object) -> bool:
    """The rule, written out independently of the code under test."""
    if kind == "string":
        return type(value) is str and "\0" not in value
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float)
    return type(value) is bool


def refusal(params: dict[str, ToolParam], arguments: dict[str, Any]) -> BadArguments:
    with pytest.raises(BadArguments) as caught:
        check_arguments(params, arguments)
    return caught.value


@given(kind=st.sampled_from(TYPES), value=json_scalars)
def test_a_value_is_accepted_exactly_when_it_has_the_declared_type(kind: str, value: Any) -> None:
    params = {"x": ToolParam(type=kind)}  # type: ignore[arg-type]
    if fits(kind, value):
        assert check_arguments(params, {"x": value}) == {"x": value}
    else:
        assert refusal(params, {"x": value}).param == "x"


def test_a_boolean_is_not_an_integer_nor_a_number() -> None:
    for kind in ("integer", "number"):
        message = str(refusal({"n": ToolParam(type=kind)}, {"n": True}))  # type: ignore[arg-type]
        assert "parameter 'n' must be" in message and "(got boolean)" in message


def test_nan_and_infinity_are_not_numbers() -> None:
    for value in (math.nan, math.inf):
        assert "finite" in str(refusal({"n": ToolParam(type="number")}, {"n": value}))


@given(name=st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_an_unknown_parameter_is_refused_by_name(name: str) -> None:
    params = {"path": ToolParam(default="/")}
    if name == "path":
        return
    error = refusal(params, {name: "x"})
    assert error.param == name
    assert str(error) == f"unknown parameter {name!r} (parameters: path)"


def test_a_missing_required_parameter_is_refused_and_defaults_fill_the_rest() -> None:
    params = {"service": ToolParam(), "verbose": ToolParam(type="boolean", default=False)}
    assert str(refusal(params, {})) == "missing parameter 'service'"
    assert check_arguments(params, {"service": "api"}) == {"service": "api", "verbose": False}


@given(value=st.integers(-50, 50))
def test_min_and_max_bound_a_number(value: int) -> None:
    params = {"n": ToolParam(type="integer", min=-10, max=10)}
    if -10 <= value <= 10:
        assert check_arguments(params, {"n": value}) == {"n": value}
    else:
        assert "must be at" in str(refusal(params, {"n": value}))


@given(value=st.text(alphabet="ab/.\n-", max_size=6))
def test_a_pattern_must_match_the_whole_value(value: str) -> None:
    params = {"path": ToolParam(pattern="/[a-b/]*")}
    whole = value.startswith("/") and set(value) <= {"a", "b", "/"}
    if whole:
        assert check_arguments(params, {"path": value}) == {"path": value}
    else:
        assert "must match the pattern" in str(refusal(params, {"path": value}))


@given(value=st.one_of(st.sampled_from(["api", "db", "API", ""]), st.integers(0, 2)))
def test_an_enum_accepts_only_its_values(value: object) -> None:
    params = {"service": ToolParam(enum=["api", "db"])}
    if value in ("api", "db"):
        assert check_arguments(params, {"service": value}) == {"service": value}
    else:
        assert "parameter 'service'" in str(refusal(params, {"service": value}))


def test_an_integer_enum_does_not_take_true_for_one() -> None:
    params = {"level": ToolParam(type="integer", enum=[1, 2])}
    assert "must be an integer" in str(refusal(params, {"level": True}))


def test_a_nul_character_is_refused() -> None:
    assert "NUL" in str(refusal({"p": ToolParam()}, {"p": "a\0b"}))


def test_the_schema_and_the_signature_show_types_defaults_and_constraints() -> None:
    params = {
        "path": ToolParam(description="a mount point", default="/", pattern="/.*"),
        "service": ToolParam(enum=["api"]),
        "limit": ToolParam(type="integer", min=1, max=5, default=3),
    }
    schema = params_schema(params)
    assert schema["required"] == ["service"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["limit"] == {
        "type": "integer",
        "default": 3,
        "minimum": 1,
        "maximum": 5,
    }
    assert signature("disk", schema, returns="str") == (
        'disk(service: str, path: str = "/", limit: int = 3) -> str'
    )


def test_command_line_words_become_arguments_of_the_declared_types() -> None:
    from bot.tools.params import arguments_from_pairs

    schema = {
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "on": {"type": "boolean"},
            "path": {"type": "string"},
        }
    }
    words = ["n=3", "x=0.5", "on=yes", "path=/var/log", "raw:=[1, 2]", "free=a=b"]
    assert arguments_from_pairs(words, schema) == {
        "n": 3,
        "x": 0.5,
        "on": True,
        "path": "/var/log",
        "raw": [1, 2],
        "free": "a=b",
    }


@pytest.mark.parametrize("word", ["n", "=3", "n=three", "on=maybe", "raw:={"])
def test_a_word_that_cannot_be_read_as_its_type_names_it(word: str) -> None:
    from bot.tools.errors import BadArguments
    from bot.tools.params import arguments_from_pairs

    schema = {"properties": {"n": {"type": "integer"}, "on": {"type": "boolean"}}}
    with pytest.raises(BadArguments):
        arguments_from_pairs([word], schema)
