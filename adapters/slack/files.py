"""Files attached to Slack messages, downloaded with the bot token; and where the token may go.

The bot token is sent only to Slack's own hosts: ``slack.com`` and its subdomains
(``files.slack.com`` serves ``url_private_download``) over HTTPS, or, when the Web API is
elsewhere (``SLACK_API_URL``, a stand-in or a proxy), only to that very scheme, host and
port. A file URL in an event that points anywhere else is refused, never fetched with the
token; so is a redirect that leaves those hosts.

A download that brings Slack's sign-in HTML instead of the file (a token without the
``files:read`` scope, a peer's known bug) is detected: an HTML content type for a file that
is not HTML, or a size that is not the one the event declared, refuses the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from adapters.download import read_at_most
from bot.errors import FileNotFetched
from bot.surface import Attachment

DEFAULT_API = "https://slack.com/api/"
REDIRECTS = 3
_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
_HTML = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class SlackFile:
    """A file object of a message event, as far as the bot uses it."""

    id: str
    name: str
    size: int | None
    mimetype: str
    url: str  # url_private_download, else url_private; "" when the event gives none


def files_of(event: Mapping[str, Any]) -> tuple[SlackFile, ...]:
    """The files a message event carries (pure)."""
    found = []
    for raw in event.get("files") or ():
        if not isinstance(raw, Mapping):
            continue
        size = raw.get("size")
        found.append(
            SlackFile(
                id=str(raw.get("id") or ""),
                name=str(raw.get("name") or raw.get("title") or raw.get("id") or "file"),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                mimetype=str(raw.get("mimetype") or ""),
                url=str(raw.get("url_private_download") or raw.get("url_private") or ""),
            )
        )
    return tuple(found)


def token_may_go_to(url: str, *, api_url: str) -> bool:
    """Whether the bot token may be sent with a request to ``url`` (pure)."""
    try:
        target, api = urlsplit(url), urlsplit(api_url or DEFAULT_API)
        target_port, api_port = target.port, api.port
    except ValueError:
        return False
    if target.username or target.password or not target.hostname:
        return False
    if (api.hostname or "").lower() == "slack.com" and api.scheme == "https":
        host = target.hostname.lower()
        return target.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))
    return (target.scheme, target.hostname.lower(), target_port) == (
        api.scheme,
        (api.hostname or "").lower(),
        api_port,
    )


def attachment(file: SlackFile, *, token: str, api_url: str) -> Attachment:
    """The service's view of a Slack file: its name, declared size, and how to fetch it."""

    async def fetch(most: int) -> bytes:
        return await download(file, token=token, api_url=api_url, most=most)

    return Attachment(name=file.name, size=file.size, fetch=fetch)


async def download(file: SlackFile, *, token: str, api_url: str, most: int) -> bytes:
    """The file's bytes, at most ``most`` + 1 (``FileNotFetched`` saying why not)."""
    if not file.url:
        raise FileNotFetched("Slack gave no download URL for it (is files:read granted?)")
    url = file.url
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        for _ in range(REDIRECTS + 1):
            if not token_may_go_to(url, api_url=api_url):
                raise FileNotFetched(
                    f"its URL is not on Slack's hosts ({urlsplit(url).hostname or '?'}), "
                    "so the bot token was not sent there"
                )
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                if response.status in (301, 302, 303, 307, 308):
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status != 200:
                    raise FileNotFetched(f"Slack answered HTTP {response.status} for it")
                data = await read_at_most(response, most)
                _check(file, response.headers.get("Content-Type", ""), data, most)
                return data
    raise FileNotFetched(f"more than {REDIRECTS} redirects")


def _check(file: SlackFile, content_type: str, data: bytes, most: int) -> None:
    """Refuse what is not the file the event described (a sign-in page, a cut download)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _HTML and file.mimetype.lower() not in _HTML:
        raise FileNotFetched(
            "Slack sent an HTML page instead of the file (its sign-in page: the app needs "
            "the files:read scope)"
        )
    if file.size is not None and len(data) <= most and len(data) != file.size:
        raise FileNotFetched(
            f"{len(data)} bytes arrived where Slack declared {file.size}: not the file"
        )
