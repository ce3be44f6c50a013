"""Parameters of command and http tools: validation, JSON schema, and the prompt's signature.

Pure functions. A refusal is a ``BadArguments`` that names the parameter; the registry turns
it into an outcome the model sees.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from bot.tools.errors import BadArguments

Scalar = str | int | float | bool


class ToolParam(Protocol):
    """What checking reads of a declared parameter (``bot.tools.config.ToolParam`` is one;
    config validates its defaults with ``check_value``, so this module cannot import it)."""

    @property
    def type(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def default(self) -> Scalar | None: ...
    @property
    def enum(self) -> Sequence[Scalar] | None: ...
    @property
    def pattern(self) -> str | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
JSON_PY_TYPES = {**PY_TYPES, "array": "list", "object": "dict", "null": "None"}


def check_value(param: ToolParam, value: object) -> str | None:
    """Why ``value`` does not fit ``param``, or None when it does."""
    if (problem := _type_problem(param.type, value)) is not None:
        return problem
    if param.enum is not None and not any(same_value(value, choice) for choice in param.enum):
        return "must be one of " + ", ".join(repr(choice) for choice in param.enum)
    if isinstance(value, str):
        if "\0" in value:
            return "must not contain a NUL character"
        if param.pattern is not None and re.fullmatch(param.pattern, value) is None:
            return f"must match the pattern {param.pattern!r}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if param.min is not None and value < param.min:
            return f"must be at least {param.min:g}"
        if param.max is not None and value > param.max:
            return f"must be at most {param.max:g}"
    return None


def check_arguments(
    params: Mapping[str, ToolParam], arguments: Mapping[str, object]
) -> dict[str, object]:
    """The arguments with defaults applied; ``BadArguments`` naming the first bad parameter."""
    for name in arguments:
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            raise BadArguments(f"unknown parameter {name!r} (parameters: {known})", param=name)
    checked: dict[str, object] = {}
    for name, param in params.items():
        if name not in arguments:
            if param.default is None:
                raise BadArguments(f"missing parameter {name!r}", param=name)
            checked[name] = param.default
            continue
        if (problem := check_value(param, arguments[name])) is not None:
            raise BadArguments(f"parameter {name!r} {problem}", param=name)
        checked[name] = arguments[name]
    return checked


def params_schema(params: Mapping[str, ToolParam]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments."""
    properties: dict[str, Any] = {}
    for name, param in params.items():
        prop: dict[str, Any] = {"type": param.type}
        if param.description:
            prop["description"] = param.description
        if param.default is not None:
            prop["default"] = param.default
        if param.enum is not None:
            prop["enum"] = list(param.enum)
        if param.pattern is not None:
            prop["pattern"] = f"^(?:{param.pattern})$"
        if param.min is not None:
            prop["minimum"] = param.min
        if param.max is not None:
            prop["maximum"] = param.max
        properties[name] = prop
    required = [name for name, param in params.items() if param.default is None]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def signature(name: str, schema: Mapping[str, Any], *, returns: str = "str | dict | list") -> str:
    """One line for the prompt, required parameters first: ``disk(path: str = "/") -> str``."""
    properties = schema.get("properties") or {}
    required = [p for p in schema.get("required") or [] if p in properties]
    optional = [p for p in properties if p not in required]
    parts = []
    for prop in [*required, *optional]:
        kind = properties[prop].get("type") if isinstance(properties[prop], dict) else None
        annotation = _annotation(kind)
        if prop in required:
            parts.append(f"{prop}: {annotation}")
        else:
            default = (
                properties[prop].get("default") if isinstance(properties[prop], dict) else None
            )
            parts.append(f"{prop}: {annotation} = {_literal(default)}")
    return f"{name}({', '.join(parts)}) -> {returns}"


def _annotation(kind: object) -> str:
    if isinstance(kind, list):
        return " | ".join(JSON_PY_TYPES.get(str(k), "object") for k in kind)
    return JSON_PY_TYPES.get(str(kind), "object")


def _literal(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _type_problem(kind: str, value: object) -> str | None:
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(float(value)):  # type: ignore[arg-type]
            return "must be a finite number"
    else:
        ok = isinstance(value, bool)
    return None if ok else f"must be {_a(kind)} (got {json_type(value)})"


def same_value(value: object, choice: object) -> bool:
    """Equality that keeps True apart from 1, as JSON does."""
    return isinstance(value, bool) == isinstance(choice, bool) and value == choice


def _a(kind: str) -> str:
    return {"integer": "an integer", "string": "a string", "number": "a number"}.get(
        kind, "a boolean"
    )


def json_type(value: object) -> str:
    """The JSON type name of a Python value (for messages)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def arguments_from_pairs(pairs: Sequence[str], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``key=value`` words (as ``opsloop tools call`` takes them) as arguments of the types
    ``schema`` declares; ``key:=JSON`` passes a raw JSON value. ``BadArguments`` names a word
    that is neither, or a value its declared type cannot read."""
    properties = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, raw, value = pair.partition(":=")
        if not raw:
            key, equals, value = pair.partition("=")
            if not equals or not key:
                raise BadArguments(f"{pair!r} is not key=value")
            kind = properties.get(key, {}).get("type") if isinstance(properties, Mapping) else None
            arguments[key] = _from_word(key, value, kind)
            continue
        try:
            arguments[key] = json.loads(value)
        except ValueError:
            raise BadArguments(f"{key}: {value!r} is not JSON") from None
    return arguments


def _from_word(key: str, value: str, kind: object) -> Any:
    """A command-line word read as the declared JSON type (a string when none is declared)."""
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        raise BadArguments(f"{key} must be {_a(str(kind))}, not {value!r}") from None
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise BadArguments(f"{key} must be true or false, not {value!r}")
    return value
