"""The client's side of ``GET /v1/run/ws``: a run whose tool frames come back here.

Each frame the block sends is handed to the caller's ``ToolRelay`` (a task per frame; the
service has at most ``MAX_CONNECTIONS`` outstanding) and its answer sent back. The retry
rules are ``POST /v1/run``'s: anything before the request was sent (no connection, a refused
handshake) and a 429 or 503 before any frame came (the block did not run) may be retried;
a connection lost after the request was sent is ``OutcomeUnknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from sandbox.client_status import Retryable, refusal
from sandbox.errors import OutcomeUnknown, SandboxUnavailable
from sandbox.relay import ANSWER_TOO_LARGE, BROKER_FAILED, MAX_RESPONSE_BYTES, ToolRelay
from sandbox.result import RunResult
from sandbox.wire import json_bytes

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a frame (at most 1 MiB of JSON) or a piece of a result
MAX_PENDING = 64  # frames being answered at once; the service sends at most 8
TOO_MANY = {"ok": False, "error": "too many tool requests at once"}


def _handshake_refusal(status: int, headers: Mapping[str, str] | None) -> Exception:
    """A refused upgrade: nothing was sent, so nothing ran."""
    if status == 401:
        return refusal(401, error="")
    if status in (404, 405):
        return SandboxUnavailable(
            "the sandbox service does not offer runs with tools (GET /v1/run/ws): upgrade it"
        )
    retry_after = headers.get("Retry-After") if headers else None
    shown = f"the WebSocket upgrade was refused with HTTP {status}"
    status = status if status in (429, 503) else 503  # any other refusal ran nothing either
    return refusal(status, error=shown, retry_after=retry_after)


async def run_over_websocket(
    session: aiohttp.ClientSession,
    *,
    url: str,
    body: bytes,
    tools: ToolRelay,
    seconds: float,
    most: int,
) -> RunResult:
    """Run the request ``body`` on the service, answering its tool frames with ``tools``."""
    exchange = _Exchange(tools=tools, most=most)
    try:
        async with asyncio.timeout(seconds):
            try:
                ws = await session.ws_connect(url, max_msg_size=MAX_MESSAGE_BYTES, compress=0)
            except aiohttp.WSServerHandshakeError as exc:
                raise _handshake_refusal(exc.status, exc.headers) from None
            except (aiohttp.ClientError, OSError) as exc:  # never upgraded: nothing was sent
                raise Retryable(f"cannot open the WebSocket ({exc})") from None
            async with ws:
                return await exchange.run(ws, body)
    except TimeoutError:
        if not exchange.sent:
            raise Retryable(f"no WebSocket within {seconds:g} s") from None
        raise OutcomeUnknown(
            f"no result from the sandbox service within {seconds:g} s; the block may have run, "
            "so it is not retried"
        ) from None
    finally:
        await exchange.stop()


class _Exchange:
    """One run's messages: the request out, frames in and answered, the result in."""

    def __init__(self, *, tools: ToolRelay, most: int) -> None:
        self.tools = tools
        self.most = most
        self.sent = False
        self.frames = 0
        self.failures = 0
        self.result = bytearray()
        self.tasks: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()  # one message written at a time

    async def run(self, ws: aiohttp.ClientWebSocketResponse, body: bytes) -> RunResult:
        await ws.send_bytes(body)
        self.sent = True
        while True:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                self.result += message.data
                if len(self.result) > self.most:
                    raise OutcomeUnknown(
                        f"the sandbox service answered more than {self.most} bytes; the block "
                        "may have run, so it is not retried"
                    )
            elif message.type == aiohttp.WSMsgType.TEXT:
                done = self._text(ws, message.data)
                if done is not None:
                    return done
            else:  # closed or broken before the result
                raise OutcomeUnknown(
                    "lost the sandbox service mid-run; the block may have run, so it is not retried"
                )

    def _text(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> RunResult | None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "frame" and isinstance(message.get("frame"), dict):
            self.frames += 1
            task = asyncio.create_task(self._answer(ws, message.get("id"), message["frame"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif kind == "error":
            status = message.get("status")
            status = status if isinstance(status, int) else 500
            if self.frames and status in (429, 503):  # frames came: the block did run
                status = 500
            raise refusal(status, error=str(message.get("error", "")))
        elif kind == "done":
            try:
                payload = json.loads(self.result)
            except (ValueError, RecursionError):
                payload = None
            if not isinstance(payload, dict):
                raise OutcomeUnknown("the sandbox service ended the run without a result")
            return RunResult.from_dict(payload)
        return None

    async def _answer(
        self, ws: aiohttp.ClientWebSocketResponse, number: object, frame: dict[str, Any]
    ) -> None:
        if len(self.tasks) > MAX_PENDING:
            answer: object = TOO_MANY
        else:
            try:
                answer = await self.tools(frame)
            except Exception:  # the broker's fault: logged once, answered generically
                self.failures += 1
                if self.failures == 1:
                    log.exception("the tool relay failed on a request")
                answer = BROKER_FAILED
        payload = _envelope(number, answer)
        with contextlib.suppress(ConnectionError, RuntimeError):
            async with self.lock:
                await ws.send_str(payload)

    async def stop(self) -> None:
        """Cancel the answers still being worked out (the run is over, or lost)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _envelope(number: object, answer: object) -> str:
    """The answer message; an answer that is not a JSON object, or too large, is replaced."""
    if not isinstance(answer, dict):
        answer = BROKER_FAILED
    try:
        payload = json_bytes({"type": "answer", "id": number, "frame": answer})
    except (TypeError, ValueError, RecursionError):
        payload = json_bytes({"type": "answer", "id": number, "frame": BROKER_FAILED})
    if len(payload) > MAX_RESPONSE_BYTES:
        payload = json_bytes({"type": "answer", "id": number, "frame": ANSWER_TOO_LARGE})
    return payload.decode("utf-8")
