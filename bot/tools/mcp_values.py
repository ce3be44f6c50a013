"""What MCP servers say, as opsloop's values: their tools, and the results of calls.

Pure functions over the SDK's types. A server's texts (descriptions, instructions, results)
are untrusted: they are capped and returned as data, never interpreted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from bot.tools.values import RawResult, Result

_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
TEXT_CHARS = 2000  # of a server's own descriptions and instructions kept for the prompt
ERROR_CHARS = 600  # of an isError result quoted in the failure


@dataclass(frozen=True)
class ServerTool:
    """One tool a server offers, as the server describes it."""

    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool | None  # the server's readOnlyHint: a hint, not a promise


@dataclass(frozen=True)
class ServerInfo:
    """What a server said at ``initialize`` and ``tools/list``."""

    title: str  # its name and version
    instructions: str
    tools: tuple[ServerTool, ...]


def server_info(init: types.InitializeResult, tools: list[types.Tool]) -> ServerInfo:
    server = init.server_info
    title = " ".join(p for p in (server.title or server.name, server.version) if p)
    described = [
        ServerTool(
            name=tool.name,
            description=_cap(tool.description or tool.title or ""),
            schema=dict(tool.input_schema or {"type": "object"}),
            read_only=tool.annotations.read_only_hint if tool.annotations else None,
        )
        for tool in tools
        if _TOOL_NAME.fullmatch(tool.name)  # what the spec allows; anything else is skipped
    ]
    return ServerInfo(
        title=title,
        instructions=_cap(init.instructions or server.description or ""),
        tools=tuple(described),
    )


def outcome(result: types.CallToolResult, max_bytes: int) -> RawResult:
    """A call's result: text content joined, or the structured content; capped at ``max_bytes``."""
    texts = [_content_text(block) for block in result.content]
    text = "\n".join(t for t in texts if t)
    if result.is_error:
        return RawResult(ok=False, result=None, result_bytes=0, error=line(text)[:ERROR_CHARS])
    value: Result = text
    raw = text.encode("utf-8")
    if result.structured_content is not None:
        raw = json.dumps(result.structured_content, ensure_ascii=False).encode("utf-8")
        value = result.structured_content
    if len(raw) > max_bytes:
        kept = raw[:max_bytes].decode("utf-8", errors="ignore")
        return RawResult(ok=True, result=kept, result_bytes=max_bytes, truncated=True)
    return RawResult(ok=True, result=value, result_bytes=len(raw))


def _content_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        return f"[{block.type}: {block.mime_type}]"
    if isinstance(block, types.ResourceLink):
        return f"[resource: {block.uri}]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        return getattr(resource, "text", None) or f"[resource: {resource.uri}]"
    return f"[{getattr(block, 'type', 'content')}]"


def _cap(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def line(text: str) -> str:
    """``text`` on one line, runs of whitespace as one space."""
    return " ".join(text.split())
