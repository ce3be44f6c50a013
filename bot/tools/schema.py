"""A small checker for the JSON-schema subset MCP servers use in their ``inputSchema``.

Checked: ``type`` (one or a list; integer excludes booleans, and a float with no fraction is
an integer as in JSON), ``required``, ``properties`` (recursively), unknown properties
(refused unless ``additionalProperties`` allows them, so a typo gets an answer instead of
being dropped by the server), ``enum``, ``const``, ``minimum``/``maximum`` and their
exclusive forms, ``minLength``/``maxLength``, ``pattern`` (Python ``re.search``, which agrees
with ECMA-262 on the common syntax), and ``items``/``minItems``/``maxItems`` of arrays.

Not checked (the server still validates, and its error comes back as a failed call):
``$ref``/``$defs``, ``anyOf``/``oneOf``/``allOf``/``not``, ``if``/``then``, ``format``,
``patternProperties``, ``uniqueItems``, ``dependentRequired`` and ``multipleOf``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.tools.errors import BadArguments
from bot.tools.params import json_type, same_value


def check_schema(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> None:
    """Raise ``BadArguments`` naming the first argument that ``schema`` refuses."""
    problem = _object(schema, arguments, "")
    if problem is not None:
        where, why = problem
        raise BadArguments(f"parameter {where!r} {why}" if where else why, param=where or None)


def _object(schema: Mapping[str, Any], value: Mapping[str, Any], at: str) -> tuple[str, str] | None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for name in schema.get("required") or []:
        if name not in value:
            return _join(at, name), "is missing"
    extra = schema.get("additionalProperties", properties == {})
    for name, item in value.items():
        sub = properties.get(name)
        if sub is None:
            if extra is False or (extra is not True and not isinstance(extra, Mapping)):
                known = ", ".join(sorted(properties)) or "none"
                return _join(at, name), f"is not a parameter (parameters: {known})"
            sub = extra if isinstance(extra, Mapping) else {}
        if isinstance(sub, Mapping) and (problem := _value(sub, item, _join(at, name))):
            return problem
    return None


def _value(schema: Mapping[str, Any], value: Any, at: str) -> tuple[str, str] | None:
    kinds = schema.get("type")
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(kind, value) for kind in allowed):
            return at, f"must be {' or '.join(map(str, allowed))} (got {json_type(value)})"
    if "enum" in schema and not any(same_value(value, c) for c in schema["enum"] or []):
        return at, "must be one of " + ", ".join(repr(c) for c in schema["enum"] or [])
    if "const" in schema and not same_value(value, schema["const"]):
        return at, f"must be {schema['const']!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(schema, value, at)
    if isinstance(value, str):
        return _string(schema, value, at)
    if isinstance(value, list):
        return _array(schema, value, at)
    if isinstance(value, Mapping):
        return _object(schema, value, at)
    return None


def _number(schema: Mapping[str, Any], value: float, at: str) -> tuple[str, str] | None:
    checks = (
        ("minimum", lambda bound: value >= bound, "at least"),
        ("maximum", lambda bound: value <= bound, "at most"),
        ("exclusiveMinimum", lambda bound: value > bound, "more than"),
        ("exclusiveMaximum", lambda bound: value < bound, "less than"),
    )
    for key, holds, words in checks:
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool) and not holds(bound):
            return at, f"must be {words} {bound}"
    return None


def _string(schema: Mapping[str, Any], value: str, at: str) -> tuple[str, str] | None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        return at, f"must be at least {low} characters"
    if isinstance(high, int) and len(value) > high:
        return at, f"must be at most {high} characters"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                return at, f"must match the pattern {pattern!r}"
        except re.error:
            return None  # a pattern Python cannot read: left to the server
    return None


def _array(schema: Mapping[str, Any], value: list[Any], at: str) -> tuple[str, str] | None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        return at, f"must have at least {low} items"
    if isinstance(high, int) and len(value) > high:
        return at, f"must have at most {high} items"
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            if problem := _value(items, item, f"{at}[{index}]"):
                return problem
    return None


def _is(kind: object, value: Any) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    return {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, Mapping),
        "null": value is None,
    }.get(str(kind), True)  # an unknown type name: not ours to refuse


def _join(at: str, name: str) -> str:
    return f"{at}.{name}" if at else name
