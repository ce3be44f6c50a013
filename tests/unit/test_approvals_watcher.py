"""What surfaces rely on at start-up and while they serve: a conversation waiting for an approver
is not "interrupted" (no restart resumes it, nothing is posted about it), and the expiry
watcher keeps watching whatever one look at the log or one loop does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from bot.app.application import ConversationApp
from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.errors import StoreUnreachable
from bot.loop.service import OpsloopService
from bot.settings import Settings
from bot.surface import ApprovalRequest, Coordinates, Decision, Incoming
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel

BLOCK = "Let me look.\n<helpers>\nprint('disk is fine')\n</helpers>"
QUICK = {"approvals": {"blocks": "always", "timeout_minutes": 0.005}}  # 0.3 s


def make_service(app: ConversationApp, policy: dict[str, Any]) -> OpsloopService:
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=Policy.model_validate(policy),
        model=WatchedModel([BLOCK, "The disk is fine."]),
        sandbox=FakeSandbox(),
        app=app,
    )
    service.runner.now = lambda: datetime.now(UTC)
    return service


async def asked(service: OpsloopService, channel: str) -> str:
    where = Coordinates("slack", "T1", channel, "1.0")
    receipt = await service.receive(Incoming(where, f"m-{channel}", "U0ASKER", "disk?"))
    outcome = await service.run(receipt.conversation_id, RecordingProgress())
    assert outcome.awaiting is not None
    return receipt.conversation_id


def kinds(app: ConversationApp, cid: str) -> list[str]:
    return [e["type"] for e in app.timeline(UUID(cid))]


async def until(condition: Any) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_conversation_waiting_for_an_approver_is_not_interrupted_until_it_is_decided(
    memory_app: ConversationApp,
) -> None:
    service = make_service(memory_app, {"approvals": {"blocks": "always"}})
    cid = await asked(service, "C1")

    waiting = await service.interrupted(platform="slack")
    (request,) = await service.pending_approvals()
    where = Coordinates("slack", "T1", "C1", "1.0")
    await service.decide(Decision(where, "U0ASKER", approve=True, request_id=request.request_id))
    decided = await service.interrupted(platform="slack")

    assert waiting == []  # nothing to resume: it waits for a click or for the watcher
    assert decided == [(cid, where)]  # decided while no loop ran: a restart runs it on


async def test_the_watcher_goes_on_when_one_loop_it_runs_fails_and_when_the_store_is_down(
    memory_app: ConversationApp, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(memory_app, QUICK)
    broken = await asked(service, "C1")
    fine = await asked(service, "C2")
    looks = 0
    read_log = service.pending_approvals

    async def store_down_at_first() -> list[ApprovalRequest]:
        nonlocal looks
        looks += 1
        if looks == 1:
            raise StoreUnreachable("the event store at sqlite:///x cannot be reached")
        return await read_log()

    def progress_for(cid: str, _where: Coordinates) -> RecordingProgress:
        if cid == broken:
            raise RuntimeError("this surface cannot show that thread")
        return RecordingProgress()

    service.pending_approvals = store_down_at_first  # type: ignore[method-assign]
    watcher = asyncio.create_task(
        service.watch_approvals(platform="slack", progress_for=progress_for)
    )
    try:
        await until(lambda: "Answered" in kinds(memory_app, fine))
        alive = not watcher.done()
    finally:
        watcher.cancel()

    assert alive and looks >= 2
    assert kinds(memory_app, fine)[3:6] == ["ApprovalRequested", "ApprovalExpired", "BlockRefused"]
    assert "ApprovalExpired" not in kinds(memory_app, broken)  # nothing recorded: tried again
    assert "cannot read pending requests" in caplog.text
    assert f"the loop of {broken} failed" in caplog.text
