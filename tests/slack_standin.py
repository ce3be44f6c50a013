"""A real local HTTP server that plays Slack's Web API, and signed Events API requests.

The stand-in answers ``auth.test``, ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``reactions.add``, files upload v2 (``files.getUploadURLExternal``,
the upload URL itself, ``files.completeUploadExternal``),
``chat.startStream/appendStream/stopStream``, ``assistant.threads.setStatus``,
``setSuggestedPrompts`` and ``setTitle``, and serves private files (``host_file``); it
records every call and can answer a method with 429
and ``Retry-After`` a given number of times. Shared by the integration, e2e and bench code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"


@dataclass
class Call:
    """One Web API call as the stand-in received it."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class SlackStandIn:
    """Slack's Web API on loopback; ``base_url`` is what ``SLACK_API_URL`` should be."""

    def __init__(self, *, streaming: bool = True, assistant_status: bool = True) -> None:
        self.streaming = streaming
        self.assistant_status = assistant_status
        self.calls: list[Call] = []
        self.uploads: dict[str, bytes] = {}
        self.hosted: dict[str, tuple[bytes, str]] = {}  # file id -> (body, content type)
        self.downloads: list[str | None] = []  # the Authorization header of each download
        self._throttle: dict[str, list[int]] = {}  # method -> [times left, retry-after seconds]
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._changed = asyncio.Event()
        self.sockets: list[web.WebSocketResponse] = []  # Socket Mode connections
        self.socket_acks: dict[str, float] = {}  # envelope_id -> when its ack arrived

    @property
    def base_url(self) -> str:
        """The Web API base URL, ending with a slash as slack_sdk expects."""
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/api/{method}", self._api),
                web.post("/upload/{file_id}", self._upload),
                web.get("/files-pri/{file_id}/{name}", self._download),
                web.get("/socket", self._socket),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``Retry-After``."""
        self._throttle[method] = [times, retry_after]

    # -- queries -------------------------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        """The recorded calls of ``method``."""
        return [c for c in self.calls if c.method == method]

    def posts_in(self, channel: str, thread_ts: str) -> list[Call]:
        """Messages posted (or streams started) in one thread."""
        return [
            c
            for c in self.calls
            if c.method in ("chat.postMessage", "chat.startStream")
            and c.params.get("channel") == channel
            and c.params.get("thread_ts") == thread_ts
        ]

    def streams_in(self, channel: str, thread_ts: str) -> list[str]:
        """The full text of each message streamed into a thread, in order."""
        texts: dict[str, str] = {}
        for c in self.calls:
            p = c.params
            if (
                c.method == "chat.startStream"
                and "_ts" in p  # a refused start made no message
                and (p.get("channel"), p.get("thread_ts")) == (channel, thread_ts)
            ):
                texts[p["_ts"]] = str(p.get("markdown_text", ""))
            elif c.method == "chat.appendStream" and p.get("ts") in texts:
                texts[p["ts"]] += str(p.get("markdown_text", ""))
        return list(texts.values())

    def thread_text(self, channel: str, thread_ts: str) -> str:
        """Everything shown in a thread: posts with their blocks, streams, file titles."""
        out: list[str] = []
        for c in self.calls:
            p = c.params
            if c.method == "chat.postMessage" and (p.get("channel"), p.get("thread_ts")) == (
                channel,
                thread_ts,
            ):
                out.append(str(p.get("text", "")))
                out.append(json.dumps(p.get("blocks", "")))
            elif c.method == "files.completeUploadExternal" and p.get("thread_ts") == thread_ts:
                out.append(json.dumps(p.get("files", "")))
        out.extend(self.streams_in(channel, thread_ts))
        return "\n".join(out)

    def reactions(self, channel: str, ts: str) -> list[str]:
        """Reaction names added to one message, in order."""
        return [
            c.params["name"]
            for c in self.of("reactions.add")
            if c.params.get("channel") == channel and c.params.get("timestamp") == ts
        ]

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
        """Wait until ``predicate()`` holds (re-checked after every call), or fail."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting; calls so far: {[c.method for c in self.calls]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.2))

    # -- handlers ------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if "json" in ctype and body:
            params.update(json.loads(body))
        elif body:
            params.update(parse_qsl(body.decode()))
        for key in ("blocks", "files"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        throttle = self._throttle.get(method)
        if throttle and throttle[0] > 0:
            throttle[0] -= 1
            self.calls.append(Call(method=method + ":429", params=params))
            self._changed.set()
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(throttle[1])},
            )
        reply = self._reply(method, params, request)
        self.calls.append(Call(method=method, params=params))
        self._changed.set()
        return web.json_response(reply)

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.000100"

    def _reply(self, method: str, p: dict[str, Any], request: web.Request) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://standin.slack/",
                "team": "Stand-in",
                "user": "opsloop",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        if method in ("chat.postMessage", "chat.startStream"):
            if method == "chat.startStream" and not self.streaming:
                return {"ok": False, "error": "unknown_method"}
            ts = self._next_ts()
            p["_ts"] = ts
            return {
                "ok": True,
                "channel": p.get("channel"),
                "ts": ts,
                "message": {"text": p.get("text", "")},
            }
        if method in ("chat.appendStream", "chat.stopStream", "chat.update"):
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts")}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://{request.host}/socket"}
        if method == "reactions.add":
            return {"ok": True}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method in ("assistant.threads.setSuggestedPrompts", "assistant.threads.setTitle"):
            return {"ok": True} if self.assistant_status else {"ok": False, "error": "not_allowed"}
        if method == "assistant.threads.setStatus":
            return {"ok": True} if self.assistant_status else {"ok": False, "error": "not_allowed"}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._files):04d}"
            host = request.host
            return {"ok": True, "file_id": file_id, "upload_url": f"http://{host}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = p.get("files") or []
            return {
                "ok": True,
                "files": [{"id": f.get("id"), "title": f.get("title")} for f in files],
            }
        return {"ok": False, "error": "unknown_method"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self._changed.set()
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {}})
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(frame.data)
                if "envelope_id" in data:
                    self.socket_acks[data["envelope_id"]] = time.monotonic()
                    self._changed.set()
        self.sockets.remove(ws)
        return ws

    async def push_event(
        self, body: dict[str, Any], *, envelope_id: str, retry_attempt: int = 0
    ) -> None:
        """Send an Events API payload over the Socket Mode connection, as Slack does."""
        await self.wait_for(lambda: bool(self.sockets))
        await self.sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
                "payload": body,
            }
        )

    def host_file(
        self,
        name: str,
        data: bytes,
        *,
        mimetype: str = "text/plain",
        login_page: bool = False,
        size: int | None = None,
    ) -> dict[str, Any]:
        """Serve ``data`` as a private file; the file object a message event carries.

        ``login_page``: the download answers Slack's sign-in HTML instead, as Slack does for a
        token without ``files:read``. ``size``: what the event declares (default: the truth).
        """
        file_id = f"F{next(self._files):04d}"
        body = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>" if login_page else data
        self.hosted[file_id] = (body, "text/html; charset=utf-8" if login_page else mimetype)
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "size": len(data) if size is None else size,
            "url_private": f"http://127.0.0.1:{self.port}/files-pri/{file_id}/{name}",
            "url_private_download": f"http://127.0.0.1:{self.port}/files-pri/{file_id}/{name}",
        }

    def uploaded(self) -> dict[str, bytes]:
        """Uploaded files by the name given at completion (files upload v2)."""
        names = {}
        for call in self.of("files.completeUploadExternal"):
            for f in call.params.get("files") or []:
                names[f.get("id")] = f.get("title")
        return {names.get(fid, fid): data for fid, data in self.uploads.items()}

    async def _download(self, request: web.Request) -> web.Response:
        self.downloads.append(request.headers.get("Authorization"))
        self._changed.set()
        hosted = self.hosted.get(request.match_info["file_id"])
        if hosted is None:
            return web.Response(status=404)
        return web.Response(body=hosted[0], headers={"Content-Type": hosted[1]})

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        self.uploads[file_id] = await request.read()
        self.calls.append(Call(method="upload", params={"file_id": file_id}))
        self._changed.set()
        return web.Response(text=f"OK - {len(self.uploads[file_id])}")


# -- the Events API side ---------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: str) -> str:
    """Slack's request signature: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def envelope(event: dict[str, Any], *, event_id: str, team: str = TEAM) -> dict[str, Any]:
    """An ``event_callback`` body around ``event``."""
    return {
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True}],
    }


def mention(
    *, channel: str, ts: str, text: str, user: str = "U0ALICE", thread_ts: str | None = None
) -> dict[str, Any]:
    """An ``app_mention`` event."""
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "team": TEAM,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message(
    *,
    channel: str,
    ts: str,
    text: str,
    user: str = "U0ALICE",
    thread_ts: str | None = None,
    channel_type: str = "channel",
    **extra: Any,
) -> dict[str, Any]:
    """A ``message`` event (thread reply, DM, edit, bot post … via ``extra``)."""
    event = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
        "team": TEAM,
        **extra,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


class EventSender:
    """Posts signed Events API requests to the bot, as Slack does."""

    def __init__(self, *, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EventSender:
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def send(
        self,
        body: dict[str, Any],
        *,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[int, float]:
        """POST ``body`` signed; returns (HTTP status, seconds until the response)."""
        assert self.session is not None
        raw = json.dumps(body)
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(secret=secret or self.secret, timestamp=ts, body=raw),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        started = time.monotonic()
        async with self.session.post(self.url, data=raw, headers=headers) as response:
            await response.read()
            return response.status, time.monotonic() - started
