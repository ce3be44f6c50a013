"""``opsloop ask``: one message, one loop, one result as plain values (for scripts)."""

from __future__ import annotations

import getpass
import socket
import uuid
from typing import Any

from bot.loop.service import OpsloopService
from bot.ports import Progress
from bot.surface import ApprovalRequest, Coordinates, Decision, Incoming


class QuietProgress:
    """A ``Progress`` that shows nothing: ``ask`` prints only its result."""

    async def thinking(self) -> None:
        """Nothing to show."""

    async def model_text(self, chunk: str) -> None:
        """Nothing to show."""

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Nothing to show."""

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: Any
    ) -> None:
        """Nothing to show."""

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """Nothing to show: ``ask`` decides by ``--approve``."""

    async def answered(self, text: str) -> None:
        """Nothing to show."""

    async def stopped(self, *, reason: str, detail: str) -> None:
        """Nothing to show."""


NOT_APPROVED = "opsloop ask runs no block that needs approval without --approve"


async def ask_once(
    service: OpsloopService,
    *,
    text: str,
    conversation: str | None = None,
    progress: Progress | None = None,
    approve: bool = False,
) -> dict[str, Any]:
    """Record ``text``, run the loop, and return what ``ask --json`` prints.

    A block that needs approval runs only with ``approve`` (recorded as approved by the
    local user); without it the request is denied, with the reason the model is told."""
    user = getpass.getuser()
    if conversation is not None:
        coordinates = await service.coordinates_of(conversation)
    else:  # each ask is its own conversation unless --conversation continues one
        coordinates = Coordinates(
            platform="cli", workspace=socket.gethostname(), channel=user, thread=uuid.uuid4().hex
        )
    incoming = Incoming(
        coordinates=coordinates, message_key=f"cli-{uuid.uuid4()}", author=user, text=text
    )
    receipt = await service.receive(incoming)
    progress = progress or QuietProgress()
    outcome = await service.run(receipt.conversation_id, progress)
    approvals: list[dict[str, Any]] = []
    while (request := outcome.awaiting) is not None:
        decision = Decision(
            coordinates=request.coordinates,
            by=user,
            approve=approve,
            request_id=request.request_id,
            reason="" if approve else NOT_APPROVED,
        )
        reply = await service.decide(decision)
        approvals.append(
            {"block_id": request.block_id, "tools": list(request.tools), "decision": reply.status}
        )
        outcome = await service.run(receipt.conversation_id, progress)
    totals = await service.totals(receipt.conversation_id)
    return {
        "conversation_id": receipt.conversation_id,
        "answer": outcome.answer,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "tokens_estimated": totals.estimated_turns > 0,  # some turns' counts are estimates
        "truncated_turns": totals.truncated_turns,  # turns a cap cut (replay says which, why)
        "discarded_chars": totals.discarded_chars,  # written after a block, dropped
        "cost": totals.cost,
        "blocks": totals.blocks,
        "stopped_reason": outcome.stopped_reason,
        "detail": outcome.detail,
        "approvals": approvals,  # blocks that needed approval, and what became of them
    }
