"""``kind = "mcp"``: every tool of one MCP server, through the official SDK's ``ClientSession``.

A server is started (stdio) or connected to (streamable HTTP) on first use and kept for the
life of the registry. Its session lives in a task of its own, because the SDK's transports
are anyio task groups that must be entered and left by the same task; calls come from any
task. The stdio server process is started by the SDK's ``stdio_client`` (a long-lived pipe
pair that ``sandbox.process.run_process`` does not offer), in its own session, and the SDK
kills its process group when the session ends.

A server found dead when a call starts (its output ended, or its task ended) is restarted
once for that call. A server that dies *during* a call is not asked again, since the tool may
have run; the call fails and the next call restarts it. A streamable-HTTP request that could
not connect, or that a restarted server answered with "session not found", never ran: it is
sent once more on a new session. Results are untrusted text, returned as data.

A stdio server's stderr goes to an unnamed file, emptied when it passes ``ERRLOG_BYTES``, so
that ``opsloop doctor`` can quote why a server did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TextIO

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bot.tools.errors import ServerUnavailable, ToolFailed, ToolTimedOut
from bot.tools.mcp_values import ServerInfo, line, outcome, server_info
from bot.tools.specs import McpTarget
from bot.tools.values import RawResult

MAX_PAGES = 50  # of a tools/list answer
START_SECONDS = 30.0  # at least this long to start and answer initialize and tools/list
ERRLOG_BYTES = 1024 * 1024  # of a stdio server's stderr kept before the file is emptied
CLIENT = types.Implementation(name="opsloop", version="0.1.0")


class _EndWatch:
    """The session's read stream, noting when the server's side of it ended."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.ended = False

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.ended = True
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _EndWatch:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.ended = True
            raise

    async def __aenter__(self) -> _EndWatch:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        result: bool | None = await self._inner.__aexit__(*exc)
        return result


@dataclass
class _Live:
    session: ClientSession
    stream: _EndWatch
    info: ServerInfo
    task: asyncio.Task[None]
    stop: asyncio.Event
    failure: BaseException | None = None  # why its task ended, when it did

    def dead(self) -> bool:
        return self.stream.ended or self.task.done()


class McpServer:
    """One MCP server, started on first use and restarted when it is found dead."""

    def __init__(self, target: McpTarget) -> None:
        self.target = target
        self._live: _Live | None = None
        self._lock = asyncio.Lock()
        self._errlog: TextIO | None = None
        self.starts = 0  # how many times it was started (for `opsloop tools list` and tests)

    async def info(self) -> ServerInfo:
        """Its description and tools (starting it if needed)."""
        live, _ = await self._ensure()
        return live.info

    async def call(
        self, tool: str, arguments: dict[str, Any], *, timeout: float, max_bytes: int
    ) -> RawResult:
        """Call one of its tools; a failure or an ``isError`` result is a failed call."""
        live, restarted = await self._ensure()
        try:
            result = await _call(live.session, tool, arguments, timeout)
        except MCPError as exc:
            if restarted or not await self._never_ran(live, exc):
                raise self._failure(exc) from None
            live, _ = await self._ensure(replace=live)
            try:
                result = await _call(live.session, tool, arguments, timeout)
            except MCPError as again:
                raise self._failure(again) from None
        return outcome(result, max_bytes)

    async def aclose(self) -> None:
        """Stop the server (or close the connection)."""
        async with self._lock:
            if self._live is not None:
                await _stop(self._live)
                self._live = None
            if self._errlog is not None:
                self._errlog.close()
                self._errlog = None

    @property
    def _start_seconds(self) -> float:
        return max(self.target.timeout, START_SECONDS)

    def stderr_tail(self, chars: int = 400) -> str:
        """The end of what a stdio server wrote to stderr (for `opsloop doctor`)."""
        if self._errlog is None:
            return ""
        self._errlog.flush()
        self._errlog.seek(0)
        text = self._errlog.read()
        self._errlog.seek(0, 2)
        return line(text[-chars:])

    async def _ensure(self, *, replace: _Live | None = None) -> tuple[_Live, bool]:
        """The live session: started if there is none, restarted if dead or ``replace``."""
        async with self._lock:
            if self._errlog is not None and os.fstat(self._errlog.fileno()).st_size > ERRLOG_BYTES:
                self._errlog.truncate(0)
            live = self._live
            if live is not None and not live.dead() and live is not replace:
                return live, False
            restarted = self._live is not None
            if self._live is not None:
                await _stop(self._live)
                self._live = None
            self._live = await self._start()
            return self._live, restarted

    async def _never_ran(self, live: _Live, exc: MCPError) -> bool:
        """Whether a failed request never reached a live server, so it may be sent again.

        Over streamable HTTP: the connection was refused, or the server no longer knows
        our session (it restarted; the SDK reports its 404 as INVALID_REQUEST). Over stdio
        nothing proves it: a request written just before the server died may have run.
        """
        if self.target.url is None:
            return False
        if exc.code == types.INVALID_REQUEST and "session" in exc.message.lower():
            return True
        if exc.code != types.CONNECTION_CLOSED:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(live.task), 2.0)
        return _caused_by(live.failure, httpx2.ConnectError)

    def _failure(self, exc: MCPError) -> ToolFailed:
        if exc.code == types.CONNECTION_CLOSED:
            return ServerUnavailable(
                f"MCP server {self.target.name} closed the connection during the call "
                "(not repeated: it may have run); it is restarted on the next call"
            )
        return ToolFailed(f"MCP error {exc.code}: {line(exc.message)}")

    async def _start(self) -> _Live:
        self.starts += 1
        ready: asyncio.Future[_Live] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(self._own(ready, stop), name=f"mcp-{self.target.name}")
        try:
            return await ready
        except BaseException:
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)
            raise

    async def _own(self, ready: asyncio.Future[_Live], stop: asyncio.Event) -> None:
        """The session's task: open it, hand it over, keep it until told to stop."""
        live: _Live | None = None
        try:
            async with self._transport() as (read, write):
                stream = _EndWatch(read)
                async with ClientSession(stream, write, client_info=CLIENT) as session:
                    with anyio.fail_after(self._start_seconds):
                        init = await session.initialize()
                        tools = await _list_tools(session)
                    info = server_info(init, tools)
                    task = asyncio.current_task()
                    assert task is not None
                    live = _Live(session=session, stream=stream, info=info, task=task, stop=stop)
                    if ready.done():  # whoever started it stopped waiting
                        return
                    ready.set_result(live)
                    await stop.wait()
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, never lost)
            if live is not None:
                live.failure = exc
            if not ready.done():
                ready.set_exception(ServerUnavailable(self._why(exc)))
            if isinstance(exc, asyncio.CancelledError):
                raise

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        target = self.target
        if target.command is not None:
            if self._errlog is None:
                self._errlog = _scratch_file()
            params = StdioServerParameters(
                command=target.command[0], args=list(target.command[1:]), env=dict(target.env)
            )
            async with stdio_client(params, errlog=self._errlog) as streams:
                yield streams
            return
        assert target.url is not None
        timeout = httpx2.Timeout(target.timeout, read=300.0)
        async with (
            httpx2.AsyncClient(headers=dict(target.headers), timeout=timeout) as client,
            streamable_http_client(target.url, http_client=client) as streams,
        ):
            yield streams

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError) or _caused_by(exc, TimeoutError):
            what = f"did not answer initialize within {self._start_seconds:g} s"
        else:
            what = line(_innermost(exc))
        tail = self.stderr_tail()
        return f"MCP server {self.target.name} is not available: {what}" + (
            f" (stderr: {tail})" if tail else ""
        )


async def _call(
    session: ClientSession, tool: str, arguments: dict[str, Any], timeout: float
) -> types.CallToolResult:
    try:
        async with asyncio.timeout(timeout + 1.0):  # the SDK's own timeout should come first
            return await session.call_tool(tool, arguments, read_timeout_seconds=timeout)
    except TimeoutError:
        raise ToolTimedOut(f"timed out after {timeout:g} s") from None
    except MCPError as exc:
        if exc.code == types.REQUEST_TIMEOUT:
            raise ToolTimedOut(f"timed out after {timeout:g} s") from None
        raise


async def _stop(live: _Live) -> None:
    live.stop.set()
    try:
        await asyncio.wait_for(asyncio.shield(live.task), 8.0)
    except BaseException:  # noqa: BLE001  (a server that will not stop is cancelled)
        live.task.cancel()
        with contextlib.suppress(BaseException):
            await live.task


async def _list_tools(session: ClientSession) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _scratch_file() -> TextIO:
    """An unnamed file for a stdio server's stderr (read back for `opsloop doctor`).

    Opened ``O_APPEND``, a flag the server's descriptor shares: after the file is emptied the
    server writes at its new end instead of leaving a hole before its old offset.
    """
    scratch = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
    flags = fcntl.fcntl(scratch.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(scratch.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    return scratch


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``exc``, a group holding it, or its causes include a ``kind``."""
    if exc is None:
        return False
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_caused_by(inner, kind) for inner in exc.exceptions)
    return _caused_by(exc.__cause__ or exc.__context__, kind)


def _innermost(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, MCPError | OSError) else f"{type(exc).__name__}: {text}"
