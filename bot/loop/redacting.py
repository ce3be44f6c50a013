"""What a surface is shown passes the process's one redactor (chat is an exit like the log).

``RedactingProgress`` wraps the surface's ``Progress`` for one run of the loop. The model's
prose arrives in chunks and goes through a ``StreamRedactor``, which holds back only what
could still become a secret (a secret split across two chunks never shows) and releases the
rest before anything else is shown: the next progress call flushes it first. Code, block
output, approval requests, answers and stop details are redacted whole. ``show`` is how the
runner wraps a surface: redaction inside, ``SafeProgress`` outside, so a redactor that fails
shows nothing rather than the text it could not clean.

``redacted_outcome`` and ``redacted_timeline`` are the same rule for what the service hands
surfaces outside a run: the outcome of a run and the ``replay`` command's events (which may
predate redaction, or hold what a person typed).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from bot.loop.safe_progress import SafeProgress
from bot.ports import Progress
from domain.redaction import Redactor

if TYPE_CHECKING:
    from bot.surface import ApprovalRequest, Outcome
    from sandbox.result import RunResult

ENVELOPE = frozenset({"type", "version", "timestamp", "conversation_id", "prev_hash"})


def no_secrets() -> Redactor:
    """A redactor that knows no secret: credential shapes only."""
    return Redactor({})


def show(progress: Progress, redactor: Redactor) -> Progress:
    """``progress`` as the loop uses it: redacted, and never breaking the loop."""
    return SafeProgress(RedactingProgress(progress, redactor))


class RedactingProgress:
    """A ``Progress`` that shows the inner one only redacted text."""

    def __init__(self, inner: Progress, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor
        self._stream = redactor.stream()

    def _text(self, text: str) -> str:
        return self.redactor.redact(text).text

    async def _flush(self) -> None:
        """Release the prose held back: the model's reply is complete."""
        rest = self._stream.flush().text
        self._stream = self.redactor.stream()
        if rest:
            await self.inner.model_text(rest)

    async def thinking(self) -> None:
        """The loop is waiting for the model."""
        await self._flush()
        await self.inner.thinking()

    async def model_text(self, chunk: str) -> None:
        """A streamed piece of the model's reply: what of it is final, redacted."""
        released = self._stream.feed(chunk).text
        if released:
            await self.inner.model_text(released)

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Block ``index`` of ``total`` is about to run."""
        await self._flush()
        code = self._text(code)
        await self.inner.block_started(index=index, total=total, language=language, code=code)

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Block ``index`` has run."""
        await self._flush()
        result = dataclasses.replace(
            result, stdout=self._text(result.stdout), stderr=self._text(result.stderr)
        )
        await self.inner.block_finished(
            index=index, total=total, language=language, code=self._text(code), result=result
        )

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """A block waits for an approver."""
        await self._flush()
        await self.inner.approval_requested(
            dataclasses.replace(request, code=self._text(request.code))
        )

    async def answered(self, text: str) -> None:
        """The model gave its final answer."""
        await self._flush()
        await self.inner.answered(self._text(text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        """The loop stopped without an answer."""
        await self._flush()
        await self.inner.stopped(reason=reason, detail=self._text(detail))


def redacted_outcome(outcome: Outcome, redactor: Redactor) -> Outcome:
    """How a run ended, as a surface may show it."""
    awaiting = outcome.awaiting
    if awaiting is not None:
        awaiting = dataclasses.replace(awaiting, code=redactor.redact(awaiting.code).text)
    answer = None if outcome.answer is None else redactor.redact(outcome.answer).text
    detail = redactor.redact(outcome.detail).text
    return dataclasses.replace(outcome, answer=answer, detail=detail, awaiting=awaiting)


def redacted_timeline(items: list[dict[str, Any]], redactor: Redactor) -> list[dict[str, Any]]:
    """Recorded events as a surface may show them: every payload field redacted."""
    return [
        {k: v if k in ENVELOPE else redactor.redact_value(v)[0] for k, v in item.items()}
        for item in items
    ]
