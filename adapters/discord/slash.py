"""Discord slash commands: ``/ask``, ``/stop``, ``/cost``, ``/replay`` and ``/new``.

They work without the privileged Message Content intent. Each interaction is deferred
first (Discord wants an answer within 3 seconds), then handled:

- ``/ask question`` in a server channel posts the question as the deferred answer, opens a
  thread on it and runs the loop there; the thread is the conversation, so mentions in it
  (and further ``/ask``) continue it. In a conversation's thread (or a DM) it continues that
  conversation. The question is recorded (keyed by the interaction id) before the loop runs.
- the four others act on the conversation of the thread (or DM) they are used in.

They are registered per server by ``opsloop discord register-commands`` (``register``);
the server must also be in ``[discord] mention_guilds``, where opsloop answers at all.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from adapters.discord.inbound import PLATFORM
from adapters.discord.outbound import Outgoing, command_message
from bot.errors import OpsloopError, one_line
from bot.surface import Command, CommandName, Coordinates, Incoming

if TYPE_CHECKING:
    from adapters.discord.surface import DiscordSurface

log = logging.getLogger(__name__)
THREAD_NAME_CHARS = 90
COMMANDS: dict[str, str] = {
    "ask": "Ask opsloop a question (answered in a thread)",
    "stop": "Stop the loop running in this thread",
    "cost": "Tokens, cost and blocks of this thread's conversation",
    "replay": "The audit trail of this thread's conversation",
    "new": "Start a fresh conversation in this thread",
}
NOT_HERE = "Use this in a conversation's thread (start one with /ask or a mention)."
NOT_ENABLED = "opsloop is not enabled in this server ([discord] mention_guilds)."


@dataclass(frozen=True)
class Where:
    """Where a slash command was used, as plain values."""

    guild_id: str | None
    channel_id: str
    parent_id: str | None  # the thread's parent channel, when used in a thread


def conversation_at(where: Where) -> Coordinates | None:
    """The conversation a command used there acts on: a DM's, or a thread's; None in a
    server channel outside any thread (pure)."""
    if where.guild_id is None:
        return Coordinates(PLATFORM, "", where.channel_id, where.channel_id)
    if where.parent_id is not None:
        return Coordinates(PLATFORM, where.guild_id, where.parent_id, where.channel_id)
    return None


def where_of(interaction: discord.Interaction) -> Where:
    """The plain values of where an interaction happened."""
    channel = interaction.channel
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Where(
        guild_id=None if interaction.guild_id is None else str(interaction.guild_id),
        channel_id=str(interaction.channel_id or ""),
        parent_id=None if parent is None else str(parent),
    )


def command_tree(
    client: discord.Client, surface: DiscordSurface | None
) -> app_commands.CommandTree:
    """The slash commands, attached to ``client`` (its interactions reach them); without a
    surface only to register them."""
    tree = app_commands.CommandTree(client)
    slash = SlashCommands(surface)

    @tree.command(name="ask", description=COMMANDS["ask"])
    @app_commands.describe(question="What to ask")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await slash.ask(interaction, question)

    for name in ("stop", "cost", "replay", "new"):
        tree.add_command(
            app_commands.Command(
                name=name, description=COMMANDS[name], callback=_thread_command(slash, name)
            )
        )
    return tree


def _thread_command(slash: SlashCommands, name: str) -> Any:
    async def callback(interaction: discord.Interaction) -> None:
        await slash.command(interaction, CommandName(name))

    return callback


async def register(tree: app_commands.CommandTree, guild_ids: Iterable[int]) -> list[str]:
    """Register every slash command in each server (a bulk overwrite: Discord shows them at
    once, unlike global commands); the names registered."""
    names: list[str] = []
    for guild_id in guild_ids:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        names = [c.name for c in await tree.sync(guild=guild)]
    return names


class SlashCommands:
    """What each slash command does, through the surface's service and loop runner."""

    def __init__(self, surface: DiscordSurface | None) -> None:
        self._surface = surface

    @property
    def surface(self) -> DiscordSurface:
        assert self._surface is not None, "a tree made to register commands handles none"
        return self._surface

    @property
    def enabled(self) -> Collection[str]:
        return self.surface.mention_guilds

    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        """Defer, record the question, open a thread on it when needed, run the loop there."""
        await interaction.response.defer(thinking=True)
        where = where_of(interaction)
        if where.guild_id is not None and where.guild_id not in self.enabled:
            await _say(interaction, NOT_ENABLED)
            return
        user = str(interaction.user.id)
        shown = f"<@{user}> asked: {question}"[:1900]
        message = await _say(interaction, shown)
        channel: Any = interaction.channel
        coordinates = conversation_at(where)
        if coordinates is None:  # a server channel: the thread on this answer is the conversation
            if message is None or where.guild_id is None:
                return
            channel = await _thread_on(message, question, fallback=channel)
            thread = str(getattr(channel, "id", message.id))
            coordinates = Coordinates(PLATFORM, where.guild_id, where.channel_id, thread)
        incoming = Incoming(coordinates, f"slash:{interaction.id}", user, question)
        try:
            receipt = await self.surface.service.receive(incoming)
        except OpsloopError as exc:
            await _say(interaction, f"I could not record your question ({one_line(exc)}).")
            return
        if receipt.status == "refused":
            await _say(interaction, receipt.reply or "Sorry, no.")
        elif receipt.status == "recorded":
            await self.surface.run_loop(receipt.conversation_id, channel)

    async def command(self, interaction: discord.Interaction, name: CommandName) -> None:
        """Defer, then carry out a thread command where it was used."""
        await interaction.response.defer(thinking=True)
        where = where_of(interaction)
        if where.guild_id is not None and where.guild_id not in self.enabled:
            await _say(interaction, NOT_ENABLED)
            return
        coordinates = conversation_at(where)
        if coordinates is None:
            await _say(interaction, NOT_HERE)
            return
        user = str(interaction.user.id)
        incoming = Incoming(coordinates, f"slash:{interaction.id}", user, f"/{name.value}")
        try:
            reply = await self.surface.service.handle(Command(name, incoming))
        except OpsloopError as exc:
            await _say(interaction, f"That did not work: {one_line(exc)}")
            return
        await _say(interaction, command_message(reply))


async def _say(
    interaction: discord.Interaction, what: str | Outgoing
) -> discord.InteractionMessage | None:
    """Fill in the deferred answer (text, and files for a replay); None if Discord refused."""
    out = what if isinstance(what, Outgoing) else Outgoing(text=what)
    files = [discord.File(_bytes(a.content), filename=a.filename) for a in out.files]
    try:
        return await interaction.edit_original_response(
            content=out.text or None,
            attachments=files,
            allowed_mentions=discord.AllowedMentions.none(),
        )
    except discord.HTTPException as exc:
        log.warning("could not answer slash command %s: %s", interaction.id, exc)
        return None


def _bytes(content: bytes) -> Any:
    import io

    return io.BytesIO(content)


async def _thread_on(message: discord.Message, question: str, *, fallback: Any) -> Any:
    """A thread on the answer that shows the question; the channel if none can be opened."""
    name = question.splitlines()[0][:THREAD_NAME_CHARS] if question.strip() else "opsloop"
    try:
        return await message.create_thread(name=name or "opsloop")
    except (discord.HTTPException, ValueError) as exc:
        log.warning("could not open a thread for a slash /ask (%s); answering in the channel", exc)
        return fallback
