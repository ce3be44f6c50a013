"""Runs an opsloop Discord client against the local Discord stand-in, for tests and bench."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket

from adapters.discord.client import make_client
from adapters.discord.surface import DiscordSurface
from bot.config import AccessPolicy
from bot.ports import ChatService
from tests.discord_standin import DM_CHANNEL_ID, USER_ID, DiscordStandIn, message_payload
from tests.fake_chat_service import FakeChatService


@dataclass
class Running:
    """A stand-in Discord with an opsloop client connected to it."""

    discord: DiscordStandIn
    client: discord.Client
    surface: DiscordSurface


async def eventually(predicate: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Wait for a condition of our own objects (the fake service), polling."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def connected(
    service: ChatService,
    access: AccessPolicy,
    *,
    guilds: list[str] | None = None,
    rate_limit_first_post: bool = False,
    forbid_threads: bool = False,
    sharded: bool = False,
    standin_class: type[DiscordStandIn] = DiscordStandIn,
) -> AsyncIterator[Running]:
    """Start the stand-in, point discord.py at it, and run an opsloop client until READY."""
    standin = standin_class(
        guilds=guilds or [],
        rate_limit_first_post=rate_limit_first_post,
        forbid_threads=forbid_threads,
    )
    await standin.start()
    if isinstance(service, FakeChatService) and not service.access:
        service.access = {"discord": access}  # who may use the bot is the service's decision
    surface = DiscordSurface(service=service, mention_guilds=access.mention_guilds)
    client = make_client(surface, sharded=sharded, guild_ready_timeout=0.05)
    try:
        with redirected(standin):
            task = asyncio.create_task(client.start("test-token"))
            try:
                await asyncio.wait_for(client.wait_until_ready(), timeout=30)
                yield Running(discord=standin, client=client, surface=surface)
            finally:
                await client.close()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    finally:
        await standin.close()


@contextlib.contextmanager
def redirected(standin: DiscordStandIn) -> Iterator[None]:
    """Point discord.py at the stand-in; only tests do this, the product needs no such hook."""
    saved = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = standin.api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


def dm(content: str, *, author: str = USER_ID) -> dict[str, Any]:
    """A MESSAGE_CREATE payload of a DM from ``author``."""
    return message_payload(channel_id=DM_CHANNEL_ID, author_id=author, content=content)
