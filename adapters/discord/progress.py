"""The loop's ``Progress`` shown in a Discord channel, with a typing indicator kept alive.

Everything Discord-specific sits behind ``Poster`` (post one ``Outgoing``, show typing), so
this module is tested with a recording poster and the glue supplies a channel-backed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from adapters.discord.outbound import (
    ApprovalButtons,
    BlockView,
    Outgoing,
    render_approval,
    render_reply,
)
from domain.helpers import parse_helpers

if TYPE_CHECKING:
    from types import TracebackType

    from bot.surface import ApprovalRequest, Outcome
    from sandbox.result import RunResult

log = logging.getLogger(__name__)

# Discord shows "typing…" for about 10 seconds after each request; refresh a little sooner.
TYPING_INTERVAL = 8.0


class Poster(Protocol):
    """Where messages go: one Discord channel (a DM or a thread)."""

    async def post(self, message: Outgoing) -> None:
        """Send one message with its files."""
        ...

    async def typing(self) -> None:
        """Show the typing indicator (lasts about 10 seconds)."""
        ...

    async def post_approval(self, message: Outgoing, buttons: ApprovalButtons) -> None:
        """Send a message with the Approve and Deny buttons."""
        ...


class TypingKeeper:
    """Keeps "typing…" visible for as long as a loop runs, however long that is."""

    def __init__(self, poster: Poster, *, interval: float = TYPING_INTERVAL) -> None:
        self._poster = poster
        self._interval = interval
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TypingKeeper:
        self._task = asyncio.create_task(self._keep_typing(), name="discord-typing")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def kick(self) -> None:
        """Refresh now: a message we just sent cleared the indicator on users' screens."""
        self._kick.set()

    async def stop(self) -> None:
        """Stop refreshing (before the final answer, so "typing…" does not outlive it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep_typing(self) -> None:
        while True:
            try:
                await self._poster.typing()
            except Exception as exc:  # cosmetic: a failed indicator must never stop the loop
                log.debug("typing indicator failed: %s", exc)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel() that
            # lands as the kick arrives, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._kick.wait()
            self._kick.clear()


class DiscordProgress:
    """Shows the loop as it happens: prose, each block with its result, the answer."""

    def __init__(self, poster: Poster, *, typing: TypingKeeper | None = None) -> None:
        self._poster = poster
        self._typing = typing
        self._streamed = ""  # the current model turn's text, streamed so far
        self.finished = False  # an answer or a stop was shown

    async def _post_all(self, messages: list[Outgoing]) -> None:
        for message in messages:
            await self._poster.post(message)

    async def _end(self, messages: list[Outgoing]) -> None:
        if self._typing is not None:
            await self._typing.stop()
        await self._post_all(messages)
        self.finished = True

    async def thinking(self) -> None:
        """A new model turn starts."""
        self._streamed = ""

    async def model_text(self, chunk: str) -> None:
        """Collect the turn's text; its prose is shown when the first block starts."""
        self._streamed += chunk

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Show the model's prose around its blocks before they run."""
        if index == 1:
            prose = parse_helpers(self._streamed).text
            self._streamed = ""
            if prose:
                await self._post_all(render_reply(prose=prose))
                self._kicked()

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Show the block as a fenced code block plus its result."""
        block = BlockView(index=index, total=total, language=language, code=code, result=result)
        await self._post_all(render_reply(blocks=[block]))
        self._kicked()

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """Show the model's prose, then the block with its Approve and Deny buttons."""
        prose = parse_helpers(self._streamed).text
        self._streamed = ""
        if prose:
            await self._post_all(render_reply(prose=prose))
        if self._typing is not None:
            await self._typing.stop()  # nothing runs until someone decides
        message, buttons = render_approval(request)
        await self._poster.post_approval(message, buttons)

    async def answered(self, text: str) -> None:
        """Show the final answer."""
        await self._end(render_reply(answer=text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        """Say in one sentence why the loop stopped."""
        await self._end(render_reply(stopped=(reason, detail)))

    async def settle(self, outcome: Outcome) -> None:
        """Show the outcome if the loop ended without telling this progress (unless another
        process runs the loop now: it shows the progress)."""
        if self.finished or outcome.elsewhere:
            return
        if outcome.answer is not None:
            await self.answered(outcome.answer)
        elif outcome.stopped_reason is not None:
            await self.stopped(reason=outcome.stopped_reason, detail=outcome.detail)

    def _kicked(self) -> None:
        if self._typing is not None:
            self._typing.kick()
