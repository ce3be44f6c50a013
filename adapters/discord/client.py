"""The discord.py client: minimal intents, one gateway connection or several shards.

Intents: ``dm_messages`` always; ``guilds`` and ``guild_messages`` only when mentions are
enabled for some server (``[discord] mention_guilds``). None of them is privileged: Discord
delivers message content without the privileged Message Content intent for DMs, for
messages that mention the bot, and for the bot's own messages — exactly what opsloop reads.
Slash commands (``adapters.discord.slash``) are interactions: they need no intent at all.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import discord

from adapters.discord.slash import command_tree
from adapters.discord.surface import DiscordSurface

log = logging.getLogger(__name__)


def intents_for(mention_guilds: Collection[str]) -> discord.Intents:
    """The smallest set of gateway intents: DMs, and server messages where mentions are on."""
    intents = discord.Intents.none()
    intents.dm_messages = True
    if mention_guilds:
        intents.guilds = True  # channel and thread cache: needed to open a thread on a message
        intents.guild_messages = True
    return intents


class _Handlers:
    """Event handlers shared by the single-connection and the sharded client."""

    def __init__(
        self, *, surface: DiscordSurface, resume_at_ready: bool = True, **options: Any
    ) -> None:
        # Cooperative: the next class in the MRO is discord.Client or AutoShardedClient.
        super().__init__(intents=intents_for(surface.mention_guilds), **options)  # type: ignore[call-arg]
        self.surface = surface
        self.resume_at_ready = resume_at_ready
        self._resumed_once = False

    async def on_message(self, message: discord.Message) -> None:
        """Every MESSAGE_CREATE the intents let through."""
        me = self.user  # type: ignore[attr-defined]  # provided by discord.Client
        if me is None:
            return
        await self.surface.handle(message, me=me.id)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Every INTERACTION_CREATE: clicks on the Approve and Deny buttons."""
        if interaction.type is discord.InteractionType.component:
            await self.surface.click(interaction)

    async def on_ready(self) -> None:
        """Resume interrupted loops and start the approval watcher, once per process (READY
        repeats after a new session)."""
        log.info("connected to Discord as %s", self.user)  # type: ignore[attr-defined]
        if self.resume_at_ready and not self._resumed_once:
            self._resumed_once = True
            await self.surface.resume_interrupted(self)  # type: ignore[arg-type]
        self.surface.watch_approvals(self)  # type: ignore[arg-type]  # once: it checks

    async def close(self) -> None:
        """Stop the approval watcher, then disconnect."""
        await self.surface.stop_watching()
        await super().close()  # type: ignore[misc]


class OpsloopClient(_Handlers, discord.Client):
    """One gateway connection: enough for a bot in up to 2,500 servers."""


class OpsloopShardedClient(_Handlers, discord.AutoShardedClient):
    """Several gateway connections (shards) in one process, as Discord requires at scale."""


def make_client(
    surface: DiscordSurface, *, shards: int | None = None, sharded: bool = False, **options: Any
) -> discord.Client:
    """A client for ``surface``: sharded when ``sharded`` or ``shards`` is given.

    ``shards=None`` with ``sharded=True`` lets Discord recommend the count (GET /gateway/bot).
    """
    # opsloop never looks a message up again (no edit or delete handling): skip the
    # 1,000-message cache discord.py keeps by default.
    options.setdefault("max_messages", None)
    # Every send passes AllowedMentions.none() too; as the client's default it also covers
    # any send a later change forgets to give it: model or block text never pings anyone.
    options.setdefault("allowed_mentions", discord.AllowedMentions.none())
    client: discord.Client
    if sharded or shards is not None:
        if shards is not None:
            options["shard_count"] = shards
        client = OpsloopShardedClient(surface=surface, **options)
    else:
        client = OpsloopClient(surface=surface, **options)
    command_tree(client, surface)  # /ask, /stop, /cost, /replay, /new (see adapters.discord.slash)
    return client
