"""How ``POST /v1/run`` sends a result: a short one as one body with its ``Content-Length``,
headers and body in one write (one segment, one wake-up of the caller); a long one streamed
in pieces, so the service never holds a full-size copy of the encoded result."""

from __future__ import annotations

import asyncio
import itertools
import logging

from aiohttp import web

from sandbox.result import RunResult
from sandbox.wire import result_chunks

log = logging.getLogger(__name__)
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


async def send_result(
    request: web.Request, result: RunResult, *, seconds: float
) -> web.StreamResponse:
    """Send ``result`` as JSON; a reader too slow for ``seconds`` is cut."""
    pieces = result_chunks(result.to_dict())
    first = next(pieces)
    second = next(pieces, None)
    response: web.StreamResponse
    if second is None:  # short: aiohttp sends the headers with the body, in one write
        response = web.Response(body=first, headers=JSON_HEADERS)
    else:
        response = web.StreamResponse(headers=JSON_HEADERS)  # chunked
    try:
        async with asyncio.timeout(seconds):
            await response.prepare(request)
            if second is not None:
                for piece in itertools.chain((first, second), pieces):
                    await response.write(piece)
            await response.write_eof()
    except TimeoutError:
        log.warning("a caller did not read its result within %g s: connection closed", seconds)
        if request.transport is not None:
            request.transport.abort()
    except ConnectionError:  # the caller went away; nothing to tell it
        pass
    return response
