"""Approve and Deny on Discord: button clicks (component interactions) through the gateway
stand-in to the real discord.py client, with the real service (``tests/approval_processes.py``:
the real application on a SQLite file, the scripted model, the sandbox's port fake) and a
clock the test moves by hand."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from adapters.discord.surface import REACT_ANSWERED, REACT_RECEIVED
from bot.config import AccessPolicy
from bot.ports import ChatService
from bot.surface import Coordinates
from tests.approval_processes import EXPIRES, T0, Clock, opsloop, sqlite_file
from tests.discord_clicks import DEFERRED_UPDATE, EPHEMERAL, InteractiveDiscordStandIn
from tests.discord_harness import Running, connected, dm, eventually
from tests.discord_standin import (
    BOT_ID,
    DM_CHANNEL_ID,
    GUILD_CHANNEL_ID,
    GUILD_ID,
    STRANGER_ID,
    USER_ID,
    Sent,
    message_payload,
)

APPROVE, DENY = 0, 1  # the buttons, left to right
DM_HERE = Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(tmp_path: Path) -> str:
    return sqlite_file(tmp_path)


def on_discord(
    service: ChatService, *, guilds: bool = False
) -> contextlib.AbstractAsyncContextManager[Running]:
    """An opsloop client connected to the interactive stand-in (servers' mentions: ``guilds``)."""
    access = AccessPolicy(mention_guilds=[GUILD_ID] if guilds else [])
    return connected(
        service,
        access,
        guilds=[GUILD_ID] if guilds else None,
        standin_class=InteractiveDiscordStandIn,
    )


async def asked_in_dm(running: Running, text: str = "is the disk full?") -> tuple[str, Sent]:
    """A DM that needs an approval; returns the conversation and the approval message."""
    fake = running.discord
    assert isinstance(fake, InteractiveDiscordStandIn)
    handled = running.surface.handled
    message = dm(text)
    await fake.dispatch("MESSAGE_CREATE", message)
    await eventually(lambda: running.surface.handled > handled)  # its loop has paused
    cid = await running.surface.service.current_conversation(DM_HERE)
    (posted,) = fake.approval_messages(DM_CHANNEL_ID)[-1:]
    assert fake.reactions == [(message["id"], REACT_RECEIVED)]  # not ✅: it is not done
    return cid, posted


def interactive(running: Running) -> InteractiveDiscordStandIn:
    assert isinstance(running.discord, InteractiveDiscordStandIn)
    return running.discord


async def test_an_approvers_click_is_deferred_edits_the_message_and_runs_the_block(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service) as running:
        fake = interactive(running)
        cid, posted = await asked_in_dm(running)

        token = await fake.click(posted, user=USER_ID, button=APPROVE)
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(DM_CHANNEL_ID))

        ids = [c["custom_id"] for c in posted.components[0]["components"]]
        request_id = ops.events(cid, "ApprovalRequested")[0]["request_id"]
        assert ids == [f"opsloop_approve:{request_id}", f"opsloop_deny:{request_id}"]
        first, edit = fake.answers(token)
        assert first.kind == "callback" and first.payload["type"] == DEFERRED_UPDATE
        assert edit.kind == "edit" and edit.payload["components"] == []  # the buttons go
        assert edit.payload["content"].endswith(f"\n✅ approved by <@{USER_ID}>")
        assert "print('disk is fine')" in edit.payload["content"]  # the code stays
        assert ops.events(cid, "ApprovalGranted")[0]["by"] == USER_ID
        assert [code for _, code, _ in ops.sandbox.ran] == ["print('disk is fine')"]


async def test_a_non_approvers_click_gets_an_ephemeral_answer_and_records_nothing(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service) as running:
        fake = interactive(running)
        cid, posted = await asked_in_dm(running)
        before = ops.kinds(cid)

        token = await fake.click(posted, user=STRANGER_ID, button=APPROVE)
        await fake.wait_until(lambda: bool(fake.answers(token, "followup")))

        callback, followup = fake.answers(token)
        assert callback.payload["type"] == DEFERRED_UPDATE
        assert followup.payload["content"] == "you are not an approver here"
        assert followup.payload["flags"] & EPHEMERAL
        assert ops.kinds(cid) == before and ops.sandbox.ran == []


async def test_a_deny_edits_the_message_refuses_the_block_and_the_model_is_told(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service) as running:
        fake = interactive(running)
        cid, posted = await asked_in_dm(running)

        token = await fake.click(posted, user=USER_ID, button=DENY)
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(DM_CHANNEL_ID))

        (edit,) = fake.answers(token, "edit")
        assert edit.payload["content"].endswith(f"\n⛔ denied by <@{USER_ID}>")
        assert ops.kinds(cid)[3:6] == ["ApprovalRequested", "ApprovalDenied", "BlockRefused"]
        assert f"{USER_ID} denied running it" in str(ops.model.prompts[-1])
        assert ops.sandbox.ran == []


async def test_a_second_click_changes_nothing_and_is_answered_to_the_clicker(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service) as running:
        fake = interactive(running)
        cid, posted = await asked_in_dm(running)
        ops.sandbox.hold = asyncio.Event()  # the approved block is still running
        await fake.click(posted, user=USER_ID, button=APPROVE)
        await eventually(lambda: bool(ops.sandbox.ran))

        again = await fake.click(posted, user=USER_ID, button=DENY)
        await fake.wait_until(lambda: bool(fake.answers(again, "followup")))
        ops.sandbox.hold.set()
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(DM_CHANNEL_ID))

        (followup,) = fake.answers(again, "followup")
        assert followup.payload["content"] == f"already approved by <@{USER_ID}>"
        assert fake.answers(again, "edit") == []
        assert ops.kinds(cid).count("ApprovalGranted") == 1 and len(ops.sandbox.ran) == 1
        assert "ApprovalDenied" not in ops.kinds(cid)


async def test_a_request_expires_on_time_the_model_is_told_and_a_late_click_changes_nothing(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service) as running:
        fake = interactive(running)
        cid, posted = await asked_in_dm(running)
        watching = running.surface.watching  # started with the client
        naps = clock.naps
        clock.move_to(EXPIRES - 1)
        await eventually(lambda: clock.naps > naps)  # the watcher looked, one second early
        early = ops.kinds(cid)
        clock.move_to(EXPIRES)
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(DM_CHANNEL_ID))
        token = await fake.click(posted, user=USER_ID, button=APPROVE)
        await fake.wait_until(lambda: bool(fake.answers(token, "followup")))

        assert "ApprovalExpired" not in early
        assert ops.kinds(cid)[3:6] == ["ApprovalRequested", "ApprovalExpired", "BlockRefused"]
        assert ops.sandbox.ran == [] and "ApprovalGranted" not in ops.kinds(cid)
        assert "nobody approved it" in str(ops.model.prompts[-1])
        (followup,) = fake.answers(token, "followup")
        assert followup.payload["content"] == "there is no approval request waiting here"
    assert watching and not running.surface.watching  # and stopped with it


async def test_after_a_restart_the_request_still_waits_and_a_click_on_its_message_is_honoured(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as first, on_discord(first.service) as running:
        cid, posted = await asked_in_dm(running)
    clock.move_to(T0 + 60)

    async with opsloop(database, clock) as second, on_discord(second.service) as running:
        fake = interactive(running)
        pending = await second.service.pending_approvals()
        said_at_start = list(fake.sent)
        token = await fake.click(posted, user=USER_ID, button=APPROVE)
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(DM_CHANNEL_ID))

        assert [r.conversation_id for r in pending] == [cid]
        assert said_at_start == []  # waiting is not interrupted: nothing resumed, nothing said
        (edit,) = fake.answers(token, "edit")
        assert edit.payload["content"].endswith(f"approved by <@{USER_ID}>")
        assert [code for _, code, _ in second.sandbox.ran] == ["print('disk is fine')"]


async def test_in_a_server_thread_a_click_decides_the_request_of_that_thread(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service, guilds=True) as running:
        fake = interactive(running)
        mention = message_payload(
            channel_id=GUILD_CHANNEL_ID,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> is the disk full?",
        )
        await fake.dispatch("MESSAGE_CREATE", mention)
        thread = mention["id"]  # a thread started on a message has its id
        await fake.wait_until(lambda: bool(fake.approval_messages(thread)))
        (posted,) = fake.approval_messages(thread)

        await fake.click(posted, user=USER_ID, button=APPROVE, thread_parent=GUILD_CHANNEL_ID)
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(thread))

        where = Coordinates("discord", GUILD_ID, GUILD_CHANNEL_ID, thread)
        cid = await ops.service.current_conversation(where)
        assert ops.events(cid, "ApprovalGranted")[0]["by"] == USER_ID
        assert (mention["id"], REACT_ANSWERED) not in fake.reactions  # it paused, not done
        assert len(ops.sandbox.ran) == 1


async def test_approve_typed_in_the_dm_runs_the_block_as_a_click_would(
    database: str, clock: Clock
) -> None:
    async with opsloop(database, clock) as ops, on_discord(ops.service) as running:
        fake = interactive(running)
        cid, _ = await asked_in_dm(running)

        await fake.dispatch("MESSAGE_CREATE", dm("approve"))
        await fake.wait_until(lambda: "The disk is fine." in fake.texts(DM_CHANNEL_ID))

        assert f"approved by {USER_ID}" in fake.texts(DM_CHANNEL_ID)
        assert ops.events(cid, "ApprovalGranted")[0]["by"] == USER_ID
        assert [code for _, code, _ in ops.sandbox.ran] == ["print('disk is fine')"]
