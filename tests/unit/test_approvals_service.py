"""Approvals through the chat service, on the real application and runner: a block that needs
a yes waits without running; approvers decide once, in time, in their own thread; nobody
else changes anything; expiry refuses it; a restart forgets nothing. Only the ports are fake
(the scripted model, the sandbox, the progress) and the clock is injected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from bot.app.application import ConversationApp, open_app
from bot.audit.replay import render
from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.loop.service import OpsloopService
from bot.settings import Settings
from bot.surface import Command, CommandName, Coordinates, Decision, Incoming, Outcome
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel

HERE = Coordinates("slack", "T1", "C1", "1.0")
ELSEWHERE = Coordinates("slack", "T1", "C2", "2.0")
BLOCK = "Let me look.\n<helpers>\nprint('disk is fine')\n</helpers>"
T0 = 1_800_000_000.0
POLICY: dict[str, Any] = {
    "roles": {"oncall": ["slack:U0ONCALL"]},
    "approvals": {"blocks": "always", "approvers": ["role:oncall"], "timeout_minutes": 15},
}


class Clock:
    """The runner's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> Any:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.now, UTC)


def make_service(
    app: ConversationApp,
    clock: Clock,
    *,
    turns: list[str] | None = None,
    policy: dict[str, Any] | None = None,
) -> tuple[OpsloopService, WatchedModel, FakeSandbox]:
    model = WatchedModel(turns or [BLOCK, "The disk is fine."])
    sandbox = FakeSandbox()
    service = build_service(
        settings=Settings(database_url="memory:"),
        policy=Policy.model_validate(policy or POLICY),
        model=model,
        sandbox=sandbox,
        app=app,
    )
    service.runner.now = clock
    return service, model, sandbox


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def asked(service: OpsloopService, where: Coordinates = HERE) -> tuple[Outcome, str]:
    receipt = await service.receive(Incoming(where, f"m-{where.channel}", "U0ASKER", "disk?"))
    outcome = await service.run(receipt.conversation_id, RecordingProgress())
    return outcome, receipt.conversation_id


def kinds(app: ConversationApp, cid: str) -> list[str]:
    """Its event types, but who ran the loop (``LoopClaimed``)."""
    return [e["type"] for e in app.timeline(UUID(cid)) if e["type"] != "LoopClaimed"]


def click(
    by: str, approve: bool = True, *, request_id: str = "", where: Coordinates = HERE
) -> Decision:
    return Decision(coordinates=where, by=by, approve=approve, request_id=request_id)


async def test_a_block_that_needs_approval_waits_without_running(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, _, sandbox = make_service(memory_app, clock)
    progress = RecordingProgress()
    receipt = await service.receive(Incoming(HERE, "m1", "U0ASKER", "disk?"))

    outcome = await service.run(receipt.conversation_id, progress)

    assert outcome.awaiting is not None and outcome.answer is None
    assert kinds(memory_app, receipt.conversation_id)[-2:] == ["ModelReplied", "ApprovalRequested"]
    assert sandbox.ran == []
    shown = dict(progress.calls)["approval_requested"]
    assert shown.code == "print('disk is fine')" and shown.requested_from == ("role:oncall",)
    assert shown.expires_at == T0 + 15 * 60 and shown.requested_by == "U0ASKER"
    again = await service.run(receipt.conversation_id, RecordingProgress())
    assert again.awaiting == outcome.awaiting  # waiting is a state of the log, not of a process
    assert kinds(memory_app, receipt.conversation_id).count("ApprovalRequested") == 1


async def test_an_approver_s_click_runs_the_block_and_the_replay_says_who_approved_what(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, _, sandbox = make_service(memory_app, clock)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None

    reply = await service.decide(click("U0ONCALL", request_id=outcome.awaiting.request_id))
    done = await service.run(cid, RecordingProgress())

    assert (reply.status, reply.detail, reply.resumes) == ("granted", "approved by U0ONCALL", True)
    assert done.answer == "The disk is fine."
    assert sandbox.ran == [("python", "print('disk is fine')", sandbox.ran[0][2])]
    assert kinds(memory_app, cid)[3:6] == ["ApprovalRequested", "ApprovalGranted", "BlockStarted"]
    text = "\n".join(render(memory_app.timeline(UUID(cid)), fmt="text"))
    assert "approved by U0ONCALL" in text and "sha256" in text


async def test_a_click_by_someone_who_is_not_an_approver_records_nothing(
    memory_app: ConversationApp, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    service, _, sandbox = make_service(memory_app, clock)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None
    before = kinds(memory_app, cid)

    reply = await service.decide(click("U0ASKER", request_id=outcome.awaiting.request_id))

    assert (reply.status, reply.detail) == ("not_approver", "you are not an approver here")
    assert reply.resumes is False and kinds(memory_app, cid) == before and sandbox.ran == []
    assert "U0ASKER is not an approver here" in caplog.text


async def test_a_denial_refuses_the_block_and_the_model_is_told_who_and_why(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, model, sandbox = make_service(memory_app, clock)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None

    reply = await service.decide(
        Decision(
            HERE, "U0ONCALL", approve=False, request_id=outcome.awaiting.request_id, reason="freeze"
        )
    )
    await service.run(cid, RecordingProgress())

    assert reply.status == "denied" and sandbox.ran == []
    refused = next(e for e in memory_app.timeline(UUID(cid)) if e["type"] == "BlockRefused")
    assert refused["reason"] == "U0ONCALL denied running it: freeze"
    assert "U0ONCALL denied running it: freeze" in str(model.prompts[-1])


async def test_a_second_click_after_the_decision_changes_nothing(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, _, _ = make_service(memory_app, clock)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None
    request_id = outcome.awaiting.request_id
    await service.decide(click("U0ONCALL", request_id=request_id))
    before = kinds(memory_app, cid)

    second = await service.decide(click("U0ONCALL", approve=False, request_id=request_id))

    assert (second.status, second.detail) == ("decided", "already approved by U0ONCALL")
    assert kinds(memory_app, cid) == before


async def test_a_request_expires_on_time_and_its_block_is_refused(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, model, sandbox = make_service(memory_app, clock)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None
    clock.now = T0 + 15 * 60 - 1
    assert (await service.run(cid, RecordingProgress())).awaiting is not None
    late = T0 + 15 * 60

    clock.now = late
    click_after = await service.decide(click("U0ONCALL", request_id=outcome.awaiting.request_id))
    done = await service.run(cid, RecordingProgress())

    assert click_after.status == "expired" and sandbox.ran == []
    assert kinds(memory_app, cid)[3:6] == ["ApprovalRequested", "ApprovalExpired", "BlockRefused"]
    assert done.answer == "The disk is fine."
    assert "nobody approved it within 15 minutes" in str(model.prompts[-1])


async def test_a_request_from_another_thread_cannot_be_decided_here(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, _, _ = make_service(memory_app, clock)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None
    await asked(service, ELSEWHERE)

    reply = await service.decide(
        click("U0ONCALL", request_id=outcome.awaiting.request_id, where=ELSEWHERE)
    )

    assert reply.status == "none" and "ApprovalGranted" not in kinds(memory_app, cid)


async def test_the_approve_and_deny_commands_decide_the_latest_request_of_the_thread(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, _, _ = make_service(memory_app, clock, turns=[BLOCK, BLOCK, "The disk is fine."])
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None
    deny = Incoming(HERE, "m2", "U0ONCALL", "deny not during the freeze")

    denied = await service.handle(Command(CommandName.DENY, deny))
    second = await service.run(cid, RecordingProgress())
    approve = Incoming(HERE, "m3", "U0ONCALL", "approve")
    approved = await service.handle(Command(CommandName.APPROVE, approve))

    assert denied.decision is not None and denied.decision.status == "denied"
    refused = next(e for e in memory_app.timeline(UUID(cid)) if e["type"] == "BlockRefused")
    assert refused["reason"] == "U0ONCALL denied running it: not during the freeze"
    assert second.awaiting is not None and second.awaiting.request_id != outcome.awaiting.request_id
    assert approved.decision is not None and approved.decision.status == "granted"
    assert approved.decision.request_id == second.awaiting.request_id


async def test_the_local_user_may_decide_in_a_terminal(
    memory_app: ConversationApp, clock: Clock
) -> None:
    service, _, sandbox = make_service(memory_app, clock)
    terminal = Coordinates("terminal", "host", "alice", "chat")
    outcome, cid = await asked(service, terminal)
    assert outcome.awaiting is not None

    reply = await service.decide(
        click("alice", request_id=outcome.awaiting.request_id, where=terminal)
    )
    await service.run(cid, RecordingProgress())

    assert reply.status == "granted" and len(sandbox.ran) == 1


async def test_without_approvers_anyone_allowed_in_the_channel_may_decide(
    memory_app: ConversationApp, clock: Clock
) -> None:
    policy = {"approvals": {"blocks": "always"}, "slack": {"allow_users": ["U0ASKER", "U0PEER"]}}
    service, _, _ = make_service(memory_app, clock, policy=policy)
    outcome, _ = await asked(service)
    assert outcome.awaiting is not None and outcome.awaiting.requested_from == (
        "anyone allowed here",
    )

    stranger = await service.decide(click("U0STRANGER", request_id=outcome.awaiting.request_id))
    peer = await service.decide(click("U0PEER", request_id=outcome.awaiting.request_id))

    assert (stranger.status, peer.status) == ("not_approver", "granted")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'events.db'}"


async def test_after_a_restart_a_pending_request_is_still_pending_and_expires_on_time(
    sqlite_url: str, clock: Clock
) -> None:
    first_app = open_app(database_url=sqlite_url)
    first, _, _ = make_service(first_app, clock)
    outcome, cid = await asked(first)
    assert outcome.awaiting is not None
    first_app.close()

    app = open_app(database_url=sqlite_url)  # the restarted process
    service, _, sandbox = make_service(app, clock, turns=[BLOCK, "The disk is fine."])
    pending = await service.pending_approvals()
    clock.now = T0 + 15 * 60
    await service.run(cid, RecordingProgress())

    assert [r.request_id for r in pending] == [outcome.awaiting.request_id]
    assert pending[0].coordinates == HERE and sandbox.ran == []
    assert "ApprovalExpired" in kinds(app, cid)
    assert await service.pending_approvals() == []
    app.close()


async def test_a_decision_recorded_while_the_bot_was_down_is_honoured_on_restart(
    sqlite_url: str, clock: Clock
) -> None:
    first_app = open_app(database_url=sqlite_url)
    first, _, _ = make_service(first_app, clock)
    outcome, cid = await asked(first)
    assert outcome.awaiting is not None
    await first.decide(click("U0ONCALL", request_id=outcome.awaiting.request_id))
    first_app.close()  # it stopped before running the block

    app = open_app(database_url=sqlite_url)
    service, _, sandbox = make_service(app, clock)
    resumed = await service.resume_all(
        platform="slack", progress_for=lambda *_: RecordingProgress()
    )

    assert [o.answer for o in resumed] == ["The disk is fine."] and len(sandbox.ran) == 1
    app.close()


async def test_the_watcher_expires_a_request_on_time_and_runs_the_loop_on(
    memory_app: ConversationApp,
) -> None:
    import asyncio
    from datetime import UTC, datetime

    policy = {"approvals": {"blocks": "always", "timeout_minutes": 0.005}}  # 0.3 s
    service, _, sandbox = make_service(memory_app, Clock(), policy=policy)
    service.runner.now = lambda: datetime.now(UTC)
    outcome, cid = await asked(service)
    assert outcome.awaiting is not None
    shown: list[RecordingProgress] = []

    def progress_for(_cid: str, _where: Coordinates) -> RecordingProgress:
        shown.append(RecordingProgress())
        return shown[-1]

    watcher = asyncio.create_task(
        service.watch_approvals(platform="slack", progress_for=progress_for)
    )
    try:
        async with asyncio.timeout(10):
            while "Answered" not in kinds(memory_app, cid):
                await asyncio.sleep(0.05)
    finally:
        watcher.cancel()

    assert kinds(memory_app, cid)[3:6] == ["ApprovalRequested", "ApprovalExpired", "BlockRefused"]
    assert sandbox.ran == [] and shown and "answered" in shown[0].names()
