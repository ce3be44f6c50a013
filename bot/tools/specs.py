"""What each kind of executor needs: a tool's declaration, built (secrets resolved)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """The host user a command runs as."""

    uid: int
    gid: int
    name: str
    home: str
    switch: bool  # False: it is the bot's own user, nothing to change


@dataclass(frozen=True)
class CommandTool:
    """A built command tool: its argv template, and where, as whom and how long it runs."""

    argv: tuple[str, ...]
    cwd: str | None
    env: Mapping[str, str]  # the whole environment of the process
    identity: Identity
    timeout: float
    max_bytes: int


@dataclass(frozen=True)
class HttpTool:
    """A built http tool: method, URL and body templates, and resolved headers."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: object | None
    timeout: float
    max_bytes: int


@dataclass(frozen=True)
class McpTarget:
    """How to reach one MCP server: a command (stdio) or a URL (streamable HTTP)."""

    name: str
    command: tuple[str, ...] | None
    env: Mapping[str, str]
    url: str | None
    headers: Mapping[str, str]
    timeout: float
