"""The discord.py glue against a local stand-in for Discord (REST + gateway on loopback).

The ChatService here is the surface tests' fake (``tests.fake_chat_service``);
``test_discord_real_loop`` runs the same path with the real application, SQLite and nsjail.
"""

from __future__ import annotations

import asyncio

import discord

from adapters.discord.surface import (
    REACT_ANSWERED,
    REACT_RECEIVED,
    REACT_REFUSED,
    REACT_STOPPED,
)
from bot.config import AccessPolicy
from bot.surface import Coordinates, Incoming
from tests.discord_fakes import scripted_service
from tests.discord_harness import connected, dm, eventually
from tests.discord_standin import (
    BOT_ID,
    DM_CHANNEL_ID,
    GUILD_CHANNEL_ID,
    GUILD_ID,
    STRANGER_ID,
    USER_ID,
    message_payload,
)


async def test_a_dm_gets_typing_reactions_the_block_and_the_answer() -> None:
    service = scripted_service(answer="The disk is full of logs.")
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        message = dm("why is ci-3 full?")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        texts = fake.texts(DM_CHANNEL_ID)
        assert texts[0] == "Let me check."
        assert texts[1].startswith("**Block 1/1** · `python` · exit 0")
        assert texts[-1] == "The disk is full of logs."
        assert fake.reactions[0] == (message["id"], REACT_RECEIVED)
        # JSON text frames, API v10; discord.py asks for compression, which the stand-in
        # (like Discord, for a plain-JSON reply) may leave off: text frames are not inflated.
        assert fake.gateway_queries[0]["v"] == "10"
        assert fake.gateway_queries[0]["encoding"] == "json"
        assert DM_CHANNEL_ID in fake.typings
        (incoming,) = service.received
        assert incoming.coordinates == Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)
        assert incoming.message_key == message["id"]


async def test_a_reconnect_that_redelivers_the_message_does_not_answer_twice() -> None:
    service = scripted_service()
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        message = dm("why is ci-3 full?")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        posted = list(fake.sent)

        await fake.force_reconnect(redeliver=[message])
        await fake.wait_until(lambda: len(fake.resumes) == 1)
        await eventually(lambda: service.statuses == ["recorded", "duplicate"])

        assert fake.resumes[0]["session_id"] == "session-1"
        assert fake.identifies == 1  # it RESUMEd rather than starting a new session
        assert fake.sent == posted
        assert len(service.runs) == 1


async def test_a_user_outside_the_allowlist_is_refused_and_the_refusal_recorded() -> None:
    service = scripted_service()
    async with connected(service, AccessPolicy(allow_users=[USER_ID])) as running:
        fake = running.discord
        message = dm("run rm -rf / for me", author=STRANGER_ID)
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: len(fake.sent) == 1)
        assert fake.sent[0].content.startswith("Sorry, I can't take this request: user ")
        assert "allow_users" in fake.sent[0].content
        await fake.wait_until(lambda: (message["id"], REACT_REFUSED) in fake.reactions)
        ((incoming, reason),) = service.refused
        assert incoming.message_key == message["id"] and "allow_users" in reason
        assert service.runs == []


async def test_a_server_mention_is_answered_in_a_thread_on_that_message() -> None:
    service = scripted_service(answer="ci-3 is fine.")
    access = AccessPolicy(mention_guilds=[GUILD_ID])
    async with connected(service, access, guilds=[GUILD_ID]) as running:
        fake = running.discord
        message = message_payload(
            channel_id=GUILD_CHANNEL_ID,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> is ci-3 ok?",
        )
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        assert fake.threads == [(GUILD_CHANNEL_ID, message["id"], "is ci-3 ok?")]
        assert fake.texts(message["id"])[-1] == "ci-3 is fine."  # the thread has the message's id
        assert fake.texts(GUILD_CHANNEL_ID) == []
        (incoming,) = service.received
        assert incoming.coordinates == Coordinates(
            "discord", GUILD_ID, GUILD_CHANNEL_ID, message["id"]
        )


async def test_a_mention_inside_the_thread_continues_the_same_conversation() -> None:
    service = scripted_service(answer="ci-3 is fine.")
    access = AccessPolicy(mention_guilds=[GUILD_ID])
    async with connected(service, access, guilds=[GUILD_ID]) as running:
        fake = running.discord
        first = message_payload(
            channel_id=GUILD_CHANNEL_ID,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> is ci-3 ok?",
        )
        await fake.dispatch("MESSAGE_CREATE", first)
        await fake.wait_until(lambda: (first["id"], REACT_ANSWERED) in fake.reactions)
        follow = message_payload(
            channel_id=first["id"],  # the thread
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> and ci-4?",
        )
        await fake.dispatch("MESSAGE_CREATE", follow)
        await fake.wait_until(lambda: (follow["id"], REACT_ANSWERED) in fake.reactions)
        assert len(fake.threads) == 1  # no second thread
        assert fake.texts(first["id"]).count("ci-3 is fine.") == 2
        thread = Coordinates("discord", GUILD_ID, GUILD_CHANNEL_ID, first["id"])
        assert [i.coordinates for i in service.received] == [thread, thread]
        assert service.received[1].text == "and ci-4?"


async def test_without_the_right_to_open_threads_the_answer_goes_in_the_channel() -> None:
    service = scripted_service(answer="ci-3 is fine.")
    access = AccessPolicy(mention_guilds=[GUILD_ID])
    async with connected(service, access, guilds=[GUILD_ID], forbid_threads=True) as running:
        fake = running.discord
        message = message_payload(
            channel_id=GUILD_CHANNEL_ID,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> is ci-3 ok?",
        )
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        assert fake.threads == []
        assert fake.texts(GUILD_CHANNEL_ID)[-1] == "ci-3 is fine."


async def test_server_mentions_are_ignored_unless_enabled_for_that_server() -> None:
    service = scripted_service()
    async with connected(service, AccessPolicy(), guilds=[GUILD_ID]) as running:
        fake = running.discord
        mention = message_payload(
            channel_id=GUILD_CHANNEL_ID,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> hello",
        )
        await fake.dispatch("MESSAGE_CREATE", mention)
        follow = dm("cost")  # a later DM proves the mention was processed (and dropped) first
        await fake.dispatch("MESSAGE_CREATE", follow)
        await fake.wait_until(lambda: len(fake.sent) == 1)
        assert fake.sent[0].channel_id == DM_CHANNEL_ID
        assert fake.threads == [] and service.received == []


async def test_stop_cost_and_new_work_while_a_long_loop_runs() -> None:
    service = scripted_service(hold=asyncio.Event())
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        question = dm("tail the logs forever")
        await fake.dispatch("MESSAGE_CREATE", question)
        await fake.wait_until(lambda: any(t.startswith("**Block") for t in fake.texts()))
        await fake.dispatch("MESSAGE_CREATE", dm("cost"))
        await fake.wait_until(lambda: any("tokens in" in t for t in fake.texts()))
        await fake.dispatch("MESSAGE_CREATE", dm("stop"))
        await fake.wait_until(lambda: (question["id"], REACT_STOPPED) in fake.reactions)
        assert "Stopping." in fake.texts()
        assert fake.texts()[-1] == "Stopped, as asked."
        await fake.dispatch("MESSAGE_CREATE", dm("new"))
        await fake.wait_until(lambda: fake.texts()[-1].startswith("Started a fresh conversation"))
        assert service.renewed == [Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)]


async def test_output_too_long_for_five_messages_arrives_as_an_uploaded_file() -> None:
    stdout = "".join(f"log line {i}\n" for i in range(5000))
    service = scripted_service(stdout=stdout)
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        message = dm("show me the log")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        (with_file,) = [s for s in fake.sent if s.files]
        assert with_file.files == {"block-1-output.txt": stdout.encode()}
        assert "attached as `block-1-output.txt`" in with_file.content


async def test_a_429_is_left_to_discord_py_which_retries_and_the_message_arrives_once() -> None:
    service = scripted_service()
    async with connected(service, AccessPolicy(), rate_limit_first_post=True) as run:
        fake = run.discord
        message = dm("why?")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        assert fake.rate_limited == 1
        assert fake.texts().count("Let me check.") == 1


async def test_an_interrupted_loop_is_resumed_at_start_and_answers_in_its_dm() -> None:
    coordinates = Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)
    service = scripted_service(answer="Resumed answer.")
    interrupted = service.leave_interrupted(Incoming(coordinates, "m1", USER_ID, "disk?"))
    service.leave_interrupted(Incoming(Coordinates("slack", "T", "C", "1.2"), "m2", "U1", "hi"))
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        await fake.wait_until(lambda: "Resumed answer." in fake.texts(DM_CHANNEL_ID))
        await running.surface.wait_background()
        assert service.runs == [interrupted]


async def test_the_sharded_client_serves_dms_the_same_way() -> None:
    service = scripted_service(answer="Sharded answer.")
    async with connected(service, AccessPolicy(), sharded=True) as running:
        assert isinstance(running.client, discord.AutoShardedClient)
        fake = running.discord
        await fake.dispatch("MESSAGE_CREATE", dm("hi"))
        await fake.wait_until(lambda: "Sharded answer." in fake.texts(DM_CHANNEL_ID))
