"""One message streamed into a thread: ``chat.startStream``, ``appendStream``, ``stopStream``.

The model's prose is written as it arrives; appends are batched (one call per
``append_interval`` at most) because every append is a Web API call with its own rate limit.
The stream keeps the raw text (``finish_as`` compares it with the answer) and escapes each
piece as it is sent, so nothing the model wrote becomes a mention or a link.
When the workspace refuses ``chat.startStream``, ``Capabilities.streaming`` turns off and the
caller posts whole messages instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError

from adapters.slack import outbound
from adapters.slack.pacer import ChannelPacer

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.slack.thread import Capabilities, Thread

log = logging.getLogger(__name__)
SLACK_ERRORS = (SlackApiError, ClientError, asyncio.TimeoutError)  # a failed Web API call


class LiveStream:
    """A streamed message; nothing is posted until there is visible text."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        pacer: ChannelPacer,
        capabilities: Capabilities,
        thread: Thread,
        append_interval: float = 0.5,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._caps = capabilities
        self._thread = thread
        self._interval = append_interval
        self._ts: str | None = None
        self._sent = ""
        self._unsent = ""
        self._last = 0.0

    @property
    def started(self) -> bool:
        """Whether the message exists in the thread."""
        return self._ts is not None

    @property
    def text(self) -> str:
        """Everything written so far, sent or still batched."""
        return self._sent + self._unsent

    async def write(self, text: str) -> None:
        """Add ``text``; starts the message at the first visible text, appends when due."""
        self._unsent += text if self._ts or self._unsent else text.lstrip()
        if self._ts is None:
            if self._unsent and self._caps.streaming:
                await self._start()
        elif time.monotonic() - self._last >= self._interval:
            await self._append()

    async def finish_as(self, text: str) -> bool:
        """End the stream so that it reads ``text``; False when what was streamed differs."""
        shown = self.text
        if text.startswith(shown):
            self._unsent += text[len(shown) :]
            await self.close()
            return True
        if shown.rstrip() and text.startswith(shown.rstrip()):
            await self.close()  # only trailing whitespace differs: nothing left to add
            return True
        await self.close()
        return False

    async def close(self) -> None:
        """Send what is batched and stop the stream."""
        if self._ts is None:
            return
        await self._append()
        try:
            await self._client.chat_stopStream(channel=self._thread.channel, ts=self._ts)
        except SLACK_ERRORS as exc:
            log.warning("slack chat.stopStream failed: %s", exc)

    async def _start(self) -> None:
        t = self._thread
        first, self._unsent = (
            self._unsent[: outbound.STREAM_CHUNK],
            self._unsent[outbound.STREAM_CHUNK :],
        )
        await self._pacer.wait(t.channel)
        try:
            response = await self._client.chat_startStream(
                channel=t.channel,
                thread_ts=t.thread_ts,
                markdown_text=outbound.escape(first),
                recipient_team_id=t.team or None,
                recipient_user_id=t.user or None,
            )
        except SlackApiError as exc:
            log.info("chat.startStream unavailable, posting messages instead: %s", exc)
            self._caps.streaming = False
            self._unsent = first + self._unsent
            return
        except SLACK_ERRORS as exc:  # a network failure says nothing about the workspace
            log.warning("slack chat.startStream failed: %s", exc)
            self._unsent = first + self._unsent
            return
        self._ts = str(response.get("ts", ""))
        self._sent = first
        self._last = time.monotonic()

    async def _append(self) -> None:
        if not self._unsent or self._ts is None:
            return
        for piece in outbound.stream_chunks(self._unsent):
            try:
                await self._client.chat_appendStream(
                    channel=self._thread.channel, ts=self._ts, markdown_text=outbound.escape(piece)
                )
            except SLACK_ERRORS as exc:
                log.warning("slack chat.appendStream failed: %s", exc)
                break
            self._sent += piece
        self._unsent = ""
        self._last = time.monotonic()
