"""The sandbox as an HTTP service (``opsloop serve sandbox``), for dedicated sandbox hosts.

``POST /v1/run`` takes ``{language, code, limits?, workspace?}`` and answers the result's
fields as JSON; ``GET /healthz`` answers ``{"ok": true}``. A bearer token is required when
one is configured (and one must be configured to listen beyond loopback). A bounded queue in
front of a concurrency limit answers 429 with ``Retry-After`` when full, so overload never
piles up unbounded work; bodies are size-limited.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from sandbox.errors import BadRequest, SandboxError, SandboxUnavailable
from sandbox.limits import Limits
from sandbox.request import MAX_CODE_BYTES
from sandbox.result import RunResult

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1


class Runner(Protocol):
    """What the service serves (the in-process sandbox, or a fake in tests)."""

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
    ) -> RunResult:
        """Run one block."""
        ...


@dataclass(frozen=True)
class ServiceOptions:
    """Limits of the service itself."""

    token: str | None = None
    concurrency: int = 4  # blocks running at once
    queue: int = 16  # blocks waiting for a slot; beyond that, 429
    max_body_bytes: int = 2 * MAX_CODE_BYTES  # JSON escaping can double the code's size


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; names are otherwise assumed public."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(*, host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not token and not is_loopback(host):
        raise SandboxUnavailable(
            f"refusing to listen on {host} without a token: set OPSLOOP_SANDBOX_TOKEN, "
            "or bind to 127.0.0.1"
        )


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class _Gate:
    """Admission control: ``concurrency`` running, ``queue`` waiting, the rest refused."""

    def __init__(self, *, concurrency: int, queue: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.capacity = concurrency + queue
        self.admitted = 0

    def full(self) -> bool:
        return self.admitted >= self.capacity


def make_app(*, runner: Runner, options: ServiceOptions) -> web.Application:
    """The aiohttp application serving ``runner``."""
    gate = _Gate(concurrency=options.concurrency, queue=options.queue)
    expected = f"Bearer {options.token}".encode() if options.token else None

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "admitted": gate.admitted})

    async def run(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "missing or wrong bearer token")
        if gate.full():
            return _error(429, "the sandbox is busy", **{"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        try:
            kwargs = _parse(body)
        except BadRequest as exc:
            return _error(400, str(exc))
        gate.admitted += 1
        try:
            async with gate.slots:
                result = await runner.run(**kwargs)
        except BadRequest as exc:
            return _error(400, str(exc))
        except SandboxUnavailable as exc:  # the jail never started: safe for clients to retry
            return _error(503, str(exc))
        except SandboxError as exc:
            return _error(500, str(exc))
        finally:
            gate.admitted -= 1
        return web.json_response(result.to_dict())

    app = web.Application(client_max_size=options.max_body_bytes)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/run", run)
    return app


def _parse(body: Any) -> dict[str, Any]:
    """The keyword arguments of ``Sandbox.run`` from a request body."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - {"language", "code", "limits", "workspace"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}")
    language, code = body.get("language"), body.get("code")
    if not isinstance(language, str) or not isinstance(code, str):
        raise BadRequest("language and code must be strings")
    limits = body.get("limits")
    workspace = body.get("workspace")
    if workspace is not None and not isinstance(workspace, str):
        raise BadRequest("workspace must be a string")
    return {
        "language": language,
        "code": code,
        "limits": Limits.from_dict(limits) if limits is not None else None,
        "workspace": workspace,
    }


def serve(*, runner: Runner, host: str, port: int, options: ServiceOptions) -> None:
    """Run the service until interrupted."""
    check_bind(host=host, token=options.token)
    log.info("sandbox service on http://%s:%d", host, port)
    web.run_app(make_app(runner=runner, options=options), host=host, port=port, print=None)
