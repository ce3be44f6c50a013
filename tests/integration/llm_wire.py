"""Real HTTP servers on 127.0.0.1 that speak the Ollama and OpenAI chat wire formats.

Each request takes the next ``Step`` of the server's plan (an OK answer once the plan is
used up), so a test says "503, then OK" as ``[Step(status=503), Step()]``. The server
records when each request arrived, so a test can check the client's waits from the
server's side of the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7


@dataclass(frozen=True)
class Step:
    """What the server does with one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the raw body of an error status
    text: str = "Hello from the wire."
    usage: bool = True  # report token counts
    malformed: bool = False  # answer bytes that are not the wire format
    hang: bool = False  # accept, then never answer
    cut: bool = False  # stream part of the text, then close without finishing
    # Misbehaving models (issue 15); every one of these ignores max_tokens and stop:
    forever: bool = False  # stream the text over and over until the client hangs up
    pause: float = 0.0  # seconds between two streamed pieces
    finish: str = "stop"  # the finish (done) reason sent at the end: "stop" or "length"


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    at: float  # time.monotonic() on arrival
    path: str
    body: dict[str, Any]
    authorization: str | None


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (for connection-refused tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


async def _streamed(step: Step) -> AsyncIterator[tuple[int, int, str]]:
    """(index, count, piece) of the step's text, paced; endlessly when it streams forever,
    each round numbered (so it never repeats itself: that is another misbehaviour)."""
    pieces = _pieces(step.text)
    rounds = itertools.count() if step.forever else range(1)
    for round_number in rounds:
        for n, piece in enumerate(pieces):
            if step.pause:
                await asyncio.sleep(step.pause)
            yield n, len(pieces), (f"({round_number}) " if step.forever and not n else "") + piece


class WireServer:
    """An aiohttp server answering Ollama's /api/chat and OpenAI's /v1/chat/completions."""

    def __init__(self, plan: list[Step] | None = None) -> None:
        self.plan = list(plan or [])
        self.seen: list[Seen] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on a free loopback port; returns ``http://127.0.0.1:PORT``."""
        app = web.Application()
        app.router.add_post("/api/chat", self._ollama_chat)
        app.router.add_get("/api/tags", self._ollama_tags)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_get("/v1/models", self._openai_models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Release hanging handlers and stop."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next(self, request: web.Request) -> tuple[Step, dict[str, Any]]:
        # A hanging step never returns: the handler waits until the server closes.
        body = await request.json() if request.can_read_body else {}
        self.seen.append(
            Seen(time.monotonic(), request.path, body, request.headers.get("Authorization"))
        )
        step = self.plan.pop(0) if self.plan else Step()
        if step.hang:
            await self._closing.wait()
            raise asyncio.CancelledError  # nothing is written to the long-gone client
        return step, body

    def _error(self, step: Step, default: dict[str, Any]) -> web.Response:
        body = step.body if step.body is not None else json.dumps(default)
        return web.Response(
            status=step.status, text=body, headers=step.headers, content_type="application/json"
        )

    # -- Ollama -------------------------------------------------------------------------
    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        step, body = await self._next(request)
        if step.status != 200:
            return self._error(step, {"error": f"status {step.status}"})
        model = body.get("model", "")
        done: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": True}
        done["done_reason"] = step.finish
        if step.usage:
            done |= {"prompt_eval_count": PROMPT_TOKENS, "eval_count": COMPLETION_TOKENS}
        if not body.get("stream", True):
            if step.malformed:
                return web.Response(
                    text='{"model": "x", "message": ', content_type="application/json"
                )
            whole = done | {"message": {"role": "assistant", "content": step.text}}
            return web.json_response(whole)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        async for n, count, piece in _streamed(step):
            if step.cut and n == count // 2:
                return response
            line = {
                "model": model,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            await response.write(json.dumps(line).encode() + b"\n")
            if step.malformed:
                await response.write(b"{this is not json\n")
        final = done | {"message": {"role": "assistant", "content": ""}}
        await response.write(json.dumps(final).encode() + b"\n")
        await response.write_eof()
        return response

    async def _ollama_tags(self, request: web.Request) -> web.Response:
        step, _ = await self._next(request)
        if step.status != 200:
            return self._error(step, {"error": f"status {step.status}"})
        return web.json_response(
            {"models": [{"name": "llama3.1:latest", "model": "llama3.1:latest"}]}
        )

    # -- OpenAI -------------------------------------------------------------------------
    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        step, body = await self._next(request)
        if step.status != 200:
            message = {"message": f"status {step.status}", "type": "error", "code": None}
            return self._error(step, {"error": message})
        model = body.get("model", "")
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
        head = {"id": "chatcmpl-1", "created": 1767225600, "model": model}
        if not body.get("stream"):
            if step.malformed:
                return web.Response(
                    text='{"id": "chatcmpl-1", "choices": [', content_type="application/json"
                )
            choice = {"index": 0, "message": {"role": "assistant", "content": step.text}}
            whole = head | {
                "object": "chat.completion",
                "choices": [choice | {"finish_reason": step.finish}],
            }
            if step.usage:
                whole["usage"] = usage
            return web.json_response(whole)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = head | {"object": "chat.completion.chunk"}

        async def send(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"data: {text}\n\n".encode())

        async for n, count, piece in _streamed(step):
            if step.cut and n == count // 2:
                return response
            delta = {"role": "assistant", "content": piece}
            await send(chunk | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            if step.malformed:
                await send("{this is not json")
        end = {"index": 0, "delta": {}, "finish_reason": step.finish}
        await send(chunk | {"choices": [end]})
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if step.usage and wants_usage:
            await send(chunk | {"choices": [], "usage": usage})
        await send("[DONE]")
        await response.write_eof()
        return response

    async def _openai_models(self, request: web.Request) -> web.Response:
        step, _ = await self._next(request)
        if step.status != 200:
            return self._error(step, {"error": {"message": f"status {step.status}"}})
        model = {"id": "test-model", "object": "model", "created": 0, "owned_by": "tests"}
        return web.json_response({"object": "list", "data": [model]})
