"""The ``Conversation`` aggregate's tool-call commands: a running block's calls, each
recorded before it runs and given exactly one outcome before its block's (a mixin of
``domain.conversation.Conversation``, kept apart so each module holds one concept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain import events as ev
from domain.errors import InvalidTransition

if TYPE_CHECKING:
    from domain.state import BlockStatus

UNSETTLED_CALL = "its block ended before the call returned; its effects are unknown"


class ToolCalls:
    """Commands about a block's tool calls (mixed into ``Conversation``)."""

    if TYPE_CHECKING:

        def _check_working(self) -> None: ...
        def _block_in(self, block_id: str, statuses: tuple[BlockStatus, ...]) -> dict[str, Any]: ...
        def _trigger(self, event_class: type[ev.ConversationEvent], **payload: Any) -> None: ...
        def tool_call(self, call_id: str) -> dict[str, Any] | None: ...
        def open_tool_calls(self, block_id: str) -> list[str]: ...

    def call_tool(
        self,
        *,
        block_id: str,
        call_id: str,
        tool: str,
        arguments: dict[str, Any],
        redacted: tuple[str, ...] = (),
    ) -> None:
        """Record that a running block asked for a tool call (before it runs)."""
        self._check_working()
        self._block_in(block_id, ("started",))
        if self.tool_call(call_id) is not None:
            raise InvalidTransition(f"tool call {call_id} was recorded already")
        self._trigger(
            ev.ToolCalled,
            block_id=block_id,
            call_id=call_id,
            tool=tool,
            arguments=dict(arguments),
            redacted=list(redacted),
        )

    def return_tool(
        self,
        *,
        call_id: str,
        ok: bool,
        result: Any,
        result_bytes: int,
        truncated: bool,
        duration_ms: int,
        error: str | None,
        redacted: tuple[str, ...] = (),
    ) -> None:
        """Record what a tool call gave."""
        self._check_working()
        self._call_in(call_id)
        self._trigger(
            ev.ToolReturned,
            call_id=call_id,
            ok=bool(ok),
            result=result,
            result_bytes=int(result_bytes),
            truncated=bool(truncated),
            duration_ms=int(duration_ms),
            error=error,
            redacted=list(redacted),
        )

    def refuse_tool(self, *, call_id: str, reason: str) -> None:
        """Record that a tool call was not run, and why."""
        self._check_working()
        call = self._call_in(call_id)
        self._trigger(
            ev.ToolRefused,
            block_id=call["block_id"],
            call_id=call_id,
            tool=call["tool"],
            reason=reason,
        )

    def mark_tool_unknown(self, *, call_id: str, detail: str) -> None:
        """Record that a tool call's outcome was lost."""
        self._check_working()
        self._call_in(call_id)
        self._trigger(ev.ToolOutcomeUnknown, call_id=call_id, detail=detail)

    def _call_in(self, call_id: str) -> dict[str, Any]:
        """A tool call that was recorded and has no outcome yet."""
        call = self.tool_call(call_id)
        if call is None or call["status"] != "called":
            state = "was never recorded" if call is None else f"is {call['status']}"
            raise InvalidTransition(f"tool call {call_id} {state}")
        return call

    def _settle_calls(self, block_id: str) -> None:
        """Before a block's outcome: each of its calls still open becomes unknown."""
        for call_id in self.open_tool_calls(block_id):
            self._trigger(ev.ToolOutcomeUnknown, call_id=call_id, detail=UNSETTLED_CALL)
