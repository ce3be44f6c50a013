"""The glue between a running block's broker and the conversation it belongs to.

``AppToolLog`` records the broker's calls as events of the conversation, through the
runner's thread-safe, never-half-cancelled application calls; ``tools_for`` and
``block_broker`` are what the runner asks of the tool registry for a prompt and a block.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bot.loop import approval_steps
from bot.policy.approvals import ApprovalPolicy
from bot.ports_app import LoopApp
from bot.tools.broker import BlockBroker
from bot.tools.registry import ToolRegistry
from bot.tools.values import ToolOutcome, ToolSpec
from domain.state import BlockState, LoopState

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


async def tools_for(
    tools: ToolRegistry | None, state: LoopState, approvals: ApprovalPolicy
) -> list[ToolSpec]:
    """The tools this conversation's author may call (none when none are configured)."""
    if tools is None or not tools.names:
        return []
    return await tools.tools_for(approval_steps.conversation_caller(state, approvals))


def block_broker(
    tools: ToolRegistry | None,
    app: LoopApp,
    cid: UUID,
    block: BlockState,
    state: LoopState,
    approvals: ApprovalPolicy,
    *,
    approved: tuple[str, ...],
    call: AppCall,
) -> BlockBroker | None:
    """The broker of this block's run, when tools are configured."""
    if tools is None or not tools.names:
        return None
    caller = approval_steps.block_caller(state, block, approvals, approved)
    record = AppToolLog(app=app, conversation_id=cid, block_id=block.block_id, call=call)
    return BlockBroker(registry=tools, caller=caller, block_id=block.block_id, log=record)
