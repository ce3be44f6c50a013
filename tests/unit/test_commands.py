"""The thread commands: one set of words, carried out once by the application for every
surface (against the surface tests' fake service, whose primitives are all it fakes)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.discord.outbound import command_message
from adapters.slack.outbound import command_text
from bot.config import AccessPolicy
from bot.surface import Command, CommandName, Coordinates, Incoming, parse_command
from tests.fake_chat_service import FakeChatService

DM = Coordinates("discord", "", "500", "500")


def command(name: CommandName, *, author: str = "42", key: str = "k1") -> Command:
    return Command(name, Incoming(coordinates=DM, message_key=key, author=author, text=name))


async def with_one_answer() -> FakeChatService:
    service = FakeChatService()
    receipt = await service.receive(Incoming(DM, "m1", "42", "disk?"))
    await service.run(receipt.conversation_id, progress=_Quiet())
    return service


class _Quiet:
    async def thinking(self) -> None: ...
    async def model_text(self, chunk: str) -> None: ...
    async def block_started(self, **_: object) -> None: ...
    async def block_finished(self, **_: object) -> None: ...
    async def answered(self, text: str) -> None: ...
    async def stopped(self, **_: object) -> None: ...


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("stop", "stop"),
        (" COST ", "cost"),
        ("/replay", "replay"),
        ("!new", "new"),
        ("Stop.", "stop"),
    ],
)
def test_a_message_that_is_only_a_command_word_is_that_command_on_every_surface(
    text: str, name: str
) -> None:
    assert parse_command(text) == name


@given(st.sampled_from(list(CommandName)), st.sampled_from(["", "/", "!"]), st.booleans())
def test_every_command_word_is_recognised_however_it_is_written(
    name: CommandName, prefix: str, shout: bool
) -> None:
    word = prefix + (name.value.upper() if shout else name.value)
    assert parse_command(f"  {word}  ") is name


@pytest.mark.parametrize("text", ["stop the server", "what does new mean", "costs", ""])
def test_a_command_word_inside_a_sentence_is_a_message(text: str) -> None:
    assert parse_command(text) is None


async def test_new_starts_a_fresh_conversation_at_the_same_place_recorded_as_its_author() -> None:
    service = FakeChatService()
    before = await service.current_conversation(DM)
    reply = await service.handle(command(CommandName.NEW))
    assert reply.new_conversation_id is not None and reply.new_conversation_id != before
    assert await service.current_conversation(DM) == reply.new_conversation_id
    assert command_message(reply).text.startswith("Started a fresh conversation")


async def test_cost_reports_the_conversations_totals() -> None:
    reply = await (await with_one_answer()).handle(command(CommandName.COST))
    assert reply.totals is not None and reply.totals.input_tokens == 1200
    text = command_message(reply).text
    assert "1,200 tokens in / 80 out" in text and "$0.0021" in text and "3.4 s" in text
    assert "1,200 input + 80 output tokens" in command_text(reply)


async def test_replay_carries_the_timeline_and_discord_attaches_it() -> None:
    service = await with_one_answer()
    reply = await service.handle(command(CommandName.REPLAY))
    assert [e["type"] for e in reply.timeline] == ["MessageReceived"]
    message = command_message(reply)
    assert f"opsloop replay {reply.conversation_id}" in message.text
    (attachment,) = message.files
    assert b"disk?" in attachment.content
    assert f"opsloop replay {reply.conversation_id}" in command_text(reply)


async def test_stop_with_nothing_running_says_so_and_stops_a_running_loop() -> None:
    service = FakeChatService(hold=asyncio.Event())
    receipt = await service.receive(Incoming(DM, "m1", "42", "disk?"))
    idle = await service.handle(command(CommandName.STOP, key="k0"))
    assert idle.stopped is False or idle.conversation_id is None
    running = asyncio.ensure_future(service.run(receipt.conversation_id, _Quiet()))
    await asyncio.sleep(0.05)
    reply = await service.handle(command(CommandName.STOP))
    assert reply.stopped and (await running).stopped_reason == "cancelled"
    assert command_message(reply).text == "Stopping." and command_text(reply) == "Stopping."


async def test_a_command_where_there_is_no_conversation_yet_says_so() -> None:
    reply = await FakeChatService().handle(command(CommandName.COST))
    assert reply.conversation_id is None and reply.totals is None
    assert "no conversation" in command_message(reply).text
    assert "no conversation" in command_text(reply)


async def test_a_refused_author_cannot_use_commands_and_the_refusal_is_recorded_once() -> None:
    service = FakeChatService(access={"discord": AccessPolicy(allow_users=["1"])})
    reply = await service.handle(command(CommandName.COST))
    again = await service.handle(command(CommandName.COST))  # the same message, redelivered
    assert (
        reply.refused
        == "Sorry, I can't take this request: user 42 is not in [discord] allow_users."
    )
    assert again.duplicate and [reason for _, reason in service.refused] == [
        "user 42 is not in [discord] allow_users"
    ]
    assert command_message(reply).text == reply.refused
