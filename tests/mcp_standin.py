"""A real MCP server built with the ``mcp`` SDK, for the tool registry's tests.

``python tests/mcp_standin.py stdio`` serves over stdio; ``python tests/mcp_standin.py http
PORT`` serves streamable HTTP on 127.0.0.1:PORT at /mcp, and answers 401 unless the request's
Authorization header is ``Bearer $STANDIN_TOKEN`` (when that variable is set).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer(
    "standin",
    version="1.0",
    instructions="A test server for opsloop: arithmetic, echo, failures and delays."
    + os.environ.get("STANDIN_MOTTO", ""),
)


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def env(name: str) -> str:
    """The value of one of the server's environment variables."""
    return os.environ.get(name, "")


@server.tool()
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ToolError(message)


@server.tool()
async def slow(seconds: float) -> str:
    """Wait, then answer."""
    await asyncio.sleep(seconds)
    return "done"


@server.tool()
def big(size: int) -> str:
    """A text of ``size`` characters."""
    return "x" * size


@server.tool()
def shout(size: int) -> str:
    """Write ``size`` characters to stderr."""
    sys.stderr.write("!" * size + "\n")
    sys.stderr.flush()
    return "shouted"


@server.tool()
def search(query: str, limit: int = 5) -> dict[str, Any]:
    """Search the runbooks (structured result)."""
    return {"query": query, "hits": [f"runbook-{i}" for i in range(limit)]}


@server.tool()
def write_note(text: str) -> str:
    """Write a note (a mutating tool, excluded by the tests' config)."""
    return "written"


class _RequireToken:
    """ASGI middleware: 401 unless Authorization is Bearer $STANDIN_TOKEN."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and dict(scope["headers"]).get(b"authorization") != self.expected
        ):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing or wrong token"})
            return
        await self.app(scope, receive, send)


def main() -> None:
    if sys.argv[1] == "stdio":
        server.run()
        return
    import uvicorn

    app: Any = server.streamable_http_app()
    if token := os.environ.get("STANDIN_TOKEN"):
        app = _RequireToken(app, token)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")


if __name__ == "__main__":
    main()
