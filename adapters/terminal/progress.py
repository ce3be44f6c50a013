"""The loop's ``Progress`` on a rich console: a spinner, streamed prose, code and results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.status import Status

from adapters.terminal.outbound import render_approval, render_code, render_result, shown
from bot.visible import visible
from domain.helpers import ProseStream

if TYPE_CHECKING:
    from bot.surface import ApprovalRequest
    from sandbox.result import RunResult


class TerminalProgress:
    """``bot.ports.Progress`` on a rich console: spinner, streamed prose, code and results."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None
        self._filter = ProseStream()
        self._streamed = False
        self._cr = ""  # a streamed "\r" held back: the next chunk may make it "\r\n"

    def _spin(self, message: str) -> None:
        self._unspin()
        self._status = self.console.status(message, spinner="dots")
        self._status.start()

    def _unspin(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def reset(self) -> None:
        """Stop any spinner and forget a half-streamed reply (after an error)."""
        self._unspin()
        self._filter = ProseStream()
        self._streamed = False
        self._cr = ""

    def _end_stream(self) -> None:
        rest, self._cr = self._cr + self._filter.flush(), ""
        if rest:
            self.console.print(shown(rest), end="")
        if self._streamed:
            self.console.print()
        self._streamed = False

    async def thinking(self) -> None:
        """The loop is waiting for the model."""
        self._filter = ProseStream()
        self._streamed = False
        self._cr = ""
        self._spin("thinking…")

    async def model_text(self, chunk: str) -> None:
        """A streamed piece of the model's reply (blocks are shown when they run)."""
        self._unspin()
        prose = self._cr + self._filter.feed(chunk)
        self._cr = "\r" if prose.endswith("\r") else ""
        prose = prose[: len(prose) - len(self._cr)]
        if not self._streamed:
            prose = prose.lstrip()
        if prose:
            self.console.print(shown(prose), end="", soft_wrap=True)
            self._streamed = True

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Show the code, then spin while it runs."""
        self._unspin()
        self._end_stream()
        self.console.print(render_code(index=index, total=total, language=language, code=code))
        self._spin(f"running block {index}/{total}…")

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Show the block's result."""
        self._unspin()
        self.console.print(render_result(result, index=index, total=total, language=language))

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """Show the block that waits for a yes (``opsloop chat`` asks for it next)."""
        self._unspin()
        self._end_stream()
        self.console.print(render_approval(request))

    async def answered(self, text: str) -> None:
        """The final answer (already streamed unless the model did not stream)."""
        self._unspin()
        streamed = self._streamed
        self._end_stream()
        if not streamed:
            self.console.print(shown(text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        """The loop stopped without an answer."""
        self._unspin()
        self._end_stream()
        line = shown(f"stopped ({reason})", style="yellow")
        if detail:
            line.append(visible(f": {detail}"))
        self.console.print(line)
