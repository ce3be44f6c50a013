"""The broker: a running block's only way out of its jail, bound to one block and one caller.

The sandbox hands every frame that arrives on the block's socket to ``BlockBroker.relay``.
The broker was made for that one run, so a block can never claim another conversation, block
or user: who is calling is not in the frame, it is the broker's own. Each call is recorded
before it runs (``ToolCalled``, arguments redacted), then given exactly one outcome
(``ToolReturned``, ``ToolRefused``, or ``ToolOutcomeUnknown``), all while the block is
still running; ``settle`` runs before the block's own outcome is recorded.

Ops (the jail client in ``sandbox/jailside`` speaks them):

- ``{"op": "list"}`` -> ``{"ok": true, "tools": [spec, ...]}``: what this caller may call;
- ``{"op": "call", "tool": NAME, "arguments": {...}}`` -> ``{"ok": true, "result": ...,
  "truncated": bool}`` or ``{"ok": false, "error": "...", "refused": bool}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.tools.registry import ToolRegistry
from bot.tools.values import Caller, ToolOutcome, ToolSpec

log = logging.getLogger(__name__)
STOPPED_CALL = (
    "the block ended while the tool ran; the call was stopped and its effects are unknown"
)
MAX_NAME = 200  # a tool name longer than this is not one of ours: it is cut in the record


class ToolLog(Protocol):
    """Where a block's calls are recorded (the conversation's event log)."""

    async def called(
        self, *, call_id: str, tool: str, arguments: dict[str, Any], redacted: tuple[str, ...]
    ) -> None:
        """``ToolCalled``, before the tool runs."""
        ...

    async def returned(self, *, call_id: str, outcome: ToolOutcome) -> None:
        """``ToolReturned``."""
        ...

    async def refused(self, *, call_id: str, reason: str) -> None:
        """``ToolRefused``."""
        ...

    async def unknown(self, *, call_id: str, detail: str) -> None:
        """``ToolOutcomeUnknown``."""
        ...


def spec_frame(spec: ToolSpec) -> dict[str, Any]:
    """What the jail client learns of one tool."""
    return {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "signature": spec.signature,
        "schema": spec.schema,
        "server": spec.server,
        "server_description": spec.server_description,
    }


@dataclass
class _Call:
    task: asyncio.Task[dict[str, Any]]
    recording: bool = False  # the tool has answered: its outcome is being recorded


@dataclass
class BlockBroker:
    """The tools of one running block."""

    registry: ToolRegistry
    caller: Caller
    block_id: str
    log: ToolLog
    _count: int = 0
    _calls: dict[str, _Call] = field(default_factory=dict)

    async def relay(self, frame: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one request frame from the jail."""
        match frame.get("op"):
            case "list":
                specs = await self.registry.tools_for(self.caller)
                return {"ok": True, "tools": [spec_frame(spec) for spec in specs]}
            case "call":
                return await self._call(frame.get("tool"), frame.get("arguments", {}))
            case other:
                return {"ok": False, "error": f"unknown op {other!r}", "refused": True}

    async def _call(self, tool: object, arguments: object) -> dict[str, Any]:
        self._count += 1
        call_id = f"{self.block_id}c{self._count}"
        name = tool[:MAX_NAME] if isinstance(tool, str) else ""
        given = arguments if isinstance(arguments, dict) else {}
        shown, names = self.registry.redact(given)
        recorded = shown if isinstance(shown, dict) else {}
        await self.log.called(call_id=call_id, tool=name, arguments=recorded, redacted=names)
        reason = self._refusal(tool, arguments)
        if reason is not None:
            await self.log.refused(call_id=call_id, reason=reason)
            return {"ok": False, "error": reason, "refused": True}
        call = _Call(task=asyncio.ensure_future(self._run(call_id, name, given)))
        self._calls[call_id] = call
        # Shielded: when the sandbox stops relaying (the run ended), the call still records
        # its own outcome, or ``settle`` stops it and records it unknown.
        return await asyncio.shield(call.task)

    def _refusal(self, tool: object, arguments: object) -> str | None:
        if not isinstance(tool, str) or not tool:
            return "a call must name a tool"
        if not isinstance(arguments, dict):
            return "a call's arguments must be an object (name -> value)"
        limit = self.registry.calls_per_block
        if self._count > limit:
            return f"a block may call tools at most {limit} times ([tools] calls_per_block)"
        return None

    async def _run(self, call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Run one call and record its outcome; stopped before it answered, it is unknown."""
        try:
            outcome = await self.registry.call(name, arguments, caller=self.caller)
        except asyncio.CancelledError:
            await self.log.unknown(call_id=call_id, detail=STOPPED_CALL)
            raise
        self._calls[call_id].recording = True
        if outcome.refused is not None:
            await self.log.refused(call_id=call_id, reason=outcome.refused)
            return {"ok": False, "error": outcome.refused, "refused": True}
        await self.log.returned(call_id=call_id, outcome=outcome)
        if not outcome.ok:
            return {"ok": False, "error": outcome.error or "the tool failed", "refused": False}
        return {"ok": True, "result": outcome.result, "truncated": outcome.truncated}

    async def settle(self) -> None:
        """The block ended: every call has its outcome recorded before the block's does."""
        for call in list(self._calls.values()):
            if not call.task.done() and not call.recording:
                call.task.cancel()
            with contextlib.suppress(BaseException):
                await call.task
        self._calls.clear()
