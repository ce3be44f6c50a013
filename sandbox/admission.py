"""Admission to the sandbox service: what it serves (``Runner``), a bounded queue before a
concurrency limit, and the JSON error answers of both endpoints (``POST /v1/run`` and
``GET /v1/run/ws``)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Protocol

from aiohttp import web

from sandbox import metrics
from sandbox.files import Outbox, StoredFile
from sandbox.limits import Limits
from sandbox.relay import ToolRelay
from sandbox.result import RunResult

RETRY_AFTER_SECONDS = 1
MAX_ERROR_CHARS = 1000


def error_response(status: int, message: str, **headers: str) -> web.Response:
    """A JSON error answer; a long message (one quoting the request) is cut."""
    return web.json_response({"error": short(message)}, status=status, headers=headers)


def short(message: str) -> str:
    """``message`` cut to ``MAX_ERROR_CHARS`` (messages may quote a 500 KB request)."""
    return message[:MAX_ERROR_CHARS] + "…" if len(message) > MAX_ERROR_CHARS else message


class Gate:
    """Admission control: ``concurrency`` running, ``queue`` waiting, the rest refused."""

    def __init__(self, *, concurrency: int, queue: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.capacity = concurrency + queue
        self.admitted = 0

    def full(self) -> bool:
        """Would one more request be over the queue? (A yes is a refusal, counted: each
        handler asks again only after a no.)"""
        full = self.admitted >= self.capacity
        if full:
            metrics.REFUSED.inc()
        return full


class Runner(Protocol):
    """What the service serves (the in-process sandbox, or a fake in tests).

    The service passes ``tools``, ``mounts`` and ``warm`` (false) only when a request uses
    them, so a runner without those parameters still serves every other request; likewise
    the file methods are called only by the file endpoints.
    """

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
        tools: ToolRelay | None = None,
        mounts: Sequence[str] = (),
    ) -> RunResult:
        """Run one block."""
        ...

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        """Save a file in a workspace's inbox."""
        ...

    async def read_outbox(
        self,
        *,
        workspace: str,
        sent: Collection[tuple[str, str]] = (),
        max_files: int,
        max_bytes: int,
    ) -> Outbox:
        """What a workspace's outbox holds that was not sent."""
        ...
