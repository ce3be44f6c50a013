"""``GET /v1/run/ws``: a run with tools, its tool frames relayed to the caller over a WebSocket.

The caller authenticates exactly as for ``POST /v1/run`` (before the upgrade: 401, and 429
with ``Retry-After`` when the queue is full), then:

    caller -> service   the run request, one message: POST /v1/run's body (mounts included)
    service -> caller   {"type": "frame", "id": N, "frame": {...}}    a request of the block
    caller -> service   {"type": "answer", "id": N, "frame": {...}}   its answer (any order)
    service -> caller   the result: binary messages holding the pieces of the result's JSON,
                        then {"type": "done"}; or {"type": "error", "status": S, "error": "…"}

Statuses are POST's: 400 bad request, 429 busy and 503 the jail could not start (neither ran
the block), 500 otherwise. A caller that goes away stops its block: the run is cancelled,
which kills the jail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.admission import RETRY_AFTER_SECONDS, Gate, Runner, error_response, short
from sandbox.errors import BadRequest, SandboxError, SandboxUnavailable
from sandbox.http_guard import Handler
from sandbox.limits import Limits
from sandbox.relay import MAX_RESPONSE_BYTES, CallerGone
from sandbox.result import RunResult
from sandbox.wire import json_bytes, parse_run_request, result_chunks

log = logging.getLogger(__name__)
ENVELOPE_BYTES = 64 * 1024  # room around a frame for its envelope
HEARTBEAT_SECONDS = 20.0
CLOSE_SECONDS = 2.0  # waiting for the caller's close frame


@dataclass(frozen=True)
class WsSettings:
    """The service's limits, as this endpoint needs them."""

    maxima: Limits
    max_body_bytes: int
    body_seconds: float
    send_seconds: float


class _Link:
    """The service's side of one WebSocket: sends frames, matches the caller's answers."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.sent = 0
        self.gone = False
        self.lock = asyncio.Lock()  # one message written at a time (up to 8 relays at once)

    async def relay(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The ``ToolRelay`` of the run: the caller answers each frame."""
        if self.gone:
            raise CallerGone("the caller went away")
        self.sent += 1
        number = self.sent
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        try:
            payload = json_bytes({"type": "frame", "id": number, "frame": frame})
            async with self.lock:
                await self.ws.send_str(payload.decode("utf-8"))
            return await future
        finally:
            self.pending.pop(number, None)

    async def read(self) -> None:
        """Take the caller's answers until it closes or goes away."""
        try:
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    self._answer(message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self.gone = True
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(CallerGone("the caller went away"))

    def _answer(self, text: str) -> None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return
        if not isinstance(message, dict) or message.get("type") != "answer":
            return
        future = self.pending.get(message.get("id"))  # type: ignore[arg-type]
        frame = message.get("frame")
        if future is not None and not future.done() and isinstance(frame, dict):
            future.set_result(frame)


def make_ws_handler(
    *,
    runner: Runner,
    gate: Gate,
    authenticate: Callable[[web.BaseRequest], bool],
    settings: WsSettings,
) -> Handler:
    """The handler of ``GET /v1/run/ws``, sharing the service's gate and authentication."""

    async def run_ws(request: web.Request) -> web.StreamResponse:
        if not authenticate(request):
            return error_response(401, "missing or wrong bearer token")
        if gate.full():
            return error_response(
                429, "the sandbox is busy", **{"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        ws = web.WebSocketResponse(
            max_msg_size=max(settings.max_body_bytes, MAX_RESPONSE_BYTES + ENVELOPE_BYTES),
            heartbeat=HEARTBEAT_SECONDS,
            compress=False,  # nothing to inflate: no bombs
            timeout=CLOSE_SECONDS,
        )
        await ws.prepare(request)
        try:
            await _session(ws, runner=runner, gate=gate, settings=settings)
        finally:
            await ws.close()
        return ws

    return run_ws


async def _session(
    ws: web.WebSocketResponse, *, runner: Runner, gate: Gate, settings: WsSettings
) -> None:
    """One run over ``ws``: its request, its frames, its result."""
    try:
        kwargs = await _request(ws, settings=settings)
        if gate.full():  # others may have got in while the request was read
            await _error(ws, 429, "the sandbox is busy")
            return
    except BadRequest as exc:
        await _error(ws, 400, str(exc))
        return
    link = _Link(ws)
    reader = asyncio.create_task(link.read())
    try:
        result = await _admitted(runner, kwargs, gate=gate, link=link, reader=reader)
        if result is not None:
            await _send_result(ws, result, seconds=settings.send_seconds)
    except BadRequest as exc:
        await _error(ws, 400, str(exc))
    except SandboxUnavailable as exc:  # the jail never started: safe for the caller to retry
        await _error(ws, 503, str(exc))
    except SandboxError as exc:
        await _error(ws, 500, str(exc))
    finally:
        await ws.close()  # ends the reader's loop too
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


async def _admitted(
    runner: Runner, kwargs: dict[str, Any], *, gate: Gate, link: _Link, reader: asyncio.Task[None]
) -> RunResult | None:
    """Wait for a slot, then run; None when the caller went away first."""
    gate.admitted += 1
    try:
        async with gate.slots:
            if reader.done():  # the caller left while queued: its block never starts
                return None
            return await _run(runner, kwargs, link=link, reader=reader)
    finally:
        gate.admitted -= 1


async def _request(ws: web.WebSocketResponse, *, settings: WsSettings) -> dict[str, Any]:
    """The run request: the first message, within the body's size and time limits."""
    try:
        message = await ws.receive(timeout=settings.body_seconds)
    except TimeoutError:
        raise BadRequest(f"no run request within {settings.body_seconds:g} s") from None
    if message.type == WSMsgType.TEXT:
        raw = message.data.encode("utf-8", "surrogatepass")
    elif message.type == WSMsgType.BINARY:
        raw = message.data
    else:
        raise BadRequest("the first message must be the run request")
    if len(raw) > settings.max_body_bytes:
        raise BadRequest(f"the request is over the limit of {settings.max_body_bytes} bytes")
    return parse_run_request(raw, limits=settings.maxima)


async def _run(
    runner: Runner, kwargs: dict[str, Any], *, link: _Link, reader: asyncio.Task[None]
) -> RunResult | None:
    """The block's result, or None when the caller went away (its run is then cancelled)."""
    run = asyncio.ensure_future(runner.run(**kwargs, tools=link.relay))
    try:
        await asyncio.wait({run, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
            log.info("a caller went away mid-run: its block was stopped")
    return run.result() if not run.cancelled() else None


async def _error(ws: web.WebSocketResponse, status: int, message: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        payload = {"type": "error", "status": status, "error": short(message)}
        await ws.send_str(json_bytes(payload).decode("utf-8"))


async def _send_result(ws: web.WebSocketResponse, result: RunResult, *, seconds: float) -> None:
    """The result's JSON in pieces (no encoded copy of it all), then ``done``."""
    try:
        async with asyncio.timeout(seconds):
            for chunk in result_chunks(result.to_dict()):
                await ws.send_bytes(chunk)
            await ws.send_str('{"type":"done"}')
    except TimeoutError:
        log.warning("a caller did not read its result within %g s: connection closed", seconds)
    except (ConnectionError, RuntimeError):  # the caller went away; nothing to tell it
        pass
