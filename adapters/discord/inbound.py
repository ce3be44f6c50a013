"""Discord message -> command or ``Incoming``, and button click -> ``Decision`` (pure).

The glue turns a ``discord.Message`` into ``MessageFacts`` (plain values) and this module
decides what it means: nothing for opsloop (``Ignore``), one of the thread commands
(``bot.surface.Command``), or a question for the loop (``Ask``). Whether the author may use
the bot is the application's decision, not this module's.

Coordinates: a DM is its own conversation, keyed by the DM channel id. A mention in a
server channel starts a thread on the mentioning message, and a thread started from a
message has that message's id, so the mention and later mentions inside the thread map to
the same coordinates ``(guild, parent channel, thread id)``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from adapters.discord.files import FileFacts
from adapters.discord.outbound import APPROVE_PREFIX, DENY_PREFIX
from bot.surface import Command, Coordinates, Incoming, parse_command
from bot.surface import Decision as ApprovalDecision

PLATFORM = "discord"
ATTACHED_ONLY = "(files attached, no text)"  # the text of a message that is only files


@dataclass(frozen=True)
class MessageFacts:
    """What opsloop needs to know about one Discord message, as plain values."""

    message_id: str
    author_id: str
    author_is_bot: bool
    content: str
    guild_id: str | None  # None in a DM
    channel_id: str  # the thread's id when the message is in a thread
    parent_id: str | None  # the thread's parent channel, else None
    mentions_me: bool
    is_system: bool = False  # pins, joins, "thread created" and other system messages
    files: tuple[FileFacts, ...] = ()  # its attachments


@dataclass(frozen=True)
class Ignore:
    """Not for opsloop: show nothing, record nothing."""

    reason: str


@dataclass(frozen=True)
class Ask:
    """A question for the loop; ``start_thread`` when the answer goes in a new thread."""

    incoming: Incoming
    start_thread: bool
    files: tuple[FileFacts, ...] = ()  # to download into the inbox once it is recorded


Decision = Ignore | Command | Ask


def _strip_mentions(content: str, me: str) -> str:
    return re.sub(rf"<@!?{re.escape(me)}>", " ", content).strip()


def _coordinates(facts: MessageFacts) -> tuple[Coordinates, bool]:
    """Where the conversation lives, and whether a thread must be started for it."""
    if facts.guild_id is None:
        return Coordinates(PLATFORM, "", facts.channel_id, facts.channel_id), False
    if facts.parent_id is not None:
        return Coordinates(PLATFORM, facts.guild_id, facts.parent_id, facts.channel_id), False
    return Coordinates(PLATFORM, facts.guild_id, facts.channel_id, facts.message_id), True


def decide(facts: MessageFacts, *, me: str, mention_guilds: Collection[str]) -> Decision:
    """What a Discord message means for opsloop."""
    if facts.author_is_bot or facts.author_id == me:
        return Ignore("written by a bot")
    if facts.is_system:
        return Ignore("a system message")
    if facts.guild_id is not None:
        if not facts.mentions_me:
            return Ignore("a server message that does not mention opsloop")
        if facts.guild_id not in mention_guilds:
            return Ignore("mentions are not enabled for this server ([discord] mention_guilds)")
    text = _strip_mentions(facts.content, me)
    coordinates, start_thread = _coordinates(facts)
    incoming = Incoming(
        coordinates=coordinates,
        message_key=facts.message_id,
        author=facts.author_id,
        text=text or ATTACHED_ONLY,
    )
    if not text and not facts.files:
        return Ignore("no text (only stickers or an empty mention)")
    name = parse_command(text) if not facts.files else None
    if name is not None and start_thread:
        return Ignore("a command outside any conversation (use it in the DM or the thread)")
    if name is not None:
        return Command(name=name, incoming=incoming)
    return Ask(incoming=incoming, start_thread=start_thread, files=facts.files)


@dataclass(frozen=True)
class ClickFacts:
    """What opsloop needs to know about one button click (a component interaction)."""

    custom_id: str
    user_id: str
    guild_id: str | None  # None in a DM
    channel_id: str  # the thread's id when the button is in a thread
    parent_id: str | None  # the thread's parent channel, else None


def click_decision(facts: ClickFacts) -> ApprovalDecision | Ignore:
    """What a click on ``opsloop_approve:<id>`` / ``opsloop_deny:<id>`` asks for.

    The coordinates are the message path's for the channel the button is in: a DM, or a
    server thread under its parent channel. So a click decides only a request of the
    conversation in that DM or thread; whether the clicker may decide is the service's call.
    """
    approve = facts.custom_id.startswith(APPROVE_PREFIX)
    if not approve and not facts.custom_id.startswith(DENY_PREFIX):
        return Ignore(f"not an approval button: {facts.custom_id[:100]!r}")
    request_id = facts.custom_id.partition(":")[2]
    if not request_id or not facts.user_id:
        return Ignore("an approval click without a request or a user")
    if facts.guild_id is None:
        where = Coordinates(PLATFORM, "", facts.channel_id, facts.channel_id)
    elif facts.parent_id is not None:
        where = Coordinates(PLATFORM, facts.guild_id, facts.parent_id, facts.channel_id)
    else:  # opsloop's requests live in DMs and threads: none can be waiting here
        where = Coordinates(PLATFORM, facts.guild_id, facts.channel_id, facts.channel_id)
    return ApprovalDecision(
        coordinates=where, by=facts.user_id, approve=approve, request_id=request_id
    )
