"""Approve and Deny in Slack: signed ``block_actions`` payloads against the real Bolt app in HTTP
mode, the loopback Web API stand-in, and the real service (``build_service``: the real
application on a SQLite file, the product's scripted model, the port fake of the sandbox).

The runner's clock is a hand-moved one shared by every process of a test, and the expiry
watcher sleeps on it, so "on time" is checked without timing anything
(``tests/approval_processes.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.slack.app import SlackSurface
from adapters.slack.server import build_client, serve_socket_mode
from bot.surface import Coordinates
from tests.approval_processes import EXPIRES, T0, Clock, opsloop, sqlite_file
from tests.slack_clicks import (
    DENY,
    approval_posts,
    block_actions,
    push_click,
    request_id_of,
    send_click,
)
from tests.slack_harness import Bot, running_bot
from tests.slack_standin import TEAM, Call, SlackStandIn, envelope, mention, message


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(tmp_path: Path) -> str:
    return sqlite_file(tmp_path)


async def asked(bot: Bot, *, ts: str, channel: str = "C1") -> tuple[str, Call]:
    """Mention the bot in a new thread; returns the conversation and its approval message."""
    body = envelope(mention(channel=channel, ts=ts, text="is the disk full?"), event_id=f"Ev{ts}")
    assert (await bot.events.send(body))[0] == 200
    await bot.slack.wait_for(lambda: bool(approval_posts(bot.slack, channel, ts)))
    await bot.surface.idle()  # the loop has paused (it runs nowhere: the watcher's now)
    cid = await bot.surface.service.current_conversation(Coordinates("slack", TEAM, channel, ts))
    return cid, approval_posts(bot.slack, channel, ts)[0]


async def watched_at(bot: Bot, clock: Clock, when: float) -> None:
    """Move the clock to ``when`` and wait until the watcher has looked at the log then."""
    naps = clock.naps
    clock.move_to(when)
    await bot.slack.wait_for(lambda: clock.naps > naps)


def updates_of(slack: SlackStandIn, posted: Call) -> list[str]:
    """The texts the approval message was updated to, in order."""
    return [
        c.params["text"] for c in slack.of("chat.update") if c.params["ts"] == posted.params["_ts"]
    ]


def ephemerals(slack: SlackStandIn, user: str) -> list[str]:
    return [c.params["text"] for c in slack.of("chat.postEphemeral") if c.params["user"] == user]


async def test_an_approvers_click_is_acked_updates_the_message_in_place_and_runs_the_block(
    database: str, clock: Clock
) -> None:
    slack = SlackStandIn(assistant_status=False)  # the status is one message, edited in place
    async with opsloop(database, clock) as ops, running_bot(ops.service, slack=slack) as bot:
        cid, posted = await asked(bot, ts="100.1")
        assert ops.sandbox.ran == [] and bot.slack.reactions("C1", "100.1") == ["eyes"]
        assert bot.slack.of("chat.update")[-1].params["text"] == "_⏸️ waiting for approval_"

        status, seconds = await send_click(bot.events, block_actions(posted, user="U0ONCALL"))
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "100.1"))

        assert status == 200 and seconds < 3.0
        assert updates_of(bot.slack, posted) == ["✅ approved by <@U0ONCALL>"]
        update = next(
            c for c in bot.slack.of("chat.update") if c.params["ts"] == posted.params["_ts"]
        )
        shown = str(update.params["blocks"])
        assert "print('disk is fine')" in shown and "opsloop_approve" not in shown
        assert [code for _, code, _ in ops.sandbox.ran] == ["print('disk is fine')"]
        assert ops.events(cid, "ApprovalGranted")[0]["by"] == "U0ONCALL"
        assert "The disk is fine." in bot.slack.thread_text("C1", "100.1")
        assert ephemerals(bot.slack, "U0ONCALL") == []  # the message itself says it


async def test_a_non_approvers_click_is_answered_only_to_them_and_recorded_nowhere(
    database: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service) as bot:
        cid, posted = await asked(bot, ts="200.1")
        before = ops.kinds(cid)

        status, _ = await send_click(bot.events, block_actions(posted, user="U0ALICE"))
        await bot.slack.wait_for(lambda: bool(ephemerals(bot.slack, "U0ALICE")))
        await bot.surface.idle()

        assert status == 200
        (notice,) = bot.slack.of("chat.postEphemeral")
        assert notice.params == {
            "channel": "C1",
            "user": "U0ALICE",
            "thread_ts": "200.1",
            "text": "you are not an approver here",
        }
        assert ops.kinds(cid) == before and ops.sandbox.ran == []
        assert updates_of(bot.slack, posted) == []  # the buttons stay for an approver
        assert "U0ALICE is not an approver here" in caplog.text


async def test_a_deny_refuses_the_block_the_message_says_who_and_the_model_is_told(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service) as bot:
        cid, posted = await asked(bot, ts="300.1")

        await send_click(bot.events, block_actions(posted, user="U0ONCALL", action_id=DENY))
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "300.1"))

        assert updates_of(bot.slack, posted) == ["⛔ denied by <@U0ONCALL>"]
        assert ops.sandbox.ran == []
        assert ops.kinds(cid)[3:6] == ["ApprovalRequested", "ApprovalDenied", "BlockRefused"]
        assert "U0ONCALL denied running it" in str(ops.model.prompts[-1])
        assert "The disk is fine." in bot.slack.thread_text("C1", "300.1")


async def test_a_double_click_and_a_replayed_payload_change_nothing_after_the_decision(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service) as bot:
        cid, posted = await asked(bot, ts="400.1")
        ops.sandbox.hold = asyncio.Event()  # the approved block is still running
        click = block_actions(posted, user="U0ONCALL")
        await send_click(bot.events, click)
        await bot.slack.wait_for(lambda: bool(ops.sandbox.ran))
        granted = ops.kinds(cid)

        replayed = await send_click(bot.events, click)  # the same signed click, again
        denied = await send_click(
            bot.events, block_actions(posted, user="U0ONCALL", action_id=DENY)
        )
        await bot.slack.wait_for(lambda: len(ephemerals(bot.slack, "U0ONCALL")) == 2)
        ops.sandbox.hold.set()
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "400.1"))
        later = await send_click(bot.events, click)  # long after: the loop has moved on
        await bot.slack.wait_for(lambda: len(ephemerals(bot.slack, "U0ONCALL")) == 3)
        await bot.surface.idle()

        assert (replayed[0], denied[0], later[0]) == (200, 200, 200)
        assert ops.kinds(cid)[: len(granted)] == granted and granted.count("ApprovalGranted") == 1
        assert "ApprovalDenied" not in ops.kinds(cid) and len(ops.sandbox.ran) == 1
        assert ephemerals(bot.slack, "U0ONCALL") == [
            "already approved by <@U0ONCALL>",
            "already approved by <@U0ONCALL>",
            "there is no approval request waiting here",
        ]
        assert updates_of(bot.slack, posted) == ["✅ approved by <@U0ONCALL>"]


async def test_a_forged_signature_or_a_stale_timestamp_gets_401_and_changes_nothing(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service) as bot:
        cid, posted = await asked(bot, ts="500.1")
        before, calls = ops.kinds(cid), len(bot.slack.calls)
        click = block_actions(posted, user="U0ONCALL")

        forged = await send_click(bot.events, click, secret="not-the-signing-secret")
        stale = await send_click(bot.events, click, timestamp=int(time.time()) - 600)
        await bot.surface.idle()

        assert (forged[0], stale[0]) == (401, 401)
        assert ops.kinds(cid) == before and ops.sandbox.ran == []
        assert len(bot.slack.calls) == calls  # no update, no ephemeral, no run


async def test_a_request_expires_on_time_the_message_says_so_and_a_late_click_changes_nothing(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service, watch=True) as bot:
        cid, posted = await asked(bot, ts="600.1")
        await watched_at(bot, clock, EXPIRES - 1)
        assert "ApprovalExpired" not in ops.kinds(cid)  # not a second early

        clock.move_to(EXPIRES)
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "600.1"))
        late = await send_click(bot.events, block_actions(posted, user="U0ONCALL"))
        await bot.slack.wait_for(lambda: bool(ephemerals(bot.slack, "U0ONCALL")))

        assert ops.kinds(cid)[3:6] == ["ApprovalRequested", "ApprovalExpired", "BlockRefused"]
        assert ops.sandbox.ran == [] and "nobody approved it" in str(ops.model.prompts[-1])
        assert [u[:9] for u in updates_of(bot.slack, posted)] == ["⌛ expired"]
        assert late[0] == 200 and "ApprovalGranted" not in ops.kinds(cid)
        assert ephemerals(bot.slack, "U0ONCALL") == ["there is no approval request waiting here"]


async def test_a_click_after_the_expiry_time_records_nothing_and_marks_the_message_expired(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service) as bot:
        cid, posted = await asked(bot, ts="650.1")
        before = ops.kinds(cid)
        clock.move_to(EXPIRES)  # no watcher here: the click is first to see it

        late = await send_click(bot.events, block_actions(posted, user="U0ONCALL"))
        await bot.slack.wait_for(lambda: bool(ephemerals(bot.slack, "U0ONCALL")))
        await bot.surface.idle()

        assert late[0] == 200 and ops.kinds(cid) == before and ops.sandbox.ran == []
        assert ephemerals(bot.slack, "U0ONCALL") == ["this request expired before anyone decided"]
        assert [u[:9] for u in updates_of(bot.slack, posted)] == ["⌛ expired"]


async def test_approve_typed_in_the_thread_takes_the_buttons_away_and_runs_the_block(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, running_bot(ops.service) as bot:
        cid, posted = await asked(bot, ts="750.1")
        reply = message(
            channel="C1", ts="750.2", thread_ts="750.1", text="approve", user="U0ONCALL"
        )

        await bot.events.send(envelope(reply, event_id="Ev750.2"))
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "750.2"))

        assert ops.events(cid, "ApprovalGranted")[0]["by"] == "U0ONCALL"
        assert "approved by U0ONCALL" in bot.slack.thread_text("C1", "750.1")
        assert updates_of(bot.slack, posted) == ["✅ approved by <@U0ONCALL>"]
        assert [code for _, code, _ in ops.sandbox.ran] == ["print('disk is fine')"]
        assert "The disk is fine." in bot.slack.thread_text("C1", "750.1")


@pytest.fixture
def shared_slack() -> Iterator[SlackStandIn]:
    yield SlackStandIn()


async def test_after_a_restart_requests_still_wait_a_click_is_honoured_and_expiry_is_on_time(
    database: str, clock: Clock, shared_slack: SlackStandIn
) -> None:
    await shared_slack.start()
    try:
        async with (
            opsloop(database, clock) as first,
            running_bot(first.service, slack=shared_slack) as bot,
        ):
            clicked, to_click = await asked(bot, ts="700.1")
            waited, to_wait = await asked(bot, ts="700.2")
        clock.move_to(T0 + 60)

        async with (
            opsloop(database, clock) as second,
            running_bot(second.service, slack=shared_slack, watch=True) as bot,
        ):
            pending = {r.request_id for r in await second.service.pending_approvals()}
            resumed = await bot.surface.resume_interrupted()
            await send_click(bot.events, block_actions(to_click, user="U0ONCALL"))
            await bot.slack.wait_for(
                lambda: "white_check_mark" in bot.slack.reactions("C1", "700.1")
            )
            await watched_at(bot, clock, EXPIRES - 1)
            not_yet = second.kinds(waited)
            clock.move_to(EXPIRES)
            await bot.slack.wait_for(
                lambda: "white_check_mark" in bot.slack.reactions("C1", "700.2")
            )
            await bot.surface.idle()

            assert pending == {request_id_of(to_click), request_id_of(to_wait)}
            assert "ApprovalExpired" not in not_yet
            assert resumed == 0  # waiting is not interrupted: nothing to pick up, nothing said
            assert "picking up" not in bot.slack.thread_text("C1", "700.1")
            assert [code for _, code, _ in second.sandbox.ran] == ["print('disk is fine')"]
            assert second.events(clicked, "ApprovalGranted")[0]["by"] == "U0ONCALL"
            assert updates_of(bot.slack, to_click) == ["✅ approved by <@U0ONCALL>"]
            assert second.kinds(waited)[3:6] == [
                "ApprovalRequested",
                "ApprovalExpired",
                "BlockRefused",
            ]
            assert "The disk is fine." in bot.slack.thread_text("C1", "700.2")
    finally:
        await shared_slack.stop()


async def test_over_socket_mode_a_click_is_acked_decided_and_shown_with_the_watcher_running(
    database: str, clock: Clock
) -> None:
    slack = SlackStandIn()
    await slack.start()
    async with opsloop(database, clock) as ops:
        client = build_client(token="xoxb-test", base_url=slack.base_url)
        surface = SlackSurface(service=ops.service, client=client, pacer_interval=0.05)
        serving = asyncio.create_task(serve_socket_mode(surface, app_token="xapp-test"))
        try:
            body = envelope(mention(channel="C8", ts="800.1", text="disk?"), event_id="Ev8")
            await slack.push_event(body, envelope_id="env-1")
            await slack.wait_for(lambda: bool(approval_posts(slack, "C8", "800.1")))
            await surface.idle()
            (posted,) = approval_posts(slack, "C8", "800.1")
            watching = surface.watching

            await push_click(slack, block_actions(posted, user="U0ONCALL"), envelope_id="env-2")
            await slack.wait_for(lambda: "env-2" in slack.socket_acks)
            await slack.wait_for(lambda: "white_check_mark" in slack.reactions("C8", "800.1"))

            assert watching and clock.naps >= 1  # started beside the listener, on the clock
            assert updates_of(slack, posted) == ["✅ approved by <@U0ONCALL>"]
            assert [code for _, code, _ in ops.sandbox.ran] == ["print('disk is fine')"]
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            await client.session.close() if client.session else None
            await slack.stop()
        assert not surface.watching  # stopped with the surface
