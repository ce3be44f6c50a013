"""The sandbox service's connection guard: deadlines and a cap on open connections.

aiohttp (3.11 to 3.14) has no deadline for a request's head, and keeps a connection whose
requests were all refused. The guard sits between the listening socket and aiohttp's
protocol and closes:

- a connection that has not sent a complete request head ``head_seconds`` after it
  opened (idle sockets and slowly dripped headers alike), or whose first head is over
  ``max_head_bytes`` (aiohttp would buffer up to about 1 MiB of one);
- an authenticated connection idle for ``idle_seconds`` between requests;
- a connection right after answering an unauthenticated request (its response says
  ``Connection: close``), and in any case ``head_seconds`` later;
- when more than ``max_connections`` are open, the oldest that is not handling a request,
  unauthenticated ones first, so a flood of sockets evicts its own kind rather than
  locking out the caller with the token.

Bodies and responses get their own deadlines in the request handlers (``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_HEAD_BYTES = 16 * 1024  # the client's heads are well under 1 KiB, the token included


class _Connection:
    """What the guard knows of one open connection."""

    __slots__ = ("busy", "head_bytes", "head_tail", "timer", "transport", "trusted")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.trusted = False  # it has made an authenticated request
        self.busy = False  # a request of it is being handled
        self.timer: asyncio.TimerHandle | None = None
        self.head_bytes: int | None = 0  # bytes of its first head so far; None once complete
        self.head_tail = b""  # the last bytes seen, for a blank line split across reads


class _Tracked(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol; tells the guard when it opens and closes."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.connection: _Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.connection = _Connection(transport)
        self.inner.connection_made(transport)
        self.guard.opened(self.connection)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.guard.closed(self.connection.transport)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        if (
            connection is None
            or connection.head_bytes is None  # the first head is in: no more counting
            or self.guard.head_fits(connection, data)
        ):
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """Deadlines for request heads and idle connections, and a cap on open connections."""

    def __init__(
        self,
        *,
        authenticate: Callable[[web.BaseRequest], bool],
        head_seconds: float,
        idle_seconds: float,
        max_connections: int,
        max_head_bytes: int = MAX_HEAD_BYTES,
    ) -> None:
        self.authenticate = authenticate
        self.max_head_bytes = max_head_bytes
        self.head_seconds = head_seconds
        self.idle_seconds = idle_seconds
        self.max_connections = max_connections
        self._open: dict[asyncio.Transport, _Connection] = {}  # oldest first
        self.evicted = 0

    @property
    def open_connections(self) -> int:
        """How many connections are open."""
        return len(self._open)

    def protocol_factory(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], _Tracked]:
        """Wrap aiohttp's protocol factory (``AppRunner.server``) so its connections are guarded."""
        return lambda: _Tracked(factory(), self)

    def opened(self, connection: _Connection) -> None:
        """A connection opened: it has ``head_seconds`` to send a request head."""
        self._open[connection.transport] = connection
        self._arm(connection, self.head_seconds)
        if len(self._open) > self.max_connections:
            self._evict()

    def closed(self, transport: asyncio.Transport) -> None:
        """A connection closed (either side)."""
        connection = self._open.pop(transport, None)
        if connection is not None and connection.timer is not None:
            connection.timer.cancel()

    def head_fits(self, connection: _Connection, data: bytes) -> bool:
        """Count ``data`` into the first head; False (and the connection closed) when over."""
        assert connection.head_bytes is not None
        seen = connection.head_tail + data
        if b"\r\n\r\n" in seen or b"\n\n" in seen:
            connection.head_bytes = None  # complete: the rest is a body, limited elsewhere
            return True
        connection.head_bytes += len(data)
        connection.head_tail = seen[-3:]
        if connection.head_bytes <= self.max_head_bytes:
            return True
        self._drop(connection)
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Hold the deadlines while a request is handled; re-arm them after, by its token."""
        trusted = self.authenticate(request)
        transport = request.transport
        connection = self._open.get(transport) if transport is not None else None
        if connection is not None:
            connection.trusted = connection.trusted or trusted
            connection.busy = True
            self._disarm(connection)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a 404 or 405 of the router
            if not trusted:
                exc.force_close()
            raise
        finally:
            if connection is not None:
                connection.busy = False
                self._arm(connection, self.idle_seconds if trusted else self.head_seconds)
        if not trusted and not response.prepared:
            response.force_close()  # an unauthenticated caller gets one answer per connection
        return response

    def _arm(self, connection: _Connection, seconds: float) -> None:
        self._disarm(connection)
        loop = asyncio.get_running_loop()
        connection.timer = loop.call_later(seconds, self._expire, connection)

    @staticmethod
    def _disarm(connection: _Connection) -> None:
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None

    def _expire(self, connection: _Connection) -> None:
        connection.timer = None
        if not connection.busy:
            self._drop(connection)

    def _evict(self) -> None:
        """Close the oldest connection not handling a request, unauthenticated ones first."""
        idle = [c for c in self._open.values() if not c.busy]
        victim = next((c for c in idle if not c.trusted), None) or next(iter(idle), None)
        if victim is not None:
            self.evicted += 1
            if self.evicted in (1, 100) or self.evicted % 10000 == 0:
                log.warning(
                    "over %d open connections: closing the oldest idle ones (%d so far)",
                    self.max_connections,
                    self.evicted,
                )
            self._drop(victim)

    def _drop(self, connection: _Connection) -> None:
        self.closed(connection.transport)
        connection.transport.abort()  # nothing worth flushing: close now, whatever is queued
