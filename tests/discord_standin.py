"""A local stand-in for Discord on loopback: the REST API and the gateway, for discord.py.

REST (under ``/api/v10``): ``/gateway/bot``, ``/users/@me``, ``/oauth2/applications/@me``,
``POST /channels/{id}/messages`` (JSON or multipart with files), ``/typing``, reactions,
threads on a message. Gateway (websocket, plain JSON text frames): HELLO, IDENTIFY -> READY
(plus GUILD_CREATE for the configured guilds), heartbeat ACK, dispatches on demand, and a
forced RECONNECT whose RESUME is answered by replaying chosen events and then RESUMED —
how Discord redelivers events after a reconnect.

Tests point discord.py at it by patching ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``; the product needs no such hook.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_ID = "100000000000000001"
USER_ID = "200000000000000002"
STRANGER_ID = "200000000000000003"
DM_CHANNEL_ID = "300000000000000004"
GUILD_ID = "400000000000000005"
GUILD_CHANNEL_ID = "500000000000000006"
BAD_TOKEN = "revoked-token"  # GET /users/@me answers 401 to it
TIMESTAMP = "2026-11-25T10:00:00.000000+00:00"

_ids = itertools.count(700000000000000000)


def new_id() -> str:
    """A fresh snowflake-sized id."""
    return str(next(_ids))


def user_payload(user_id: str, *, name: str = "someone", bot: bool = False) -> dict[str, Any]:
    """A Discord user object."""
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


def message_payload(
    *,
    channel_id: str,
    author_id: str,
    content: str,
    message_id: str | None = None,
    guild_id: str | None = None,
    bot: bool = False,
) -> dict[str, Any]:
    """A Discord message object (as MESSAGE_CREATE and POST /messages return it)."""
    data: dict[str, Any] = {
        "id": message_id or new_id(),
        "channel_id": channel_id,
        "type": 0,
        "content": content,
        "author": user_payload(author_id, bot=bot),
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "flags": 0,
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
    return data


def guild_payload(guild_id: str, channel_id: str) -> dict[str, Any]:
    """A GUILD_CREATE payload with one text channel."""
    return {
        "id": guild_id,
        "name": "ops",
        "icon": None,
        "owner_id": USER_ID,
        "unavailable": False,
        "member_count": 2,
        "large": False,
        "features": [],
        "roles": [],
        "emojis": [],
        "stickers": [],
        "members": [],
        "presences": [],
        "voice_states": [],
        "threads": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "channels": [
            {
                "id": channel_id,
                "type": 0,
                "name": "ops",
                "position": 0,
                "guild_id": guild_id,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
            }
        ],
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "afk_timeout": 300,
        "system_channel_flags": 0,
    }


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with exactly ``application/json`` (discord.py compares the header literally)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@dataclass
class Sent:
    """A message opsloop posted through the REST API."""

    channel_id: str
    content: str
    files: dict[str, bytes]
    allowed_mentions: dict[str, Any] | None = None  # as sent; None when the payload had none
    message_id: str = ""
    components: list[dict[str, Any]] = field(default_factory=list)  # buttons, as sent


@dataclass
class DiscordStandIn:
    """The fake Discord: start it, point discord.py at ``api_base`` and ``gateway_url``."""

    guilds: list[str] = field(default_factory=list)
    rate_limit_first_post: bool = False
    forbid_threads: bool = False  # answer 403, as for a bot without Create Public Threads
    sent: list[Sent] = field(default_factory=list)
    reactions: list[tuple[str, str]] = field(default_factory=list)  # (message id, emoji)
    typings: list[str] = field(default_factory=list)
    threads: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, message, name)
    identifies: int = 0
    gateway_queries: list[dict[str, str]] = field(default_factory=list)  # ?v=10&encoding=json…
    resumes: list[dict[str, Any]] = field(default_factory=list)
    rate_limited: int = 0
    hosted: dict[str, bytes] = field(default_factory=dict)  # attachment id -> its bytes
    fetched: list[str] = field(default_factory=list)  # attachment ids downloaded
    port: int = 0
    _runner: web.AppRunner | None = None
    _ws: web.WebSocketResponse | None = None
    _seq: int = 0
    _session: str = "session-1"
    _on_resume: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        api = "/api/v10"
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get(f"{api}/gateway/bot", self._gateway_bot)
        app.router.add_get(f"{api}/gateway", self._gateway_bot)
        app.router.add_get(f"{api}/users/@me", self._me)
        app.router.add_get(f"{api}/oauth2/applications/@me", self._application)
        app.router.add_post(f"{api}/channels/{{channel}}/messages", self._post_message)
        app.router.add_post(f"{api}/channels/{{channel}}/typing", self._typing)
        app.router.add_get("/attachments/{id}/{name}", self._attachment)
        app.router.add_put(
            f"{api}/channels/{{channel}}/messages/{{message}}/reactions/{{emoji}}/@me", self._react
        )
        app.router.add_post(
            f"{api}/channels/{{channel}}/messages/{{message}}/threads", self._thread
        )
        self._routes(app, api)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def _routes(self, app: web.Application, api: str) -> None:
        """More routes, for a stand-in that plays more of Discord."""

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test controls ------------------------------------------------------------------

    def host_attachment(
        self, name: str, data: bytes, *, size: int | None = None, port: int | None = None
    ) -> dict[str, Any]:
        """Serve ``data`` as an attachment; the attachment object a message carries
        (``size``: what it declares; ``port``: a URL on another loopback port)."""
        attachment_id = new_id()
        self.hosted[attachment_id] = data
        url = f"http://127.0.0.1:{port or self.port}/attachments/{attachment_id}/{name}"
        return {
            "id": attachment_id,
            "filename": name,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url,
            "content_type": "text/plain",
        }

    async def _attachment(self, request: web.Request) -> web.Response:
        self.fetched.append(request.match_info["id"])
        data = self.hosted.get(request.match_info["id"])
        return web.Response(status=404) if data is None else web.Response(body=data)

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 30.0) -> None:
        """Wait until ``predicate()`` holds (it is rechecked whenever the stand-in changes)."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout=timeout)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one DISPATCH event on the current gateway connection."""
        await self.wait_until(lambda: self._ws is not None and not self._ws.closed)
        assert self._ws is not None
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def force_reconnect(self, *, redeliver: list[dict[str, Any]]) -> None:
        """Send RECONNECT; when the client RESUMEs, replay ``redeliver`` as MESSAGE_CREATEs."""
        assert self._ws is not None
        self._on_resume = list(redeliver)
        await self._ws.send_str(json.dumps({"op": 7, "d": None}))

    def texts(self, channel_id: str | None = None) -> list[str]:
        return [s.content for s in self.sent if channel_id in (None, s.channel_id)]

    async def _changed_now(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- gateway ------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        self.gateway_queries.append(dict(request.query))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            payload = json.loads(msg.data)
            if payload["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif payload["op"] == 2:
                self.identifies += 1
                await self._ready(shard=payload["d"].get("shard"))
            elif payload["op"] == 6:
                self.resumes.append(payload["d"])
                for data in self._on_resume:
                    await self.dispatch("MESSAGE_CREATE", data)
                self._on_resume = []
                await self.dispatch("RESUMED", {})
            await self._changed_now()
        return ws

    async def _ready(self, *, shard: list[int] | None) -> None:
        ready: dict[str, Any] = {
            "v": 10,
            "user": user_payload(BOT_ID, name="opsloop", bot=True),
            "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": self._session,
            "resume_gateway_url": self.gateway_url,
            "private_channels": [],
            "application": {"id": BOT_ID, "flags": 0},
        }
        if shard is not None:  # a sharded client IDENTIFYs with [shard_id, shard_count]
            ready["shard"] = shard
        await self.dispatch("READY", ready)
        for guild in self.guilds:
            await self.dispatch("GUILD_CREATE", guild_payload(guild, GUILD_CHANNEL_ID))

    # -- REST ---------------------------------------------------------------------------

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == f"Bot {BAD_TOKEN}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        return _json(user_payload(BOT_ID, name="opsloop", bot=True))

    async def _application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": BOT_ID,
                "name": "opsloop",
                "icon": None,
                "description": "",
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": user_payload(USER_ID),
                "team": None,
                "verify_key": "00",
                "flags": 0,
                "rpc_origins": [],
            }
        )

    async def _post_message(self, request: web.Request) -> web.Response:
        if self.rate_limit_first_post and self.rate_limited == 0:
            self.rate_limited += 1
            return _json(
                {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
                status=429,
                headers={"Via": "1.1 google", "Retry-After": "1"},
            )
        channel = request.match_info["channel"]
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files[part.filename or ""] = bytes(await part.read())  # type: ignore[union-attr]
        else:
            payload = await request.json()
        content, mentions = payload.get("content") or "", payload.get("allowed_mentions")
        sent = message_payload(channel_id=channel, author_id=BOT_ID, content=content, bot=True)
        sent["components"] = payload.get("components") or []
        self.sent.append(
            Sent(channel, content, files, mentions, sent["id"], components=sent["components"])
        )
        await self._changed_now()
        return _json(sent)

    async def _typing(self, request: web.Request) -> web.Response:
        self.typings.append(request.match_info["channel"])
        await self._changed_now()
        return web.Response(status=204)

    async def _react(self, request: web.Request) -> web.Response:
        self.reactions.append((request.match_info["message"], request.match_info["emoji"]))
        await self._changed_now()
        return web.Response(status=204)

    async def _thread(self, request: web.Request) -> web.Response:
        if self.forbid_threads:
            return _json({"message": "Missing Permissions", "code": 50013}, status=403)
        body = await request.json()
        channel, message = request.match_info["channel"], request.match_info["message"]
        self.threads.append((channel, message, body["name"]))
        await self._changed_now()
        thread = {  # a thread started on a message takes the message's id
            "id": message,
            "type": 11,
            "guild_id": GUILD_ID,
            "parent_id": channel,
            "name": body["name"],
            "owner_id": BOT_ID,
            "message_count": 0,
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
        # As Discord does (GUILDS intent), tell the gateway about the new thread too.
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread)
