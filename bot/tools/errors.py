"""Errors of the tool registry and its executors.

OpsloopError (bot.errors)
├── ConfigError (bot.errors)  a bad [tools] table, or a ${env:VAR} that is not set
└── ToolError                 one call could not give a result
    ├── ToolRefused           policy or validation said no: the tool did not run
    │   └── BadArguments      an unknown, missing or invalid parameter (names it)
    └── ToolFailed            the tool ran, or tried to, and failed
        ├── ToolTimedOut      it ran past its timeout_seconds and was killed
        └── ServerUnavailable an MCP server did not start, or died

The registry turns every ``ToolError`` into a ``ToolOutcome`` (a refusal or a failure is a
result for the model, never an exception for the broker); messages are one line and are
redacted before they leave the registry.
"""

from __future__ import annotations

from bot.errors import OpsloopError


class ToolError(OpsloopError):
    """One tool call could not give a result."""


class ToolRefused(ToolError):
    """Policy or validation refused the call; the tool did not run."""


class BadArguments(ToolRefused):
    """An argument is unknown, missing, or fails its declared type or constraint."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ToolFailed(ToolError):
    """The tool ran, or tried to, and failed."""


class ToolTimedOut(ToolFailed):
    """The tool ran past its ``timeout_seconds`` and was stopped."""


class ServerUnavailable(ToolFailed):
    """An MCP server could not be started, or died."""
