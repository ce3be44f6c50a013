"""A hand-written stand-in for the bot's tool broker: the ``ToolRelay`` port, answering the
broker's two ops (``list`` and ``call``) for a few tools, and recording what it was asked."""

from __future__ import annotations

import asyncio
from typing import Any

TOOLS: list[dict[str, Any]] = [
    {
        "name": "disk",
        "kind": "command",
        "description": "Disk usage of one mount point",
        "signature": 'disk(path: str = "/") -> str',
        "schema": {
            "type": "object",
            "properties": {"path": {"type": "string", "default": "/", "description": "a mount"}},
            "required": [],
            "additionalProperties": False,
        },
        "server": None,
        "server_description": "",
    },
    {
        "name": "count",
        "kind": "command",
        "description": "Echoes its typed arguments",
        "signature": "count(n: int, ratio: float = 1.0, fast: bool = False) -> dict",
        "schema": {
            "type": "object",
            "properties": {
                "n": {"type": "integer"},
                "ratio": {"type": "number", "default": 1.0},
                "fast": {"type": "boolean", "default": False},
            },
            "required": ["n"],
            "additionalProperties": False,
        },
        "server": None,
        "server_description": "",
    },
    *(
        {
            "name": f"docs.{tool}",
            "kind": "mcp",
            "description": f"The {tool} tool of the docs server",
            "signature": f"docs.{tool}(query: str) -> str",
            "schema": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
            "server": "docs",
            "server_description": "Runbooks and how-tos",
        }
        for tool in ("search", "read-file", "class", "2fa")
    ),
    *(
        {
            "name": tool,
            "kind": "command",
            "description": f"the fake broker's {tool}",
            "signature": f"{tool}() -> str",
            "schema": {"type": "object", "properties": {}, "required": []},
            "server": None,
            "server_description": "",
        }
        for tool in ("refused", "failing", "big", "slow", "boom", "noop")
    ),
]


class FakeBroker:
    """Answers ``list`` and ``call``. Tools: ``disk`` (text), ``count`` and ``docs.*`` (echo
    their arguments as JSON), ``refused`` (refused), ``failing`` (failed), ``big`` (a
    truncated result), ``slow`` (waits ``delay`` seconds), ``boom`` (the broker raises)."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.frames: list[dict[str, Any]] = []
        self.active = 0
        self.peak = 0  # most requests being answered at once
        self.cancelled = 0  # calls abandoned when their run ended

    async def __call__(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.frames.append(frame)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self._answer(frame)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    async def _answer(self, frame: dict[str, Any]) -> dict[str, Any]:
        if frame.get("op") == "list":
            return {"ok": True, "tools": TOOLS}
        if frame.get("op") != "call":
            return {"ok": False, "error": f"unknown op {frame.get('op')!r}", "refused": True}
        tool, arguments = frame.get("tool"), frame.get("arguments")
        if tool == "disk":
            return _ok(f"disk of {arguments.get('path', '/')}")
        if tool == "count" or str(tool).startswith("docs."):
            return _ok({"tool": tool, "arguments": arguments})
        if tool == "refused":
            reason = "refused is not allowed for user slack:U1"
            return {"ok": False, "error": reason, "refused": True}
        if tool == "failing":
            return {"ok": False, "error": "exit status 3: oops\nsecond line", "refused": False}
        if tool == "big":
            return {"ok": True, "result": "x" * 100, "truncated": True}
        if tool == "slow":
            await asyncio.sleep(self.delay)
            return {"ok": True, "result": "slept", "truncated": False}
        if tool == "boom":
            raise RuntimeError("the broker broke")
        if tool == "noop":
            return {"ok": True, "result": None, "truncated": False}
        return {"ok": False, "error": f"unknown tool {tool!r}", "refused": True}


def _ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result, "truncated": False}
