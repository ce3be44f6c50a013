"""The ports of the application layer: what the loop needs from the outside world.

Each port is a small ``Protocol``; concrete implementations live in ``bot/providers``
(models), ``sandbox/`` (code execution, in-process or through its HTTP client) and
``adapters/`` (progress on a chat surface). Results crossing a port are frozen
dataclasses of plain values, so they can be recorded as event payloads unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from sandbox.limits import Limits
    from sandbox.result import RunResult

Role = Literal["system", "user", "assistant"]
TextSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a prompt, as sent to a model."""

    role: Role
    content: str


@dataclass(frozen=True)
class ProviderFailure:
    """A provider that failed for good before another one (a fallback) answered."""

    provider: str
    model: str
    error: str
    attempts: int


@dataclass(frozen=True)
class ModelReply:
    """What a model answered, with the accounting the audit log needs."""

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool  # True when the provider gave no usage and we counted ourselves
    cost: float  # in USD, from the price table
    priced: bool  # False when the model is not in the price table (cost is then 0)
    latency_ms: int
    attempts: int  # attempts made on the provider that answered
    # Providers of the fallback chain that failed before this one answered.
    failures: tuple[ProviderFailure, ...] = field(default=())


class ChatModel(Protocol):
    """A language model that answers a prompt, streaming its text as it comes."""

    @property
    def name(self) -> str:
        """``provider:model``, for logs and ``opsloop doctor``."""
        ...

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """Answer ``messages``; raises ``bot.errors.ModelUnavailable`` when every attempt failed."""
        ...


class Sandbox(Protocol):
    """Runs one helper block under hard limits (nsjail in-process, or the sandbox service)."""

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
    ) -> RunResult:
        """Run ``code``; errors of the code are in the result, errors of the sandbox are raised."""
        ...


class Progress(Protocol):
    """Where the loop reports what it is doing, so a surface can show it as it happens."""

    async def thinking(self) -> None:
        """The loop is waiting for the model."""
        ...

    async def model_text(self, chunk: str) -> None:
        """A streamed piece of the model's reply."""
        ...

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Block ``index`` (1-based) of ``total`` in this turn is about to run."""
        ...

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Block ``index`` has run; ``result`` holds its exit status and output."""
        ...

    async def answered(self, text: str) -> None:
        """The model gave its final answer."""
        ...

    async def stopped(self, *, reason: str, detail: str) -> None:
        """The loop stopped without an answer (limit, budget, cancelled, model unavailable)."""
        ...
