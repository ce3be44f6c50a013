"""The tool channel of one run: a unix socket the block writes frames to, answered by a relay.

A run with ``tools`` gets a socket in its private scratch directory (0700, the run's uid),
mode 0600 and owned by that uid, bind-mounted into that jail only, at ``/opsloop/tools.sock``.
Frames are JSON objects, one per line. The sandbox does not interpret them: it checks that
a request is a UTF-8 JSON object of at most ``MAX_REQUEST_BYTES``, hands it to the relay
(``ToolRelay``: the broker on the bot's side, or the service's link to its client) and
writes back the answer as one line.

What a block can make the host do is bounded: ``MAX_CONNECTIONS`` open at once,
``MAX_ACCEPTS`` connections and ``MAX_FRAMES`` requests per run (past either the socket
stops listening), one request at a time per connection, and everything stops when the run
ends (``RelayServer.close``: the listener, every connection, every pending relay call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxUnavailable

log = logging.getLogger(__name__)

ToolRelay = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]  # request frame -> response

SOCKET_NAME = "tools.sock"  # in the run's scratch directory
JAIL_SOCKET = "/opsloop/tools.sock"  # where the block finds it
MAX_REQUEST_BYTES = 1024 * 1024  # one request line, its newline excluded
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # one answer line; a larger one is replaced by an error
MAX_CONNECTIONS = 8  # open at once
MAX_ACCEPTS = 1000  # connections over the whole run
MAX_FRAMES = 1000  # requests over the whole run (the broker counts calls per block itself)
READ_BYTES = 64 * 1024

TOO_LARGE = {"ok": False, "error": "request too large"}
NOT_A_FRAME = {"ok": False, "error": "a request is one JSON object in UTF-8 on one line"}
BROKER_FAILED = {"ok": False, "error": "the tool broker failed"}
TOO_MANY_FRAMES = {"ok": False, "error": f"too many tool requests in this run ({MAX_FRAMES})"}
TOO_MANY_CONNECTIONS = {"ok": False, "error": f"too many open connections ({MAX_CONNECTIONS})"}
ANSWER_TOO_LARGE = {"ok": False, "error": "the answer is over 16 MiB and was dropped"}


class CallerGone(ConnectionError):
    """Raised by a relay whose caller went away (the service's WebSocket closed mid-run): the
    run is being stopped, so a frame sent meanwhile is answered as documented ("the tool
    broker failed") but is no failure of the broker's to log."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_frame(line: bytes) -> dict[str, Any] | None:
    """A request line as a JSON object, or None when it is not one (pure)."""
    try:
        value = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def encode_answer(answer: object) -> bytes:
    """One answer line (UTF-8 JSON and a newline); an answer too large or not JSON is replaced."""
    if not isinstance(answer, dict):
        return _line(BROKER_FAILED)
    try:
        line = _line(answer)
    except (TypeError, ValueError, RecursionError):
        return _line(BROKER_FAILED)
    return line if len(line) <= MAX_RESPONSE_BYTES + 1 else _line(ANSWER_TOO_LARGE)


def _line(value: dict[str, Any]) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # lone surrogates: escaped, so the line stays valid UTF-8
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class _TooLarge(Exception):
    """A request line went over ``MAX_REQUEST_BYTES``."""


class _Lines:
    """Reads newline-terminated lines, holding at most ``MAX_REQUEST_BYTES`` plus one read."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buffer = bytearray()

    async def next(self) -> bytes | None:
        """The next line without its newline; None at end of input (a partial line is dropped)."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                if end > MAX_REQUEST_BYTES:
                    raise _TooLarge
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) > MAX_REQUEST_BYTES:
                raise _TooLarge
            chunk = await self.reader.read(READ_BYTES)
            if not chunk:
                return None
            self.buffer += chunk


class RelayServer:
    """Serves one run's socket: each request frame goes to ``relay``, its answer comes back."""

    def __init__(self, *, path: Path, relay: ToolRelay, owner: tuple[int, int]) -> None:
        self.path = path
        self.relay = relay
        self.owner = owner
        self.frames = 0  # requests handed to the relay or refused for the cap
        self.accepted = 0
        self.failures = 0  # relay calls that raised
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()  # one per connection
        self._work: set[asyncio.Future[None]] = set()  # each connection's requests
        self._writers: set[asyncio.StreamWriter] = set()
        self._closed = False

    async def start(self) -> None:
        """Create the socket (0600, the run's uid) and start listening."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The directory is 0700 and the run's: until the chmod below nobody else can
            # reach the socket, so there is no moment at which it is more open.
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            if os.geteuid() == 0:
                os.chown(self.path, *self.owner, follow_symlinks=False)
            self._server = await asyncio.start_unix_server(
                self._connection, sock=sock, limit=READ_BYTES
            )
        except OSError as exc:
            sock.close()
            raise SandboxUnavailable(f"cannot open the tool channel {self.path}: {exc}") from None

    @property
    def listening(self) -> bool:
        """Still taking connections (not past a cap of the run, not closed)."""
        return self._server is not None and self._server.is_serving() and not self._closed

    def next_run(self) -> None:
        """Count frames and connections afresh: a kernel's socket serves block after block."""
        self.frames = 0
        self.accepted = 0

    @property
    def open_connections(self) -> int:
        """How many connections are being served."""
        return len(self._writers)

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop everything: the listener, each connection and any relay call under way."""
        self._closed = True
        self._stop_listening()
        for writer in list(self._writers):
            writer.transport.abort()
        for work in list(self._work):
            work.cancel()
        handlers = list(self._handlers)  # each ends quietly once its work is cancelled
        await asyncio.gather(*self._work, *handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self.failures > 1:
            log.warning("the tool relay failed %d times in this run", self.failures)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection. Its requests are served by a task of their own, which ``close``
        cancels; this handler itself is never cancelled by us, since Python 3.11's stream
        server logs a traceback for every cancelled handler."""
        handler = asyncio.current_task()
        if self._closed or handler is None:
            writer.transport.abort()
            return
        self.accepted += 1
        if self.accepted >= MAX_ACCEPTS:
            self._stop_listening()
        if self.accepted > MAX_ACCEPTS:  # already waiting in the backlog when it stopped
            writer.transport.abort()
            return
        self._handlers.add(handler)
        try:
            if len(self._writers) >= MAX_CONNECTIONS:
                await self._refuse(writer, TOO_MANY_CONNECTIONS)
                return
            self._writers.add(writer)
            work = asyncio.ensure_future(self._serve(_Lines(reader), writer))
            self._work.add(work)
            try:
                await work
            finally:
                self._work.discard(work)
        except asyncio.CancelledError:
            if handler.cancelling():  # the handler itself was cancelled (loop shutdown)
                raise
        except _TooLarge:
            await self._refuse(writer, TOO_LARGE)
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(handler)
            writer.transport.abort()

    async def _serve(self, lines: _Lines, writer: asyncio.StreamWriter) -> None:
        """Answer requests one at a time until the block closes the connection."""
        while (line := await lines.next()) is not None:
            if self.frames >= MAX_FRAMES:
                self._stop_listening()
                await self._refuse(writer, TOO_MANY_FRAMES)
                return
            self.frames += 1
            frame = parse_frame(line)
            answer = NOT_A_FRAME if frame is None else await self._ask(frame)
            writer.write(encode_answer(answer))
            await writer.drain()

    async def _ask(self, frame: dict[str, Any]) -> object:
        try:
            return await self.relay(frame)
        except CallerGone:
            return BROKER_FAILED
        except Exception:  # the broker's fault, not the block's: logged, answered generically
            self.failures += 1
            if self.failures == 1:
                log.exception("the tool relay failed on a request")
            return BROKER_FAILED

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        """Write one error line and close (never waiting on a block that does not read)."""
        with contextlib.suppress(Exception):
            writer.write(_line(answer))
            await asyncio.wait_for(writer.drain(), 1.0)
        writer.transport.abort()


@contextlib.asynccontextmanager
async def serving(
    *, directory: Path, relay: ToolRelay | None, owner: tuple[int, int]
) -> AsyncIterator[RelayServer | None]:
    """The run's tool channel in ``directory`` while the block runs; None without a relay."""
    if relay is None:
        yield None
        return
    server = RelayServer(path=directory / SOCKET_NAME, relay=relay, owner=owner)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
