"""``kind = "http"``: one endpoint, called with aiohttp.

Parameters are percent-encoded into the URL's path (``quote(safe="")``) and query
(``quote_plus``), so a value can never change the host, the path's structure or the query's
keys. Redirects are followed by hand, at most 3, and only to the same scheme, host and port:
the configured headers (secrets among them) never travel elsewhere. The body is read up to
``max_result_bytes`` (plus one byte, to know it was cut) and never further; it is parsed as
JSON when the response says it is JSON. No cookies are kept between calls, and the
environment's proxy settings are not used.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import aiohttp
from yarl import URL

from bot.tools import templates
from bot.tools.errors import ToolFailed, ToolTimedOut
from bot.tools.specs import HttpTool
from bot.tools.values import RawResult, Result

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HttpClient:
    """The one aiohttp session of a registry's http tools, opened on first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session (created in the running event loop on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


async def call_http(
    tool: HttpTool, arguments: Mapping[str, object], *, client: HttpClient
) -> RawResult:
    """Send the request; the response body is the result, non-2xx a failed call."""
    url = URL(templates.fill_url(tool.url, arguments), encoded=True)
    body = None if tool.body is None else templates.fill_body(tool.body, arguments)
    try:
        async with asyncio.timeout(tool.timeout):
            return await _follow(tool, url, body, client.session())
    except TimeoutError:
        raise ToolTimedOut(f"timed out after {tool.timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ToolFailed(f"request to {url.host} failed: {_describe(exc)}") from None


async def _follow(
    tool: HttpTool, url: URL, body: object | None, session: aiohttp.ClientSession
) -> RawResult:
    origin = (url.scheme, url.host, url.port)
    method = tool.method
    for hop in range(MAX_REDIRECTS + 1):
        async with session.request(
            method,
            url,
            headers=dict(tool.headers),
            json=body,
            allow_redirects=False,
        ) as response:
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or location is None:
                return await _read(tool, response)
            if hop == MAX_REDIRECTS:
                raise ToolFailed(f"more than {MAX_REDIRECTS} redirects")
            target = response.url.join(URL(location))
            if (target.scheme, target.host, target.port) != origin:
                raise ToolFailed(
                    f"HTTP {response.status}: a redirect to {target.scheme}://{target.host}"
                    f" is refused (only {url.scheme}://{url.host} may be reached)"
                )
            if (response.status == 303 and method != "HEAD") or (
                response.status in (301, 302) and method not in ("GET", "HEAD")
            ):
                method, body = "GET", None  # what browsers do; 307 and 308 keep both
            url = target
    raise AssertionError("unreachable")  # the loop returns or raises


async def _read(tool: HttpTool, response: aiohttp.ClientResponse) -> RawResult:
    """The body, capped while it is read; JSON when the response says so."""
    kept = bytearray()
    while len(kept) <= tool.max_bytes:
        chunk = await response.content.read(tool.max_bytes + 1 - len(kept))
        if not chunk:
            break
        kept += chunk
    truncated = len(kept) > tool.max_bytes
    raw = bytes(kept[: tool.max_bytes])
    try:
        text = raw.decode(response.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    result: Result = text
    if not truncated and _is_json(response.content_type):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | list):
            result = parsed
    if 200 <= response.status < 300:
        return RawResult(ok=True, result=result, result_bytes=len(raw), truncated=truncated)
    reason = f" {response.reason}" if response.reason else ""
    return RawResult(
        ok=False,
        result=result,
        result_bytes=len(raw),
        truncated=truncated,
        error=f"HTTP {response.status}{reason}",
    )


async def resolves(url: str) -> str | None:
    """Why the URL's host does not resolve, or None when it does."""
    parsed = URL(url)
    loop = asyncio.get_running_loop()
    try:
        await loop.getaddrinfo(parsed.host, parsed.port)
    except OSError as exc:
        return f"{parsed.host} does not resolve: {exc.strerror or exc}"
    return None


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _describe(exc: aiohttp.ClientError) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
