"""Values the registry takes and gives: who calls, what may be called, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Result = str | dict[str, Any] | list[Any] | None


@dataclass(frozen=True)
class Caller:
    """Who is calling: the surface, user and channel of the block's conversation."""

    platform: str  # "slack", "discord", "terminal", or "host" for `opsloop tools call`
    user: str  # the platform's user id
    channel: str = ""  # the platform's channel id ("" outside a chat)
    roles: frozenset[str] = frozenset()  # the user's roles (issue 12's [roles])
    approved: frozenset[str] = frozenset()  # tools this block was approved to call (issue 12)
    allowed: frozenset[str] | None = None  # a block: the tools its code names; None: any
    operator: bool = False  # `opsloop tools call` on the host: allowlists are for chat callers


@dataclass(frozen=True)
class ToolSpec:
    """One tool as a caller sees it: what the prompt lists and ``tools.list()`` returns."""

    name: str  # "disk", or "NAME.TOOL" for a tool of an MCP server
    kind: str  # command, http or mcp
    description: str  # the operator's, or the MCP server's own
    schema: dict[str, Any]  # JSON schema of the arguments (an object)
    signature: str  # one line for the prompt: disk(path: str = "/") -> str
    timeout_seconds: float
    max_result_bytes: int
    approve: str = "never"  # "always": only blocks approved for it may call it (issue 12)
    server: str | None = None  # MCP: the [tools.NAME] that serves it
    server_description: str = ""  # MCP: the server's instructions from `initialize`
    read_only: bool | None = None  # MCP: the server's readOnlyHint (a hint, for approvals)


@dataclass(frozen=True)
class ToolOutcome:
    """What one call gave: a result, a failure, or a refusal (the tool did not run)."""

    ok: bool
    result: Result = None  # text, or a dict/list for JSON; redacted
    result_bytes: int = 0  # bytes the tool produced that were kept (at most max_result_bytes)
    truncated: bool = False  # the tool produced more than max_result_bytes
    duration_ms: int = 0
    error: str | None = None  # one line, redacted, when the call failed or was refused
    refused: str | None = None  # the reason, when policy or validation refused the call
    redacted: tuple[str, ...] = ()  # names of the secrets and shapes taken out of it


@dataclass(frozen=True)
class RawResult:
    """What an executor produced, before redaction (the registry makes it a ToolOutcome)."""

    ok: bool
    result: Result
    result_bytes: int
    truncated: bool = False
    error: str | None = None


@dataclass(frozen=True)
class ToolCheck:
    """The answer of ``ToolRegistry.check`` for one configured tool."""

    name: str
    kind: str
    ok: bool
    detail: str  # what was checked, or what is wrong (one line)
    tools: tuple[str, ...] = field(default=())  # MCP: the tools the server offers
