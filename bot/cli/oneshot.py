"""``opsloop ask``: one message, one loop, one result as plain values (for scripts)."""

from __future__ import annotations

import asyncio
import getpass
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.terminal.files import local_attachment, save_files
from bot.loop.service import OpsloopService
from bot.ports import Progress
from bot.surface import ApprovalRequest, Coordinates, Decision, FileNote, Incoming, Outcome


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


ELSEWHERE_POLL_SECONDS = 0.25  # while another process runs the loop, look this often
NOT_APPROVED = "opsloop ask runs no block that needs approval without --approve"


async def ask_once(
    service: OpsloopService,
    *,
    text: str,
    conversation: str | None = None,
    progress: Progress | None = None,
    approve: bool = False,
    files: Sequence[Path] = (),
    files_dir: Path | None = None,
) -> dict[str, Any]:
    """Record ``text``, run the loop, and return what ``ask --json`` prints.

    A block that needs approval runs only with ``approve`` (recorded as approved by the
    local user); without it the request is denied, with the reason the model is told.
    ``files`` go into the conversation's inbox first; the files the answer carries are
    saved under ``files_dir``/<conversation id>."""
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
    attached = await service.attach(
        receipt.conversation_id, [local_attachment(p) for p in files], by=user
    )
    progress = progress or QuietProgress()
    outcome, approvals = await _run_deciding(
        service, receipt.conversation_id, progress, key=incoming.message_key, approve=approve
    )
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
        **_files_fields(attached, outcome, (files_dir or Path.cwd()) / receipt.conversation_id),
    }


async def _run_deciding(
    service: OpsloopService, cid: str, progress: Progress, *, key: str, approve: bool
) -> tuple[Outcome, list[dict[str, Any]]]:
    """Run the loop; each block that waits for approval is approved (``approve``) or denied
    as the local user, and the loop run again. The outcome, and what became of each."""
    user = getpass.getuser()
    outcome = await _run(service, cid, progress, key=key)
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
        outcome = await _run(service, cid, progress, key=key)
    return outcome, approvals


def _files_fields(attached: Sequence[FileNote], outcome: Outcome, out_dir: Path) -> dict[str, Any]:
    """``files_in`` (what became of each ``--file``), ``files`` (the answer's, saved under
    ``out_dir``) and ``files_skipped`` of ``ask --json``."""
    paths = save_files(outcome.files, out_dir) if outcome.files else []
    return {
        "files_in": [{"name": n.name, "bytes": n.bytes, "refused": n.refused} for n in attached],
        "files": [
            {"name": f.name, "bytes": len(f.data), "sha256": f.sha256, "path": str(p)}
            for f, p in zip(outcome.files, paths, strict=True)
        ],
        "files_skipped": list(outcome.files_skipped),
    }


async def _run(service: OpsloopService, cid: str, progress: Progress, *, key: str) -> Outcome:
    """Run the loop; while another process runs it, wait for that one to let go (it answers
    our message too), then read what became of our message from the log."""
    outcome = await service.run(cid, progress)
    while outcome.elsewhere:
        await asyncio.sleep(ELSEWHERE_POLL_SECONDS)
        outcome = await service.run(cid, progress)
    if outcome.answer is not None or outcome.stopped_reason or outcome.awaiting:
        return outcome
    return _answer_after(await service.timeline(cid), cid=cid, key=key) or outcome


def _answer_after(events: list[dict[str, Any]], *, cid: str, key: str) -> Outcome | None:
    """The first answer or stop recorded after the message with ``key``, as an outcome."""
    after = False
    for e in events:
        after = after or (e["type"] == "MessageReceived" and e["message_key"] == key)
        if after and e["type"] == "Answered":
            return Outcome(conversation_id=cid, answer=e["text"], stopped_reason=None)
        if after and e["type"] == "Stopped":
            return Outcome(cid, answer=None, stopped_reason=e["reason"], detail=e["detail"])
    return None
