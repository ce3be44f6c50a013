"""The client's side of the service's file endpoints (``sandbox.service_files``).

Neither call is retried: a dropped connection after a file went out may have saved it (a
second try would save a second copy), and the caller of an outbox read simply reads again at
the next answer. A refused connection or a busy service is ``SandboxUnavailable``. What the
service answers is bounded by what was asked: no more files than ``max_files``, none over
``max_bytes``, and a head line of at most ``MAX_HEAD_BYTES``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import Any

import aiohttp

from sandbox.client_status import Retryable, refusal
from sandbox.errors import FileRejected, OutcomeUnknown, SandboxUnavailable
from sandbox.files import Outbox, OutboxFile, Skipped, StoredFile
from sandbox.wire import json_bytes

MAX_HEAD_BYTES = 4 * 1024 * 1024
_TIMEOUT = aiohttp.ClientTimeout(total=300)


async def put_file(
    session: aiohttp.ClientSession, *, base: str, workspace: str, name: str, data: bytes
) -> StoredFile:
    """POST one file to ``{base}/v1/files/inbox``."""
    url = f"{base}/v1/files/inbox"
    params = {"workspace": workspace, "name": name}
    headers = {"Content-Type": "application/octet-stream"}
    try:
        async with session.post(
            url, params=params, data=data, headers=headers, timeout=_TIMEOUT
        ) as response:
            body = await response.content.read(64 * 1024)
            status = response.status
    except aiohttp.ClientConnectorError as exc:
        raise SandboxUnavailable(f"cannot connect to the sandbox service ({exc})") from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise OutcomeUnknown(f"lost the sandbox service while saving {name!r} ({exc})") from None
    payload = _json(body)
    if status != 200:
        _raise(status, payload)
    try:
        return StoredFile(
            name=str(payload["name"]), bytes=int(payload["bytes"]), sha256=str(payload["sha256"])
        )
    except (KeyError, TypeError, ValueError):
        raise OutcomeUnknown("the sandbox service answered a file save without its name") from None


async def read_outbox(
    session: aiohttp.ClientSession,
    *,
    base: str,
    workspace: str,
    sent: Collection[tuple[str, str]],
    max_files: int,
    max_bytes: int,
) -> Outbox:
    """POST ``{base}/v1/files/outbox`` and read the head line, then each file's bytes."""
    request = {
        "workspace": workspace,
        "sent": [list(pair) for pair in sent],
        "max_files": max_files,
        "max_bytes": max_bytes,
    }
    headers = {"Content-Type": "application/json"}
    try:
        async with session.post(
            f"{base}/v1/files/outbox", data=json_bytes(request), headers=headers, timeout=_TIMEOUT
        ) as response:
            if response.status != 200:
                _raise(response.status, _json(await response.content.read(64 * 1024)))
            reader = _Reader(response.content)
            head = await reader.line(MAX_HEAD_BYTES)
            listed, skipped = _head(_json(head), max_files=max_files, max_bytes=max_bytes)
            files = []
            for name, size, sha256 in listed:
                data = await reader.exactly(size)
                files.append(OutboxFile(name=name, data=data, sha256=sha256))
    except aiohttp.ClientConnectorError as exc:
        raise SandboxUnavailable(f"cannot connect to the sandbox service ({exc})") from None
    except (TimeoutError, aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise SandboxUnavailable(f"lost the sandbox service reading the outbox ({exc})") from None
    return Outbox(files=tuple(files), skipped=skipped)


class _Reader:
    """A line, then exact sizes, from a response body (what was read ahead is kept)."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self.content = content
        self.buffer = bytearray()

    async def line(self, most: int) -> bytes:
        while b"\n" not in self.buffer:
            if len(self.buffer) > most:
                raise OutcomeUnknown("the sandbox service's outbox head is too long")
            chunk = await self.content.readany()
            if not chunk:
                raise OutcomeUnknown("the sandbox service's outbox answer ended early")
            self.buffer += chunk
        head, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        return head

    async def exactly(self, size: int) -> bytes:
        if len(self.buffer) < size:
            self.buffer += await self.content.readexactly(size - len(self.buffer))
        data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        return data


def _head(
    payload: dict[str, Any], *, max_files: int, max_bytes: int
) -> tuple[list[tuple[str, int, str]], tuple[Skipped, ...]]:
    files, skipped = payload.get("files"), payload.get("skipped")
    if not isinstance(files, list) or not isinstance(skipped, list) or len(files) > max_files:
        raise OutcomeUnknown("the sandbox service's outbox head is not what was asked for")
    listed = []
    for entry in files:
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= max_bytes:
            raise OutcomeUnknown("the sandbox service listed a file over the size asked for")
        listed.append((str(entry.get("name", "")), size, str(entry.get("sha256", ""))))
    return listed, tuple(
        Skipped(name=str(s.get("name", "")), reason=str(s.get("reason", "")))
        for s in skipped
        if isinstance(s, dict)
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _raise(status: int, payload: dict[str, Any]) -> None:
    error = str(payload.get("error", ""))[:500]
    if status == 409:
        raise FileRejected(error or "the workspace refused the file")
    problem = refusal(status, error=error, retry_after=None)
    if isinstance(problem, Retryable):  # busy or unavailable: nothing was saved
        raise SandboxUnavailable(f"the sandbox service is unavailable: {problem}")
    raise problem
