"""Discord slash commands through the gateway stand-in to the real service (scripted model,
SQLite, nsjail): registered per server by the CLI's function, deferred first, /ask opens a
thread on the question and answers there, the others act on the thread's conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord.slash import COMMANDS, NOT_ENABLED, NOT_HERE
from bot.cli.discord import parse_guilds, register_in
from bot.config import AccessPolicy
from bot.errors import ConfigError
from bot.surface import Coordinates
from tests.discord_clicks import InteractiveDiscordStandIn
from tests.discord_harness import connected, redirected
from tests.discord_standin import BOT_ID, GUILD_CHANNEL_ID, GUILD_ID, USER_ID, message_payload
from tests.real_service import real_service

SCRIPT = """\
turns:
  - |
    <helpers>
    print(6 * 7)
    </helpers>
  - It is 42.
  - And still 42.
"""
DEFERRED_WITH_MESSAGE = 5  # the callback type of a deferred "thinking…" answer


async def test_the_cli_registers_the_five_commands_in_each_named_server() -> None:
    standin = InteractiveDiscordStandIn()
    await standin.start()
    try:
        with redirected(standin):
            names = await register_in("test-token", [int(GUILD_ID), 400000000000000099])
    finally:
        await standin.close()
    assert sorted(names) == sorted(COMMANDS)
    assert set(standin.registered) == {GUILD_ID, "400000000000000099"}
    ask = next(c for c in standin.registered[GUILD_ID] if c["name"] == "ask")
    assert ask["options"][0]["name"] == "question" and ask["options"][0]["required"] is True


def test_register_commands_needs_a_server_and_numeric_ids() -> None:
    with pytest.raises(ConfigError, match="--guild"):
        parse_guilds([])
    with pytest.raises(ConfigError, match="number"):
        parse_guilds(["ops-server"])


async def test_ask_is_deferred_opens_a_thread_on_the_question_and_answers_there(
    jail_reachable_dir: Path,
) -> None:
    service = await real_service(jail_reachable_dir, SCRIPT)
    access = AccessPolicy(mention_guilds=[GUILD_ID])
    async with connected(
        service, access, guilds=[GUILD_ID], standin_class=InteractiveDiscordStandIn
    ) as running:
        fake = running.discord
        assert isinstance(fake, InteractiveDiscordStandIn)
        token = await fake.slash(
            "ask", user=USER_ID, channel_id=GUILD_CHANNEL_ID, question="what is 6 * 7?"
        )
        await fake.wait_until(lambda: any("It is 42." in t for t in fake.texts()), timeout=60)
        first = fake.answers(token)[0]
        assert first.kind == "callback" and first.payload["type"] == DEFERRED_WITH_MESSAGE
        (edit,) = fake.answers(token, "edit")
        assert edit.payload["content"] == f"<@{USER_ID}> asked: what is 6 * 7?"
        ((channel, thread_id, name),) = fake.threads
        assert (channel, name) == (GUILD_CHANNEL_ID, "what is 6 * 7?")
        assert fake.texts(thread_id)[-1] == "It is 42."
        assert any("42" in t and "Block 1/1" in t for t in fake.texts(thread_id))

        # a mention in that thread continues the same conversation
        follow = message_payload(
            channel_id=thread_id,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> again?",
        )
        await fake.dispatch("MESSAGE_CREATE", follow)
        await fake.wait_until(lambda: "And still 42." in fake.texts(thread_id), timeout=60)

        cost = await fake.slash(
            "cost", user=USER_ID, channel_id=thread_id, thread_parent=GUILD_CHANNEL_ID
        )
        await fake.wait_until(lambda: bool(fake.answers(cost, "edit")))
        assert "2 message(s)" in fake.answers(cost, "edit")[0].payload["content"]
        outside = await fake.slash("stop", user=USER_ID, channel_id=GUILD_CHANNEL_ID)
        await fake.wait_until(lambda: bool(fake.answers(outside, "edit")))
        assert fake.answers(outside, "edit")[0].payload["content"] == NOT_HERE
        thread = Coordinates("discord", GUILD_ID, GUILD_CHANNEL_ID, thread_id)
        timeline = await service.timeline(await service.current_conversation(thread))
    messages = [e for e in timeline if e["type"] == "MessageReceived"]
    assert [m["text"] for m in messages] == ["what is 6 * 7?", "again?"]
    assert messages[0]["message_key"].startswith("slash:")


async def test_slash_commands_in_a_server_that_is_not_enabled_say_so_and_record_nothing(
    jail_reachable_dir: Path,
) -> None:
    service = await real_service(jail_reachable_dir, SCRIPT)
    async with connected(
        service, AccessPolicy(), guilds=[GUILD_ID], standin_class=InteractiveDiscordStandIn
    ) as running:
        fake = running.discord
        assert isinstance(fake, InteractiveDiscordStandIn)
        token = await fake.slash("ask", user=USER_ID, channel_id=GUILD_CHANNEL_ID, question="hi")
        await fake.wait_until(lambda: bool(fake.answers(token, "edit")))
        assert fake.answers(token, "edit")[0].payload["content"] == NOT_ENABLED
        assert fake.threads == [] and await service.interrupted() == []
