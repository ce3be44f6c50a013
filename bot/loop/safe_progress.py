"""Progress is best effort: a surface that fails to show a step must not stop the loop.

The event log is the truth and is written before each progress call, so a failed post (a
chat API down, a closed terminal) loses only the display of that step, never the step.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.ports import Progress

if TYPE_CHECKING:
    from bot.surface import ApprovalRequest
    from sandbox.result import RunResult

log = logging.getLogger(__name__)


class SafeProgress:
    """Wraps a ``Progress``; its errors are logged, not raised (cancellation still is)."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.failures = 0

    async def _guard(self, name: str, *args: Any, **kwargs: Any) -> None:
        try:
            await getattr(self.inner, name)(*args, **kwargs)
        except Exception:
            self.failures += 1
            log.warning("progress %s failed; the loop goes on", name, exc_info=True)

    async def thinking(self) -> None:
        """The loop is waiting for the model."""
        await self._guard("thinking")

    async def model_text(self, chunk: str) -> None:
        """A streamed piece of the model's reply."""
        await self._guard("model_text", chunk)  # positional, as the port's callers pass it

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Block ``index`` of ``total`` is about to run."""
        await self._guard("block_started", index=index, total=total, language=language, code=code)

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Block ``index`` has run."""
        await self._guard(
            "block_finished", index=index, total=total, language=language, code=code, result=result
        )

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """A block waits for an approver."""
        await self._guard("approval_requested", request)

    async def answered(self, text: str) -> None:
        """The model gave its final answer."""
        await self._guard("answered", text)

    async def stopped(self, *, reason: str, detail: str) -> None:
        """The loop stopped without an answer."""
        await self._guard("stopped", reason=reason, detail=detail)


class NoProgress:
    """A ``Progress`` that shows nothing (a stop carried out for a dead holder)."""

    async def thinking(self) -> None:
        """Nothing to show."""

    async def model_text(self, chunk: str) -> None:
        """Nothing to show."""

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Nothing to show."""

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Nothing to show."""

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """Nothing to show."""

    async def answered(self, text: str) -> None:
        """Nothing to show."""

    async def stopped(self, *, reason: str, detail: str) -> None:
        """Nothing to show."""
