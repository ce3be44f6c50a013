"""Slack events in: a platform event becomes an ``Incoming`` message or a thread command, and a
click on an approval message's button becomes a ``Decision``.

Pure functions, no I/O. The message key is the Slack message's own identity
(``channel/ts``) rather than the envelope's ``event_id``: a redelivery keeps both, but a
mention inside a thread can also arrive as a plain ``message`` event with another
``event_id``, and keying on the message makes that second copy a duplicate too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from adapters.slack.files import SlackFile, files_of
from adapters.slack.outbound import APPROVE_ACTION, DENY_ACTION
from bot.surface import CommandName, Coordinates, Decision, Incoming, parse_command

EventKind = Literal["mention", "message"]
ATTACHED_ONLY = "(files attached, no text)"  # the text of a message that is only files
# Subtypes that are still a person writing to us; every other subtype (edits, deletes,
# joins, bot posts …) is ignored explicitly.
_PERSON_SUBTYPES = frozenset({"file_share", "thread_broadcast"})


@dataclass(frozen=True)
class Ignored:
    """An event the bot deliberately does nothing with, and why (for debug logs)."""

    reason: str


@dataclass(frozen=True)
class Inbound:
    """A person's message addressed to the bot, and where to answer it."""

    incoming: Incoming
    command: CommandName | None  # a thread command instead of a message for the model
    channel: str
    thread_ts: str  # the thread to answer in (the message itself when it starts one)
    message_ts: str  # the person's message, which gets the reactions
    needs_thread_check: bool = False  # a plain thread reply: only answer threads we are in
    files: tuple[SlackFile, ...] = ()  # attached to the message, to download after recording
    assistant_thread: bool = False  # a DM thread: Slack's AI app surface (as Bolt tells them)

    @property
    def coordinates(self) -> Coordinates:
        """The conversation's coordinates."""
        return self.incoming.coordinates


def strip_mentions(text: str, *, bot_user_id: str) -> str:
    """The text without mentions of the bot, with Slack's HTML escapes undone."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", "", text)
    # Slack escapes exactly these three in message text.
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.strip()


def inbound_from_event(
    event: Mapping[str, Any], *, kind: EventKind, team_id: str, bot_user_id: str
) -> Inbound | Ignored:
    """Translate an ``app_mention`` or ``message`` event into what the bot should do."""
    subtype = event.get("subtype")
    if subtype in ("message_changed", "message_deleted"):
        return Ignored(f"{subtype}: edits and deletes do not change a recorded conversation")
    if event.get("bot_id") or subtype == "bot_message" or event.get("bot_profile"):
        return Ignored("a bot's message")
    user = str(event.get("user") or "")
    if not user:
        return Ignored("no author")
    if user == bot_user_id:
        return Ignored("our own message")
    if subtype is not None and subtype not in _PERSON_SUBTYPES:
        return Ignored(f"subtype {subtype}")
    if "edited" in event:
        return Ignored("an edited message")
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    if not channel or not ts:
        return Ignored("no channel or timestamp")
    raw_text = str(event.get("text") or "")
    thread_ts = str(event.get("thread_ts") or "") or ts
    needs_check = False
    if kind == "message" and event.get("channel_type") != "im":
        if bot_user_id and f"<@{bot_user_id}" in raw_text:
            return Ignored("a mention: handled by its app_mention event")
        if not event.get("thread_ts"):
            return Ignored("a channel message not addressed to the bot")
        needs_check = True
    text = strip_mentions(raw_text, bot_user_id=bot_user_id)
    files = files_of(event)
    if not text and not files:
        return Ignored("an empty message")
    incoming = Incoming(
        coordinates=Coordinates(
            platform="slack", workspace=team_id, channel=channel, thread=thread_ts
        ),
        message_key=f"{channel}/{ts}",
        author=user,
        text=text or ATTACHED_ONLY,
    )
    return Inbound(
        incoming=incoming,
        command=parse_command(text) if not files else None,
        channel=channel,
        thread_ts=thread_ts,
        message_ts=ts,
        needs_thread_check=needs_check,
        files=files,
        assistant_thread=kind == "message"
        and event.get("channel_type") == "im"
        and bool(event.get("thread_ts")),
    )


@dataclass(frozen=True)
class Click:
    """A click on an approval message's Approve or Deny button, and where that message is."""

    decision: Decision
    channel: str
    thread_ts: str  # the conversation's thread, as the message path keys it
    message_ts: str  # the approval message itself (updated in place)
    blocks: tuple[dict[str, Any], ...]  # its blocks as Slack shows them (the code is kept)


def click_from_action(body: Mapping[str, Any], *, team_id: str = "") -> Click | Ignored:
    """Translate a ``block_actions`` payload (a click on ``opsloop_approve``/``opsloop_deny``).

    The coordinates are the message path's: the team, the channel, and the thread the clicked
    message sits in (its ``thread_ts``; a message outside a thread is its own). So a click
    decides only a request of the conversation in that very thread: a payload carrying
    another thread's request id finds nothing there. Who clicked is the payload's user, which
    Slack signs; whether they may approve is the service's decision."""
    actions = body.get("actions") or [{}]
    action = actions[0] if isinstance(actions[0], Mapping) else {}
    action_id = str(action.get("action_id") or "")
    if action_id not in (APPROVE_ACTION, DENY_ACTION):
        return Ignored(f"not an approval button: {action_id!r}")
    user = str((body.get("user") or {}).get("id") or "")
    request_id = str(action.get("value") or "")
    message = body.get("message") or {}
    container = body.get("container") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    message_ts = str(container.get("message_ts") or message.get("ts") or "")
    if not user or not request_id or not channel or not message_ts:
        return Ignored("a click without a user, a request, a channel or a message")
    if container.get("is_ephemeral"):
        return Ignored("a click on an ephemeral message")
    thread_ts = str(message.get("thread_ts") or container.get("thread_ts") or message_ts)
    team = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")
    coordinates = Coordinates(
        platform="slack", workspace=team or team_id, channel=channel, thread=thread_ts
    )
    decision = Decision(
        coordinates=coordinates,
        by=user,
        approve=action_id == APPROVE_ACTION,
        request_id=request_id,
    )
    blocks = tuple(b for b in message.get("blocks") or () if isinstance(b, Mapping))
    return Click(
        decision=decision,
        channel=channel,
        thread_ts=thread_ts,
        message_ts=message_ts,
        blocks=tuple(dict(b) for b in blocks),
    )
