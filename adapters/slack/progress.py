"""The loop's ``Progress`` shown in a Slack thread.

👀 on receipt; a status while working (the assistant thread status where the workspace
allows it, otherwise one message edited in place, throttled for ``chat.update``'s limits);
the model's prose streamed live with ``chat.startStream`` where available (``<helpers>``
blocks hidden: each block is shown as code plus result once it has run), else posted; the
final answer the same way; ✅ or ❗ at the end. A Slack call that fails is logged and never
breaks the loop: the conversation's log matters more than a missing reaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import outbound
from adapters.slack.assistant import feedback_blocks
from adapters.slack.pacer import ChannelPacer
from adapters.slack.stream import SLACK_ERRORS, LiveStream
from adapters.slack.thread import Capabilities, Thread
from domain.conversation_files import text_sha256
from domain.helpers import ProseStream

if TYPE_CHECKING:
    from adapters.slack.approvals import ApprovalMessages
    from bot.surface import ApprovalRequest, Outcome
    from sandbox.result import RunResult

log = logging.getLogger(__name__)


class SlackProgress:
    """Implements ``bot.ports.Progress`` for one run of the loop in one Slack thread."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        pacer: ChannelPacer,
        capabilities: Capabilities,
        thread: Thread,
        status_interval: float = 1.5,
        approvals: ApprovalMessages | None = None,
        preface: str = "",
    ) -> None:
        self._client = client
        self._preface = preface  # posted before this progress's first call to Slack
        self._approvals = approvals  # where approval messages are noted, to update them later
        self._pacer = pacer
        self._caps = capabilities
        self._thread = thread
        self._status_interval = status_interval
        self._status_ts: str | None = None  # the fallback status message
        self._status_shown = False
        self._last_update = 0.0
        self._pending: str | None = None
        self._flush: asyncio.Task[None] | None = None
        self._filter = ProseStream()
        self._prose = ""  # this turn's text outside blocks
        self._live: LiveStream | None = None
        self.finished = False

    # -- Slack calls ------------------------------------------------------------------------

    async def _call(self, method: str, /, **kwargs: Any) -> dict[str, Any] | None:
        if self._preface:  # only the replica that runs the loop gets here, once
            text, self._preface = self._preface, ""
            await self.post_text(text)
        try:
            response = await getattr(self._client, method)(**kwargs)
        except SLACK_ERRORS as exc:
            log.warning("slack %s failed in %s: %s", method, self._thread.channel, exc)
            return None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def react(self, name: str) -> None:
        """Add reaction ``name`` to the person's message."""
        t = self._thread
        await self._call("reactions_add", channel=t.channel, timestamp=t.message_ts, name=name)

    async def post_text(self, text: str) -> None:
        """Post ``text`` in the thread (paced)."""
        await self.post(outbound.SlackMessage(text=text))

    async def post(self, message: outbound.SlackMessage) -> str:
        """Post one message in the thread, then its uploads (paced, as each is a post); the
        message's ``ts``, or "" when Slack refused it."""
        t = self._thread
        await self._pacer.wait(t.channel)
        extra = {"blocks": list(message.blocks)} if message.blocks else {}
        data = await self._call(
            "chat_postMessage", channel=t.channel, thread_ts=t.thread_ts, text=message.text, **extra
        )
        for upload in message.uploads:
            await self._upload(content=upload.content, filename=upload.filename, title=upload.title)
        return str((data or {}).get("ts") or "")

    async def _upload(self, **file: Any) -> None:
        """One file into the thread (files upload v2), paced like a post."""
        t = self._thread
        await self._pacer.wait(t.channel)
        await self._call("files_upload_v2", channel=t.channel, thread_ts=t.thread_ts, **file)

    # -- status -----------------------------------------------------------------------------

    async def _status(self, text: str) -> None:
        t = self._thread
        if t.channel not in self._caps.no_assistant_status:
            try:
                await self._client.assistant_threads_setStatus(
                    channel_id=t.channel, thread_ts=t.thread_ts, status=text
                )
                self._status_shown = True
                return
            except SlackApiError as exc:
                # Not an assistant thread, or the feature is off: fall back for this channel.
                log.info("assistant status unavailable in %s: %s", t.channel, exc)
                self._caps.no_assistant_status.add(t.channel)
            except SLACK_ERRORS as exc:
                log.warning("slack assistant.threads.setStatus failed: %s", exc)
                return
        self._pending = f"_⏳ {text}_"
        if self._status_ts is None:
            await self._pacer.wait(t.channel)
            data = await self._call(
                "chat_postMessage", channel=t.channel, thread_ts=t.thread_ts, text=self._pending
            )
            self._pending = None
            self._last_update = time.monotonic()
            self._status_ts = str(data.get("ts", "")) if data else None
            return
        if self._flush is None:
            delay = max(0.0, self._last_update + self._status_interval - time.monotonic())
            self._flush = asyncio.create_task(self._flush_later(delay))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._flush = None
        text, self._pending = self._pending, None
        if text is not None and self._status_ts:
            self._last_update = time.monotonic()
            await self._call(
                "chat_update", channel=self._thread.channel, ts=self._status_ts, text=text
            )

    async def _end_status(self, final: str) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        t = self._thread
        if self._status_ts:
            await self._call("chat_update", channel=t.channel, ts=self._status_ts, text=final)
        elif self._status_shown:
            await self._call(
                "assistant_threads_setStatus",
                channel_id=t.channel,
                thread_ts=t.thread_ts,
                status="",
            )

    # -- Progress ---------------------------------------------------------------------------

    async def thinking(self) -> None:
        """The loop waits for the model: a new turn starts."""
        await self._end_prose()
        await self._status("is thinking…")

    async def model_text(self, chunk: str) -> None:
        """Stream the model's prose as it comes (blocks are held back)."""
        prose = self._filter.feed(chunk)
        self._prose += prose
        if prose and self._caps.streaming:
            if self._live is None:
                self._live = self._stream()
            await self._live.write(prose)

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """End the turn's prose and say which block runs."""
        await self._end_prose()
        await self._status(f"is running block {index}/{total} ({outbound.escape(language)})…")

    def _stream(self) -> LiveStream:
        return LiveStream(
            client=self._client, pacer=self._pacer, capabilities=self._caps, thread=self._thread
        )

    async def _end_prose(self) -> None:
        """The turn's prose is complete: stop its stream, or post it where streams are refused."""
        rest = self._filter.flush()
        prose, live = self._prose + rest, self._live
        self._filter, self._prose, self._live = ProseStream(), "", None
        if live is not None and live.started:
            await live.write(rest)
            await live.close()
        elif prose.strip():
            for message in outbound.answer_messages(prose.strip()):
                await self.post(message)

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Show the block's code and result."""
        await self.post(
            outbound.block_message(
                index=index, total=total, language=language, code=code, result=result
            )
        )

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """End the turn's prose and post the block with its Approve and Deny buttons."""
        await self._end_prose()
        await self._end_status("_⏸️ waiting for approval_")
        message = outbound.approval_message(request)
        ts = await self.post(message)
        if ts and self._approvals is not None:
            self._approvals.remember(
                request, channel=self._thread.channel, ts=ts, blocks=message.blocks
            )

    async def answered(self, text: str) -> None:
        """Finish the answer (streamed where possible) and mark the message ✅."""
        self.finished = True
        rest = self._filter.flush()
        live = self._live
        self._filter, self._prose, self._live = ProseStream(), "", None
        await self._end_status("_✅ done_")
        if live is not None and live.started:
            await live.write(rest)
            if not await live.finish_as(text):
                for message in outbound.answer_messages(text):
                    await self.post(message)
        else:
            await self._send_answer(text)
        if self._thread.assistant:
            blocks = tuple(feedback_blocks(text_sha256(text)))
            await self.post(outbound.SlackMessage(text="Was this answer helpful?", blocks=blocks))
        await self.react("white_check_mark")

    async def send_files(self, outcome: Outcome) -> None:
        """Upload the files the answer carries (files upload v2; images show inline), and
        name in one line those of the outbox that were not sent."""
        for file in outcome.files:
            await self._upload(file=file.data, filename=file.name, title=file.name)
        if outcome.files_skipped:
            text = "Not sent from /workspace/outbox: " + "; ".join(outcome.files_skipped)
            await self.post_text(outbound.escape(text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        """Say in one sentence why the loop stopped and mark the message ❗."""
        self.finished = True
        await self._end_prose()
        await self._end_status("_❗ stopped_")
        await self.post_text(outbound.stopped_sentence(reason=reason, detail=detail))
        await self.react("exclamation")

    async def failed(self) -> None:
        """The surface or service failed: one sentence and ❗ (the traceback goes to the log)."""
        self.finished = True
        await self._end_prose()
        await self._end_status("_❗ failed_")
        await self.post_text(outbound.failure_sentence())
        await self.react("exclamation")

    async def _send_answer(self, text: str) -> None:
        if self._caps.streaming:
            live = self._stream()
            await live.write(text)
            if live.started:
                await live.close()
                return
        for message in outbound.answer_messages(text):
            await self.post(message)
