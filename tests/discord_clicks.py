"""Button clicks through the Discord stand-in: an ``INTERACTION_CREATE`` on the gateway, as
Discord sends it when someone clicks a button of a message the bot posted, and the three REST
calls a bot answers one with (the callback that defers it, the edit of the message the button
is on, and followups), recorded in order."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.discord_standin import (
    BOT_ID,
    GUILD_ID,
    TIMESTAMP,
    DiscordStandIn,
    Sent,
    _json,
    message_payload,
    new_id,
    user_payload,
)

APPLICATION_COMMAND = 2  # interaction type of a slash command
COMPONENT = 3  # interaction type of a button click
DEFERRED_UPDATE = 6  # the callback type of a component interaction deferred without a message
EPHEMERAL = 64  # message flag: only the clicker sees it
_tokens = itertools.count(1)


@dataclass
class Answered:
    """One call the bot made to answer an interaction."""

    kind: str  # "callback" | "edit" | "followup"
    token: str
    payload: dict[str, Any]


@dataclass
class InteractiveDiscordStandIn(DiscordStandIn):
    """The stand-in, with interactions: ``click`` sends one, ``answers`` shows the replies."""

    answered: list[Answered] = field(default_factory=list)
    registered: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # guild -> commands
    _channels: dict[str, str] = field(default_factory=dict)  # token -> channel of the button
    _guilds: dict[str, str] = field(default_factory=dict)  # token -> guild of a slash command

    def _routes(self, app: web.Application, api: str) -> None:
        app.router.add_post(f"{api}/interactions/{{id}}/{{token}}/callback", self._callback)
        app.router.add_patch(f"{api}/webhooks/{{app}}/{{token}}/messages/@original", self._edit)
        app.router.add_post(f"{api}/webhooks/{{app}}/{{token}}", self._followup)
        app.router.add_put(
            f"{api}/applications/{{app}}/guilds/{{guild}}/commands", self._register_commands
        )

    async def _register_commands(self, request: web.Request) -> web.Response:
        commands = await request.json()
        guild = request.match_info["guild"]
        self.registered[guild] = commands
        await self._changed_now()
        return _json(
            [
                {**c, "id": new_id(), "application_id": BOT_ID, "guild_id": guild, "version": "1"}
                for c in commands
            ]
        )

    async def slash(
        self,
        name: str,
        *,
        user: str,
        channel_id: str,
        question: str | None = None,
        thread_parent: str | None = None,
    ) -> str:
        """Use slash command ``/name`` as ``user`` in a server channel, or in a thread of
        ``thread_parent``; returns the interaction's token."""
        token = f"token-{next(_tokens)}"
        self._channels[token] = channel_id
        self._guilds[token] = GUILD_ID
        options = [] if question is None else [{"name": "question", "type": 3, "value": question}]
        data: dict[str, Any] = {
            "id": new_id(),
            "application_id": BOT_ID,
            "type": APPLICATION_COMMAND,
            "token": token,
            "version": 1,
            "attachment_size_limit": 10 * 1024 * 1024,
            "app_permissions": "0",
            "locale": "en-US",
            "entitlements": [],
            "channel_id": channel_id,
            "data": {
                "id": new_id(),
                "name": name,
                "type": 1,
                "options": options,
                "guild_id": GUILD_ID,
            },
        }
        data.update(_where(channel_id, user=user, parent=thread_parent, text_channel=True))
        await self.dispatch("INTERACTION_CREATE", data)
        return token

    def approval_messages(self, channel_id: str) -> list[Sent]:
        """Messages with buttons posted in a channel, in order."""
        return [s for s in self.sent if s.channel_id == channel_id and s.components]

    def answers(self, token: str, kind: str | None = None) -> list[Answered]:
        """The bot's answers to one interaction (of one kind), in order."""
        return [a for a in self.answered if a.token == token and kind in (None, a.kind)]

    async def click(
        self, sent: Sent, *, user: str, button: int = 0, thread_parent: str | None = None
    ) -> str:
        """Click button ``button`` (0: Approve, 1: Deny) of ``sent`` as ``user``; a DM unless
        ``thread_parent`` says the message is in a server thread. Returns the token."""
        custom_id = sent.components[0]["components"][button]["custom_id"]
        token = f"token-{next(_tokens)}"
        self._channels[token] = sent.channel_id
        message = message_payload(
            channel_id=sent.channel_id,
            author_id=BOT_ID,
            content=sent.content,
            message_id=sent.message_id,
            bot=True,
        )
        data: dict[str, Any] = {
            "id": new_id(),
            "application_id": BOT_ID,
            "type": COMPONENT,
            "token": token,
            "version": 1,
            "attachment_size_limit": 10 * 1024 * 1024,
            "app_permissions": "0",
            "locale": "en-US",
            "entitlements": [],
            "channel_id": sent.channel_id,
            "message": {**message, "components": sent.components},
            "data": {"custom_id": custom_id, "component_type": 2},
        }
        data.update(_where(sent.channel_id, user=user, parent=thread_parent))
        await self.dispatch("INTERACTION_CREATE", data)
        return token

    async def _callback(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        self.answered.append(Answered("callback", token, await request.json()))
        await self._changed_now()
        interaction = {
            "id": request.match_info["id"],
            "type": COMPONENT,
            "response_message_loading": False,
            "response_message_ephemeral": False,
        }
        return _json({"interaction": interaction})

    async def _edit(self, request: web.Request) -> web.Response:
        return await self._message("edit", request)

    async def _followup(self, request: web.Request) -> web.Response:
        return await self._message("followup", request)

    async def _message(self, kind: str, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            payload = json.loads(await part.text()) if part is not None else {}  # type: ignore[union-attr]
        else:
            payload = await request.json()
        self.answered.append(Answered(kind, token, payload))
        await self._changed_now()
        channel = self._channels.get(token, "")
        reply = message_payload(
            channel_id=channel,
            author_id=BOT_ID,
            content=payload.get("content") or "",
            bot=True,
            guild_id=self._guilds.get(token),
        )
        return _json({**reply, "components": payload.get("components") or []})


def _where(
    channel_id: str, *, user: str, parent: str | None, text_channel: bool = False
) -> dict[str, Any]:
    """Who clicked and the channel the button is in: a DM, or a thread of a server (or, with
    ``text_channel``, a server's text channel)."""
    if parent is None and not text_channel:
        return {
            "user": user_payload(user),
            "context": 1,
            "channel": {"id": channel_id, "type": 1, "recipients": [user_payload(user)]},
        }
    member = {
        "user": user_payload(user),
        "roles": [],
        "joined_at": TIMESTAMP,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "permissions": "0",
    }
    if parent is None:
        channel = {
            "id": channel_id,
            "type": 0,
            "guild_id": GUILD_ID,
            "name": "ops",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }
        return {"guild_id": GUILD_ID, "member": member, "context": 0, "channel": channel}
    thread = {
        "id": channel_id,
        "type": 11,
        "guild_id": GUILD_ID,
        "parent_id": parent,
        "name": "opsloop",
        "owner_id": BOT_ID,
        "message_count": 1,
        "member_count": 1,
        "rate_limit_per_user": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": TIMESTAMP,
            "locked": False,
        },
    }
    return {"guild_id": GUILD_ID, "member": member, "context": 0, "channel": thread}
