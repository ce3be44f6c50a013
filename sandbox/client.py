"""A client of the sandbox service that implements the same port as the in-process sandbox.

Retries are limited to what cannot have run a block: failing to connect, 429 (queue full)
and 503 (the jail could not start). A request that was sent and then lost (a dropped
connection, a timeout, a 500) is never retried, since the block may already have run.
A run with tools goes over a WebSocket (``sandbox.client_ws``) under the same rules.

``url`` is ``http(s)://host:port`` or ``unix:///path/to/socket`` (the service's
``--socket``). The result is read as bytes and parsed once, up to a bound derived from the
output cap, so a misbehaving service cannot make the bot hold more than that.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from urllib.parse import urlsplit

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from sandbox import client_files
from sandbox.client_status import Retryable, refusal, retry_wait
from sandbox.client_ws import run_over_websocket
from sandbox.errors import OutcomeUnknown, SandboxUnavailable
from sandbox.files import Outbox, StoredFile
from sandbox.limits import Limits
from sandbox.relay import ToolRelay
from sandbox.result import RunResult
from sandbox.wire import json_bytes

# Below the service's idle deadline (30 s by default), so the client never sends a request
# on a connection the service is closing (which would look like a lost request).
KEEPALIVE_SECONDS = 5.0
# A JSON string escapes a control byte as \u00XX: six bytes per byte of output, at worst.
MAX_BYTES_PER_OUTPUT_BYTE = 6
RESULT_SLACK_BYTES = 64 * 1024


class SandboxClient:
    """Runs blocks on a remote ``opsloop serve sandbox``."""

    def __init__(
        self,
        *,
        url: str,
        token: str | None = None,
        default_limits: Limits | None = None,
        attempts: int = 5,
        margin_seconds: float = 15.0,
        warm: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self._base, self._socket_path = _endpoint(self.url)
        self.token = token
        self.default_limits = default_limits or Limits()
        self.attempts = attempts
        self.margin_seconds = margin_seconds  # on top of the wall limit, for queueing and start-up
        self.warm = warm  # False: ask the service for one process per block (no warm kernel)
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            connector: aiohttp.BaseConnector
            if self._socket_path is not None:
                connector = aiohttp.UnixConnector(
                    path=self._socket_path, keepalive_timeout=KEEPALIVE_SECONDS
                )
            else:
                connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(headers=headers, connector=connector)
        return self._session

    async def ping(self) -> str:
        """Ask the service's ``/healthz`` (readiness of ``opsloop serve slack|discord``);
        what it said, or ``SandboxUnavailable``."""
        try:
            session = await self._client()
            timeout = aiohttp.ClientTimeout(total=5)
            async with session.get(f"{self._base}/healthz", timeout=timeout) as response:
                if response.status != 200:
                    raise SandboxUnavailable(f"{self.url}/healthz answered {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            why = str(exc) or type(exc).__name__
            raise SandboxUnavailable(f"cannot reach {self.url}: {why}") from None
        return f"{self.url} answers ({body.get('admitted', 0)} runs admitted)"

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._session is not None:
            await self._session.close()

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
        """Run one block on the service; retries only what cannot have run it.

        With ``tools`` the run goes over ``GET /v1/run/ws`` and each tool frame of the block
        comes back here to be answered by ``tools``; ``mounts`` are names the service knows.
        """
        limits = limits or self.default_limits
        request: dict[str, object] = {
            "language": language,
            "code": code,
            "limits": limits.to_dict(),
            "workspace": workspace,
        }
        if mounts:  # only then: a service from before mounts still takes every other request
            request["mounts"] = list(mounts)
        if not self.warm:  # likewise: a service from before warm kernels has none to turn off
            request["warm"] = False
        body = json_bytes(request)
        most = 2 * MAX_BYTES_PER_OUTPUT_BYTE * limits.output_bytes + RESULT_SLACK_BYTES
        seconds = limits.wall_seconds + self.margin_seconds
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Retryable),
                wait=retry_wait,
                stop=stop_after_attempt(self.attempts),
                reraise=True,
            ):
                with attempt:
                    if tools is not None:
                        session = await self._client()
                        return await run_over_websocket(
                            session,
                            url=f"{self._base}/v1/run/ws",
                            body=body,
                            tools=tools,
                            seconds=seconds,
                            most=most,
                        )
                    timeout = aiohttp.ClientTimeout(total=seconds)
                    return await self._post(body, timeout=timeout, most=most)
        except Retryable as exc:
            raise SandboxUnavailable(
                f"the sandbox service at {self.url} is unavailable after {self.attempts} "
                f"attempts: {exc}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        """Save a file in a workspace's inbox on the service (sent once: a lost answer may
        have saved it)."""
        session = await self._client()
        return await client_files.put_file(
            session, base=self._base, workspace=workspace, name=name, data=data
        )

    async def read_outbox(
        self,
        *,
        workspace: str,
        sent: Collection[tuple[str, str]] = (),
        max_files: int,
        max_bytes: int,
    ) -> Outbox:
        """What a workspace's outbox on the service holds that was not sent."""
        session = await self._client()
        return await client_files.read_outbox(
            session,
            base=self._base,
            workspace=workspace,
            sent=sent,
            max_files=max_files,
            max_bytes=max_bytes,
        )

    async def _post(self, body: bytes, *, timeout: aiohttp.ClientTimeout, most: int) -> RunResult:
        session = await self._client()
        headers = {"Content-Type": "application/json"}
        try:
            async with session.post(
                f"{self._base}/v1/run", data=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await _read_at_most(response, most)
        except aiohttp.ClientConnectorError as exc:  # never connected: nothing was sent
            raise Retryable(f"cannot connect ({exc.os_error or exc})") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknown(
                f"lost the sandbox service at {self.url} mid-request ({type(exc).__name__}); "
                "the block may have run, so it is not retried"
            ) from None
        if raw is None:
            raise OutcomeUnknown(
                f"the sandbox service at {self.url} answered more than {most} bytes; the block "
                "may have run, so it is not retried"
            )
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            payload = None
        if isinstance(payload, dict):
            error = str(payload.get("error", ""))
        else:
            error = raw[:200].decode("utf-8", "replace")
        del raw  # the parsed result is all we keep
        if status == 200:
            if not isinstance(payload, dict):
                raise OutcomeUnknown("the sandbox service answered 200 without a result")
            return RunResult.from_dict(payload)
        raise refusal(status, error=error, retry_after=retry_after)


async def _read_at_most(response: aiohttp.ClientResponse, most: int) -> bytes | bytearray | None:
    """The body (one buffer, no copy), or None when it is over ``most`` bytes (reading stops)."""
    length = response.content_length
    if length is not None:  # the service's short results: read whole, in one call
        return await response.read() if length <= most else None
    body = bytearray()
    async for chunk in response.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > most:
            return None
    return body


def _endpoint(url: str) -> tuple[str, str | None]:
    """The base URL of requests and, for ``unix:///path``, the socket's path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        if not parts.path:
            raise SandboxUnavailable(f"{url!r} names no socket: use unix:///path/to/socket")
        return "http://localhost", parts.path
    return url, None
