"""The glue between a running block's broker and the conversation it belongs to.

``AppToolLog`` records the broker's calls as events of the conversation, through the
runner's thread-safe, never-half-cancelled application calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bot.ports_app import LoopApp
from bot.tools.values import ToolOutcome

AppCall = Callable[..., Awaitable[Any]]  # the runner's ``_call``: fn, *args, **kwargs


@dataclass(frozen=True)
class AppToolLog:
    """``bot.tools.broker.ToolLog`` on one conversation's event log."""

    app: LoopApp
    conversation_id: UUID
    block_id: str
    call: AppCall

    async def called(
        self, *, call_id: str, tool: str, arguments: dict[str, Any], redacted: tuple[str, ...]
    ) -> None:
        """``ToolCalled``, before the tool runs."""
        await self.call(
            self.app.record_tool_call,
            self.conversation_id,
            block_id=self.block_id,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            redacted=redacted,
        )

    async def returned(self, *, call_id: str, outcome: ToolOutcome) -> None:
        """``ToolReturned``."""
        await self.call(
            self.app.record_tool_result,
            self.conversation_id,
            call_id=call_id,
            ok=outcome.ok,
            result=outcome.result,
            result_bytes=outcome.result_bytes,
            truncated=outcome.truncated,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            redacted=outcome.redacted,
        )

    async def refused(self, *, call_id: str, reason: str) -> None:
        """``ToolRefused``."""
        await self.call(self.app.refuse_tool, self.conversation_id, call_id=call_id, reason=reason)

    async def unknown(self, *, call_id: str, detail: str) -> None:
        """``ToolOutcomeUnknown``."""
        await self.call(
            self.app.mark_tool_unknown, self.conversation_id, call_id=call_id, detail=detail
        )
