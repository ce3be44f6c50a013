"""Files on Discord: attachments of a message downloaded into the inbox, outbox files sent.

An attachment's URL comes from the gateway; it is fetched without any credential (Discord's
CDN links are signed), only over HTTPS from Discord's CDN hosts, or from the origin of the
REST API discord.py is pointed at (a stand-in or a proxy), at most the cap plus one byte.
Files out go as attachments of messages in the thread, at most ``PER_MESSAGE`` a message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from adapters.discord.outbound import Attachment as Upload
from adapters.discord.outbound import Outgoing
from adapters.download import read_at_most
from bot.errors import FileNotFetched
from bot.surface import Attachment
from sandbox.files import OutboxFile

CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
DISCORD_API = "https://discord.com/api/v10"
PER_MESSAGE = 10  # Discord's limit of attachments on one message
_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)


@dataclass(frozen=True)
class FileFacts:
    """An attachment of a message, as plain values."""

    name: str
    size: int | None
    url: str


def may_fetch(url: str, *, api_base: str) -> bool:
    """Whether an attachment URL is Discord's (pure)."""
    try:
        target, api = urlsplit(url), urlsplit(api_base or DISCORD_API)
        ports = target.port, api.port
    except ValueError:
        return False
    if not target.hostname or target.username or target.password:
        return False
    if api.hostname == "discord.com" and api.scheme == "https":
        return target.scheme == "https" and target.hostname.lower() in CDN_HOSTS
    return (target.scheme, target.hostname, ports[0]) == (api.scheme, api.hostname, ports[1])


def attachment(facts: FileFacts, *, api_base: str) -> Attachment:
    """The service's view of a Discord attachment."""

    async def fetch(most: int) -> bytes:
        if not may_fetch(facts.url, api_base=api_base):
            raise FileNotFetched("its URL is not on Discord's hosts, so it was not fetched")
        async with (
            aiohttp.ClientSession(timeout=_TIMEOUT) as session,
            session.get(facts.url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise FileNotFetched(f"Discord answered HTTP {response.status} for it")
            data = await read_at_most(response, most)
        if facts.size is not None and len(data) <= most and len(data) != facts.size:
            raise FileNotFetched(f"{len(data)} bytes arrived where Discord declared {facts.size}")
        return data

    return Attachment(name=facts.name, size=facts.size, fetch=fetch)


def outgoing(files: Sequence[OutboxFile], skipped: Sequence[str]) -> list[Outgoing]:
    """The messages that carry an answer's files (images show inline), and the skipped ones."""
    messages = [
        Outgoing(
            text="",
            files=tuple(
                Upload(filename=f.name, content=f.data) for f in files[i : i + PER_MESSAGE]
            ),
        )
        for i in range(0, len(files), PER_MESSAGE)
    ]
    if skipped:
        text = "Not sent from /workspace/outbox: " + "; ".join(skipped)
        messages.append(Outgoing(text=text[:1900]))
    return messages
