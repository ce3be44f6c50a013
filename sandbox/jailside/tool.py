#!/usr/bin/python3 -IS
"""tool: opsloop's tools from a shell (mounted read-only at /opsloop/bin/tool, on PATH).

    tool NAME key=value …        call a tool; key=value is converted to the parameter's type
    tool SERVER.TOOL key:=JSON   a tool of an MCP server; key:=JSON passes a raw JSON value
    tool --list [--json]         what this conversation may call
    tool NAME --help             a tool's signature, description and parameters

The result is printed as is when it is text, pretty-printed when it is JSON. Exit status 3
(the reason on stderr) when the call is refused or fails, 2 for a usage mistake.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

USAGE = "usage: tool NAME key=value … | tool NAME key:=JSON … | tool --list [--json]"
FAILED = 3
MISUSED = 2
TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


class Misuse(Exception):
    """A command line that cannot be turned into a call (exit status 2)."""


def convert(value: str, *, schema: object) -> Any:
    """``value`` as the JSON type ``schema`` (a parameter's schema) asks for."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if not kinds or "string" in kinds:
        return value
    for kind in kinds:
        found = _as(kind, value)
        if found is not _NOTHING:
            return found
    raise Misuse(f"{value!r} is not {' or '.join(_A.get(str(k), str(k)) for k in kinds)}")


_NOTHING = object()
_A = {"integer": "an integer", "number": "a number", "boolean": "a boolean", "array": "an array"}


def _as(kind: str, value: str) -> Any:
    text = value.strip()
    if kind in ("integer", "number"):
        try:
            return int(text)
        except ValueError:
            pass
        if kind == "number":
            try:
                number = float(text)
            except ValueError:
                return _NOTHING
            return number if number == number and abs(number) != float("inf") else _NOTHING
        return _NOTHING
    if kind == "boolean":
        lowered = text.lower()
        return True if lowered in TRUE else False if lowered in FALSE else _NOTHING
    if kind == "null":
        return None if text == "null" else _NOTHING
    if kind in ("array", "object"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return _NOTHING
        return parsed if isinstance(parsed, list if kind == "array" else dict) else _NOTHING
    return _NOTHING


def arguments(words: list[str], *, schema: object) -> dict[str, Any]:
    """``key=value`` and ``key:=JSON`` words as a tool's arguments, typed by its ``schema``."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    found: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key or key == ":":
            raise Misuse(f"{word!r} is not key=value (or key:=JSON)")
        if key.endswith(":"):
            try:
                found[key[:-1]] = json.loads(value)
            except ValueError:
                raise Misuse(f"{key[:-1]}: {value!r} is not JSON") from None
            continue
        try:  # a key the schema lacks stays a string: the broker names it in its refusal
            found[key] = convert(value, schema=properties.get(key))
        except Misuse as exc:
            raise Misuse(f"{key}: {exc}") from None
    return found


def shown(result: Any) -> str:
    """A result as printed: text as it is, anything else as indented JSON."""
    if isinstance(result, str):
        return result if not result or result.endswith("\n") else result + "\n"
    return json.dumps(result, indent=2, ensure_ascii=False) + "\n"


def _entry(tools: Any, name: str) -> dict[str, Any] | None:
    return next((e for e in tools.list() if isinstance(e, dict) and e.get("name") == name), None)


def _listing(entries: list[dict[str, Any]]) -> str:
    lines = []
    for entry in entries:
        lines.append(str(entry.get("signature") or entry.get("name")))
        description = str(entry.get("description") or "").strip().splitlines()
        if description:
            lines.append(f"    {description[0]}")
    return "\n".join(lines) + "\n" if lines else "(no tools in this conversation)\n"


def main(argv: list[str]) -> int:
    """Run the command line ``argv`` (without the program name); the exit status."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import tools  # the module next to bin/: /opsloop/tools.py

    name = argv[0] if argv else ""
    try:
        if not argv or argv[0] in ("-h", "--help"):
            print(__doc__.split("\n\n")[1] if __doc__ else USAGE)
            return 0 if argv else MISUSED
        if argv[0] == "--list":
            entries = tools.list()
            as_json = argv[1:] == ["--json"]
            sys.stdout.write(json.dumps(entries, indent=2) + "\n" if as_json else _listing(entries))
            return 0
        words = argv[1:]
        if words in (["--help"], ["-h"]):
            entry = _entry(tools, name)
            if entry is None:
                raise tools.ToolError(f"no tool {name!r} in this conversation (tool --list)")
            sys.stdout.write(tools._doc(entry) + "\n")
            return 0
        plain = any("=" in w and not w.partition("=")[0].endswith(":") for w in words)
        entry = _entry(tools, name) if plain else None  # types only matter for key=value
        args = arguments(words, schema=(entry or {}).get("schema"))
        answer = tools._channel.ask({"op": "call", "tool": name, "arguments": args})
    except Misuse as exc:
        print(f"tool: {exc}\n{USAGE}", file=sys.stderr)
        return MISUSED
    except tools.ToolError as exc:
        print(f"tool: {name}: {exc}", file=sys.stderr)
        return FAILED
    if not answer.get("ok"):
        print(f"tool: {name}: {tools._reason(answer)}", file=sys.stderr)
        return FAILED
    sys.stdout.write(shown(answer.get("result")))
    if answer.get("truncated"):
        print(f"tool: {name}: the result was cut at its size cap", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
