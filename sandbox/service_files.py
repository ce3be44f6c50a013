"""The sandbox service's file endpoints: a workspace's inbox and outbox, for a bot whose sandbox
is a separate service (``OPSLOOP_SANDBOX_URL``).

``POST /v1/files/inbox?workspace=W&name=N``, the file's bytes as the body (at most
``max_file_bytes``): saves it in W's ``/workspace/inbox`` under a safe, unused name and
answers ``{"name", "bytes", "sha256"}``. A full workspace is 409.

``POST /v1/files/outbox`` with ``{"workspace", "sent": [[name, sha256], …], "max_files",
"max_bytes"}``: answers one line of JSON, ``{"files": [{"name", "bytes", "sha256"}, …],
"skipped": [{"name", "reason"}, …]}``, then the files' bytes one after the other, in that
order. ``max_files`` and ``max_bytes`` over the service's own maxima are a 400 naming them,
as for a run's limits. Same bearer token as ``/v1/run``; the walking is ``sandbox.files``'.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.admission import Runner, error_response
from sandbox.errors import BadRequest, FileRejected, SandboxError, SandboxUnavailable
from sandbox.files import Outbox
from sandbox.wire import json_bytes

MAX_SENT = 10_000  # (name, sha256) pairs a caller may say it sent
MAX_OUTBOX_FILES = 100


@dataclass(frozen=True)
class FileSettings:
    """The service's limits on files."""

    max_file_bytes: int  # one file in or out
    seconds: float  # to receive one file's body


def add_file_routes(
    app: web.Application,
    *,
    runner: Runner,
    authenticate: Callable[[web.BaseRequest], bool],
    settings: FileSettings,
) -> None:
    """Serve ``/v1/files/inbox`` and ``/v1/files/outbox`` on ``app``."""

    def guarded(
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            if not authenticate(request):
                return error_response(401, "missing or wrong bearer token")
            try:
                return await handler(request)
            except BadRequest as exc:
                return _closing(error_response(400, str(exc)))
            except FileRejected as exc:
                return error_response(409, str(exc))
            except SandboxUnavailable as exc:
                return error_response(503, str(exc))
            except SandboxError as exc:
                return error_response(500, str(exc))

        return serve

    async def inbox(request: web.Request) -> web.StreamResponse:
        workspace, name = request.query.get("workspace", ""), request.query.get("name", "")
        if not workspace or not name:
            raise BadRequest("workspace and name are required")
        data = await _body(request, settings)
        stored = await runner.put_file(workspace=workspace, name=name, data=data)
        return web.json_response(
            {"name": stored.name, "bytes": stored.bytes, "sha256": stored.sha256}
        )

    async def outbox(request: web.Request) -> web.StreamResponse:
        query = _outbox_query(await _small_json(request), settings)
        found = await runner.read_outbox(**query)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        await response.write(outbox_head(found) + b"\n")
        for file in found.files:
            await response.write(file.data)
        await response.write_eof()
        return response

    app.router.add_post("/v1/files/inbox", guarded(inbox))
    app.router.add_post("/v1/files/outbox", guarded(outbox))


def outbox_head(found: Outbox) -> bytes:
    """The JSON line before the outbox's bytes."""
    return json_bytes(
        {
            "files": [
                {"name": f.name, "bytes": len(f.data), "sha256": f.sha256} for f in found.files
            ],
            "skipped": [{"name": s.name, "reason": s.reason} for s in found.skipped],
        }
    )


def _closing(response: web.Response) -> web.Response:
    response.force_close()  # a body may be half read: this connection is done
    return response


async def _body(request: web.Request, settings: FileSettings) -> bytes:
    """The file's bytes, within the size and time limits (``BadRequest`` otherwise)."""
    most = settings.max_file_bytes
    if (request.content_length or 0) > most:
        raise BadRequest(f"the file is over the limit of {most} bytes")
    data = bytearray()
    try:
        async with asyncio.timeout(settings.seconds):
            async for chunk in request.content.iter_chunked(256 * 1024):
                data += chunk
                if len(data) > most:
                    raise BadRequest(f"the file is over the limit of {most} bytes")
    except TimeoutError:
        raise BadRequest(f"the file did not arrive within {settings.seconds:g} s") from None
    return bytes(data)


async def _small_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # the app's client_max_size bounds it
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON in UTF-8") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _outbox_query(body: dict[str, Any], settings: FileSettings) -> dict[str, Any]:
    """``read_outbox``'s arguments from a request, checked against the service's maxima."""
    workspace, sent = body.get("workspace"), body.get("sent", [])
    max_files, max_bytes = body.get("max_files"), body.get("max_bytes")
    if not isinstance(workspace, str):
        raise BadRequest("workspace must be a string")
    if not isinstance(sent, list) or len(sent) > MAX_SENT:
        raise BadRequest(f"sent must be a list of at most {MAX_SENT} [name, sha256] pairs")
    pairs = []
    for pair in sent:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise BadRequest("each entry of sent must be [name, sha256]")
        pairs.append((pair[0], pair[1]))
    for field, value, most in (
        ("max_files", max_files, MAX_OUTBOX_FILES),
        ("max_bytes", max_bytes, settings.max_file_bytes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
            raise BadRequest(f"{field} must be a whole number from 1 to {most}, not {value!r}")
    return {"workspace": workspace, "sent": pairs, "max_files": max_files, "max_bytes": max_bytes}
