"""The sandbox as an HTTP service (``opsloop serve sandbox``), for dedicated sandbox hosts.

``POST /v1/run`` takes ``{language, code, limits?, workspace?, mounts?}`` and answers the
result's fields as JSON; ``GET /v1/run/ws`` runs a block with tools, relaying its tool
frames to the caller over a WebSocket (``sandbox.service_ws``); ``/v1/files/inbox`` and
``/v1/files/outbox`` put a file into a workspace and read what a block left to send
(``sandbox.service_files``); ``GET /healthz`` answers ``{"ok": true}``. The service trusts
no caller:

- on TCP a bearer token is required (loopback included); on a unix socket (mode 0600) it
  is optional;
- a request's limits are clamped to the service's own (``ServiceOptions.maxima``, from
  ``[sandbox]``): omitted fields take them, larger ones are a 400 naming the limit;
- bodies are size- and time-limited, and anything that does not parse is a 400;
- a short result is one UTF-8 JSON body with its ``Content-Length``, sent with the headers
  in one write; a long one is streamed in pieces, so memory stays a small multiple of the
  output cap however the output is made up;
- connections are guarded (``sandbox.http_guard``): deadlines for request heads and idle
  connections, a cap on open ones that evicts the oldest idle unauthenticated connection.

A bounded queue in front of a concurrency limit answers 429 with ``Retry-After`` when full,
so overload never piles up unbounded work.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from sandbox import metrics
from sandbox.admission import RETRY_AFTER_SECONDS, Gate, Runner
from sandbox.admission import error_response as _error
from sandbox.errors import BadRequest, SandboxError, SandboxUnavailable
from sandbox.http_guard import ConnectionGuard, Handler
from sandbox.limits import Limits
from sandbox.listen import (
    BACKLOG,
    check_bind,
    connection_cap,
    raise_open_files_limit,
    remove_socket,
    unix_socket,
)
from sandbox.request import MAX_CODE_BYTES
from sandbox.result import RunResult
from sandbox.service_files import FileSettings, add_file_routes
from sandbox.service_result import send_result
from sandbox.service_ws import WsSettings, make_ws_handler
from sandbox.wire import parse_run_request

__all__ = ["Runner", "RunningService", "ServiceOptions", "check_bind", "make_app", "serve"]
log = logging.getLogger(__name__)
# After refusing a body it did not read, the service reads and drops the rest this long (so
# the caller sees the answer rather than a reset), then closes. aiohttp's default is 10 s.
LINGER_SECONDS = 2.0
GUARD = web.AppKey("guard", ConnectionGuard)


@dataclass(frozen=True)
class ServiceOptions:
    """Limits of the service itself."""

    token: str | None = None
    concurrency: int = 4  # blocks running at once
    queue: int = 16  # blocks waiting for a slot; beyond that, 429
    max_body_bytes: int = 2 * MAX_CODE_BYTES  # JSON escaping can double the code's size
    maxima: Limits = Limits()  # the limits of a request that omits them, and the most it gets
    head_seconds: float = 10.0  # a connection sends a complete request head within this
    body_seconds: float = 30.0  # then its body within this
    idle_seconds: float = 30.0  # an authenticated connection may idle this long between requests
    send_seconds: float = 60.0  # writing a result to a slow reader
    max_connections: int = 1024  # open at once; beyond, the oldest idle ones are closed
    max_file_bytes: int = 64 * 1024 * 1024  # one file into an inbox or out of an outbox
    file_seconds: float = 120.0  # to receive one file

    def ws_settings(self) -> WsSettings:
        """What ``GET /v1/run/ws`` needs of these options."""
        return WsSettings(
            maxima=self.maxima,
            max_body_bytes=self.max_body_bytes,
            body_seconds=self.body_seconds,
            send_seconds=self.send_seconds,
        )


class _Refused(Exception):
    """A request answered with an error before it ran."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _MalformedRequests(logging.Filter):
    """Drops aiohttp's tracebacks of malformed requests: the caller's fault, answered 400.

    Left in, anyone who can connect could fill the service's log with tracebacks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


_MALFORMED = _MalformedRequests()


def authenticator(token: str | None) -> Callable[[web.BaseRequest], bool]:
    """Does a request carry ``Bearer <token>``? Compared in constant time, as bytes."""
    if not token:
        return lambda request: True
    expected = b"Bearer " + token.encode("utf-8", "surrogateescape")

    def authenticate(request: web.BaseRequest) -> bool:
        # aiohttp decodes header bytes with surrogateescape: encoding back gives the bytes
        # that were sent, whatever they were (surrogatepass cannot fail, as a fallback).
        given = request.headers.get("Authorization", "")
        try:
            raw = given.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = given.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(raw, expected)

    return authenticate


@web.middleware
async def _no_tracebacks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An unexpected error is a JSON 500 (logged here), never a traceback to the caller."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("error handling %s %s", request.method, request.path)
        return _error(500, "internal error of the sandbox service")


def make_app(*, runner: Runner, options: ServiceOptions) -> web.Application:
    """The aiohttp application serving ``runner``."""
    gate = Gate(concurrency=options.concurrency, queue=options.queue)
    authenticate = authenticator(options.token)
    guard = ConnectionGuard(
        authenticate=authenticate,
        head_seconds=options.head_seconds,
        idle_seconds=options.idle_seconds,
        max_connections=options.max_connections,
    )
    runner = _Counted(runner)  # the same run(), each finished run counted
    metrics.watch(admitted=lambda: gate.admitted, concurrency=options.concurrency)

    async def run(request: web.Request) -> web.StreamResponse:
        if not authenticate(request):
            return _error(401, "missing or wrong bearer token")
        try:
            if gate.full():
                raise _Refused(429, "the sandbox is busy")
            raw = await _read_body(request, options=options)
            kwargs = parse_run_request(raw, limits=options.maxima)
            if gate.full():  # others may have got in while this body was read
                raise _Refused(429, "the sandbox is busy")
        except BadRequest as exc:
            return _error(400, str(exc))
        except _Refused as exc:
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 429 else {}
            response = _error(exc.status, str(exc), **retry)
            if exc.status != 429:
                response.force_close()  # the body may be half read: this connection is done
            return response
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
        return await send_result(request, result, seconds=options.send_seconds)

    app = web.Application(
        client_max_size=options.max_body_bytes, middlewares=[guard.middleware, _no_tracebacks]
    )
    app[GUARD] = guard
    app.router.add_routes(_probes(gate))
    app.router.add_post("/v1/run", run)
    ws = make_ws_handler(
        runner=runner, gate=gate, authenticate=authenticate, settings=options.ws_settings()
    )
    app.router.add_get("/v1/run/ws", ws)
    files = FileSettings(max_file_bytes=options.max_file_bytes, seconds=options.file_seconds)
    add_file_routes(app, runner=runner, authenticate=authenticate, settings=files)
    return app


def _probes(gate: Gate) -> list[web.RouteDef]:
    """``/healthz`` (alive), ``/readyz`` (ready while the queue has room: a full one sends new
    runs to other replicas) and ``/metrics`` (sandbox/metrics.py), all unauthenticated."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "admitted": gate.admitted})

    async def readyz(request: web.Request) -> web.Response:
        room = gate.admitted < gate.capacity
        detail = f"{gate.admitted} of {gate.capacity} runs admitted"
        checks = {"admission": {"ok": room, "detail": detail}}
        return web.json_response({"ready": room, "checks": checks}, status=200 if room else 503)

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", scrape)]


class _Counted:
    """The runner, each finished run counted (sandbox/metrics.py); everything else (the file
    methods, closing its kernels) is the runner's own."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def run(self, **kwargs: Any) -> RunResult:
        started = time.monotonic()
        result = await self.inner.run(**kwargs)
        metrics.count_run(
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            seconds=time.monotonic() - started,
        )
        return result


async def _read_body(request: web.Request, *, options: ServiceOptions) -> bytes:
    """The whole body, within the size and time limits (``_Refused`` otherwise)."""
    too_large = _Refused(413, f"the body is over the limit of {options.max_body_bytes} bytes")
    if (request.content_length or 0) > options.max_body_bytes:
        raise too_large
    try:
        async with asyncio.timeout(options.body_seconds):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except TimeoutError:
        raise _Refused(408, f"the body did not arrive within {options.body_seconds:g} s") from None


@dataclass
class RunningService:
    """A started service: where it listens, and how to stop it."""

    url: str  # http://host:port or unix:///path
    app: web.Application
    server: asyncio.Server
    web_runner: web.AppRunner
    socket_file: tuple[Path, tuple[int, int]] | None = None

    async def close(self) -> None:
        """Stop listening, close the connections, delete the socket file."""
        self.server.close()
        await self.web_runner.cleanup()
        if self.socket_file is not None:
            remove_socket(*self.socket_file)


async def start_service(
    *,
    runner: Runner,
    options: ServiceOptions,
    host: str = "127.0.0.1",
    port: int = 8700,
    socket_path: Path | None = None,
) -> RunningService:
    """Listen on ``socket_path`` (a 0600 unix socket) if given, else on TCP ``host:port``."""
    if socket_path is None:
        check_bind(host=host, token=options.token)
    app = make_app(runner=runner, options=options)
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED)  # adding it again is a no-op
    web_runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=options.idle_seconds,
        auto_decompress=False,  # our client never compresses; a gzip bomb stays a 400
        lingering_time=LINGER_SECONDS,
        access_log=None,  # a log line per block was 3% of a warm block's time; runs are metrics
    )
    await web_runner.setup()
    assert web_runner.server is not None
    factory = app[GUARD].protocol_factory(web_runner.server)
    loop = asyncio.get_running_loop()
    try:
        if socket_path is not None:
            sock, identity = unix_socket(socket_path)
            server = await loop.create_unix_server(factory, sock=sock)
            return RunningService(
                f"unix://{socket_path}", app, server, web_runner, (socket_path, identity)
            )
        try:
            server = await loop.create_server(factory, host=host, port=port, backlog=BACKLOG)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        address = server.sockets[0].getsockname()
        shown = f"[{address[0]}]" if ":" in address[0] else address[0]
        return RunningService(f"http://{shown}:{address[1]}", app, server, web_runner)
    except BaseException:
        await web_runner.cleanup()
        raise


def serve(
    *,
    runner: Runner,
    host: str = "127.0.0.1",
    port: int = 8700,
    options: ServiceOptions,
    socket_path: Path | None = None,
) -> None:
    """Run the service until SIGINT or SIGTERM (raising this process's open-files limit)."""
    open_files = raise_open_files_limit()
    cap = connection_cap(
        wanted=options.max_connections, open_files=open_files, concurrency=options.concurrency
    )
    asyncio.run(
        _serve(
            runner=runner,
            options=replace(options, max_connections=cap),
            host=host,
            port=port,
            socket_path=socket_path,
        )
    )


async def _serve(
    *, runner: Runner, options: ServiceOptions, host: str, port: int, socket_path: Path | None
) -> None:
    service = await start_service(
        runner=runner, options=options, host=host, port=port, socket_path=socket_path
    )
    log.info("sandbox service on %s (at most %d connections)", service.url, options.max_connections)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await service.close()
        close = getattr(runner, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
