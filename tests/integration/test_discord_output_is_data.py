"""No block, model or user text pings anyone on Discord: every message carries
``allowed_mentions = {"parse": []}`` (what discord.py serialises for ``AllowedMentions.none()``),
checked on the REST stand-in for every way opsloop posts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.discord.surface import REACT_ANSWERED, REACT_FAILED, REACT_REFUSED
from bot.config import AccessPolicy
from bot.surface import Incoming, Receipt
from tests.discord_fakes import scripted_service
from tests.discord_harness import connected, dm
from tests.discord_standin import (
    BOT_ID,
    GUILD_CHANNEL_ID,
    GUILD_ID,
    STRANGER_ID,
    USER_ID,
    DiscordStandIn,
    message_payload,
)
from tests.fake_chat_service import FakeChatService
from tests.hostile import DISCORD_ATTACK

NONE = {"parse": []}


def assert_nothing_pings(fake: DiscordStandIn) -> None:
    assert fake.sent
    for sent in fake.sent:
        assert sent.allowed_mentions == NONE, sent


async def test_a_block_and_an_answer_that_ping_everyone_are_sent_without_mentions() -> None:
    service = scripted_service(answer=f"Done {DISCORD_ATTACK}", stdout=f"{DISCORD_ATTACK}\n")
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        message = dm(f"say {DISCORD_ATTACK}")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        assert any(DISCORD_ATTACK in t for t in fake.texts() if t.startswith("**Block"))
        assert fake.texts()[-1] == f"Done {DISCORD_ATTACK}"
        assert_nothing_pings(fake)
        assert running.client.allowed_mentions is not None
        assert running.client.allowed_mentions.to_dict() == NONE  # the client's default too


async def test_output_sent_as_a_file_carries_no_mentions_either() -> None:
    stdout = "".join(f"{DISCORD_ATTACK} {i}\n" for i in range(3000))
    service = scripted_service(stdout=stdout, answer=DISCORD_ATTACK)
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        message = dm("show me")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        assert any(s.files for s in fake.sent)  # multipart: allowed_mentions in payload_json
        assert_nothing_pings(fake)


async def test_a_mention_in_a_server_answers_in_its_thread_without_mentions() -> None:
    service = scripted_service(answer=DISCORD_ATTACK, stdout=DISCORD_ATTACK)
    access = AccessPolicy(mention_guilds=[GUILD_ID])
    async with connected(service, access, guilds=[GUILD_ID]) as running:
        fake = running.discord
        message = message_payload(
            channel_id=GUILD_CHANNEL_ID,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            content=f"<@{BOT_ID}> {DISCORD_ATTACK}",
        )
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
        assert fake.texts(message["id"])[-1] == DISCORD_ATTACK
        assert_nothing_pings(fake)


@dataclass
class Hostile(FakeChatService):
    """Fails or refuses with text a user (or a library's error) chose."""

    fail: bool = False

    async def receive(self, incoming: Incoming) -> Receipt:
        if self.fail:
            raise RuntimeError(f"store said {incoming.text}")
        return await super().receive(incoming)

    async def record_refusal(self, incoming: Incoming, *, reason: str) -> Receipt:
        receipt = await super().record_refusal(incoming, reason=reason)
        return Receipt(receipt.conversation_id, receipt.status, f"No: {incoming.text}")


async def test_refusals_errors_and_commands_are_sent_without_mentions() -> None:
    service = Hostile()
    async with connected(service, AccessPolicy(allow_users=[USER_ID])) as running:
        fake = running.discord
        refused = dm(DISCORD_ATTACK, author=STRANGER_ID)
        await fake.dispatch("MESSAGE_CREATE", refused)
        await fake.wait_until(lambda: (refused["id"], REACT_REFUSED) in fake.reactions)
        service.fail = True
        failed: dict[str, Any] = dm(DISCORD_ATTACK)
        await fake.dispatch("MESSAGE_CREATE", failed)
        await fake.wait_until(lambda: (failed["id"], REACT_FAILED) in fake.reactions)
        await fake.dispatch("MESSAGE_CREATE", dm("cost"))
        await fake.wait_until(lambda: len(fake.sent) == 3)
        assert fake.texts()[:2] == [
            f"No: {DISCORD_ATTACK}",
            f"I could not record your message (store said {DISCORD_ATTACK}). Please send it again.",
        ]
        assert_nothing_pings(fake)
