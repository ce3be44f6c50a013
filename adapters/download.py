"""Reading a platform's download with a bound, for every surface that fetches attachments."""

from __future__ import annotations

import aiohttp

CHUNK = 256 * 1024


async def read_at_most(response: aiohttp.ClientResponse, most: int) -> bytes:
    """The body, stopping once it is past ``most`` bytes (so at most ``most`` + one chunk is
    held): the caller tells "too big" by a length over ``most``, without reading the rest."""
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > most:
            break
    return bytes(data)
