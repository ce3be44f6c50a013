"""Hand-written fakes of the loop's ports (model, sandbox, progress), and nothing else.

The application is never faked: tests run the real ``ConversationApp`` on ``memory:``. The
model is the product's own ``scripted`` provider; ``WatchedModel`` only watches it (the
prompts it was sent, calls held until released, a provider bug) and leaves the scripting to
``bot.providers.scripted.ScriptedModel``. The sandbox's results are real ``RunResult``s.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.ports import ChatMessage, ModelReply, TextSink
from bot.providers.pricing import PriceTable
from bot.providers.scripted import ScriptedModel, ScriptedTurn
from bot.surface import ApprovalRequest
from sandbox.errors import FileRejected
from sandbox.filenames import numbered, safe_name
from sandbox.files import Outbox, OutboxFile, Skipped, StoredFile
from sandbox.limits import Limits
from sandbox.result import RunResult


def run_result(
    *, exit_code: int | None = 0, stdout: str = "", stderr: str = "", **more: Any
) -> RunResult:
    """A block's result: exit 0 and no output unless told otherwise (``signal``, ``timed_out``…)."""
    values: dict[str, Any] = {"signal": None, "duration_ms": 1, "cpu_ms": 1, **more}
    return RunResult(exit_code=exit_code, stdout=stdout, stderr=stderr, **values)


class WatchedModel(ScriptedModel):
    """The product's scripted model, watched.

    It keeps every prompt it was sent (``prompts``), counts calls in flight (``active``,
    ``max_active``), holds each call at its start while ``hold`` is set and not yet released,
    and raises ``error`` instead of answering when one is given (a provider's bug).
    """

    def __init__(
        self,
        turns: Sequence[ScriptedTurn | str],
        *,
        hold: asyncio.Event | None = None,
        error: BaseException | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        super().__init__(turns, label="test", prices=prices)
        self.hold = hold
        self.error = error
        self.prompts: list[list[ChatMessage]] = []
        self.active = 0
        self.max_active = 0

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """Record the prompt, wait for ``hold``, then raise ``error`` or play the script."""
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.prompts.append(list(messages))
            if self.hold is not None:
                await self.hold.wait()
            if self.error is not None:
                raise self.error
            return await super().reply(messages, on_text=on_text)
        finally:
            self.active -= 1


@dataclass(kw_only=True)
class FakeFiles:
    """The ``Sandbox`` port's file methods over dicts: ``inbox`` and ``outbox`` per workspace
    (name -> bytes); ``refuse`` makes ``put_file`` raise ``FileRejected`` with it."""

    inbox: dict[str, dict[str, bytes]] = field(default_factory=dict)
    outbox: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refuse: str = ""

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        if self.refuse:
            raise FileRejected(self.refuse)
        box = self.inbox.setdefault(workspace, {})
        saved = next(n for n in numbered(safe_name(name)) if n not in box)
        box[saved] = data
        return StoredFile(name=saved, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    async def read_outbox(
        self,
        *,
        workspace: str,
        sent: Collection[tuple[str, str]] = (),
        max_files: int,
        max_bytes: int,
    ) -> Outbox:
        files, skipped = [], []
        for name, data in sorted(self.outbox.get(workspace, {}).items()):
            digest = hashlib.sha256(data).hexdigest()
            if (name, digest) in set(sent):
                continue
            if len(data) > max_bytes or len(files) >= max_files:
                skipped.append(Skipped(name, "over a cap"))
                continue
            files.append(OutboxFile(name=name, data=data, sha256=digest))
        return Outbox(files=tuple(files), skipped=tuple(skipped))


@dataclass
class FakeSandbox(FakeFiles):
    """A ``Sandbox`` returning canned results in order (an exception in the list is raised).

    Once they run out, a block exits 0 printing ``ran <code>``. It records what it ran, and at
    each run what ``snapshot`` returned (say, the event types in the log at that moment).
    """

    results: list[RunResult | BaseException] = field(default_factory=list)
    snapshot: Callable[[], Any] | None = None
    hold: asyncio.Event | None = None  # when set, each run waits for it (a long block)
    ran: list[tuple[str, str, str | None]] = field(default_factory=list)
    mounts: list[tuple[str, ...]] = field(default_factory=list)  # the mounts of each run
    snapshots: list[Any] = field(default_factory=list)

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
        tools: Any = None,
        mounts: Sequence[str] = (),
    ) -> RunResult:
        """Record the run, wait for ``hold``, then return or raise the next canned result."""
        self.ran.append((language, code, workspace))
        self.mounts.append(tuple(mounts))
        if self.snapshot is not None:
            self.snapshots.append(self.snapshot())
        if self.hold is not None:
            await self.hold.wait()
        result = self.results.pop(0) if self.results else run_result(stdout=f"ran {code}\n")
        if isinstance(result, BaseException):
            raise result
        return result


@dataclass
class RecordingProgress:
    """A ``Progress`` that records every call as (name, detail)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def thinking(self) -> None:
        self.calls.append(("thinking", None))

    async def model_text(self, chunk: str) -> None:
        self.calls.append(("model_text", chunk))

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        self.calls.append(("block_started", (index, total, language, code)))

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        self.calls.append(("block_finished", (index, total, result.exit_code)))

    async def approval_requested(self, request: ApprovalRequest) -> None:
        self.calls.append(("approval_requested", request))

    async def answered(self, text: str) -> None:
        self.calls.append(("answered", text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        self.calls.append(("stopped", reason))

    def names(self) -> list[str]:
        """The names of the calls, in order."""
        return [name for name, _ in self.calls]
