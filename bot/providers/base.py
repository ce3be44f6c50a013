"""What every provider shares: one call with retries, token accounting, the reply.

A provider supplies ``attempt`` (one request, streaming its text to a sink) and
``translate`` (its SDK's exceptions to ``retry.AttemptError``); ``answer`` does the rest,
so retries, estimates, prices and error messages are the same for every provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bot.errors import ModelUnavailable
from bot.ports import ChatMessage, ChatModel, ModelReply, ProviderFailure, TextSink
from bot.providers.pricing import PriceTable
from bot.providers.retry import AttemptError, GaveUp, RetryPolicy, SinkFailed, call_with_retries
from domain.tokens import estimate_prompt_tokens, estimate_tokens

C = TypeVar("C")


@dataclass(frozen=True)
class Streamed:
    """What one successful attempt produced; None where the provider reported no usage."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    truncated: str | None = None  # "tokens" (the provider's limit) or "repetition" (ours)
    discarded_chars: int = 0  # dropped after the first block closed (``ReplyGuard``)


class ProviderModel(ChatModel, Protocol):
    """A ``ChatModel`` that can also be pinged (``opsloop doctor``) and closed."""

    async def ping(self) -> float:
        """A heartbeat; returns its latency in ms or raises ``ModelUnavailable``."""
        ...

    async def aclose(self) -> None:
        """Close network clients."""
        ...


Attempt = Callable[[TextSink | None], Awaitable[Streamed]]
Hint = Callable[[AttemptError], str]


def describe(failure: ProviderFailure) -> str:
    """One sentence about a provider that gave up."""
    tries = "attempt" if failure.attempts == 1 else "attempts"
    who = f"{failure.provider}:{failure.model}"
    return f"{who} failed after {failure.attempts} {tries}: {failure.error}"


def _guarded(on_text: TextSink | None) -> TextSink | None:
    if on_text is None:
        return None

    async def sink(chunk: str) -> None:
        try:
            await on_text(chunk)
        except Exception as exc:
            raise SinkFailed() from exc

    return sink


def build_reply(
    *,
    provider: str,
    model: str,
    messages: Sequence[ChatMessage],
    streamed: Streamed,
    prices: PriceTable,
    latency_ms: int,
    attempts: int,
) -> ModelReply:
    """A ``ModelReply`` with usage (estimated where missing) and its cost."""
    estimated = streamed.input_tokens is None or streamed.output_tokens is None
    tokens_in = streamed.input_tokens
    if tokens_in is None:
        tokens_in = estimate_prompt_tokens([m.content for m in messages])
    tokens_out = streamed.output_tokens
    if tokens_out is None:
        tokens_out = estimate_tokens(streamed.text)
    cost = prices.cost(
        provider=provider, model=model, input_tokens=tokens_in, output_tokens=tokens_out
    )
    return ModelReply(
        text=streamed.text,
        provider=provider,
        model=model,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        tokens_estimated=estimated,
        cost=cost.usd,
        priced=cost.priced,
        latency_ms=latency_ms,
        attempts=attempts,
        truncated=streamed.truncated,
        discarded_chars=streamed.discarded_chars,
    )


async def answer(
    *,
    provider: str,
    model: str,
    messages: Sequence[ChatMessage],
    on_text: TextSink | None,
    attempt: Attempt,
    translate: Callable[[Exception], AttemptError],
    policy: RetryPolicy,
    prices: PriceTable,
    hint: Hint,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> ModelReply:
    """Call ``attempt`` with retries and account for the reply; raises ``ModelUnavailable``.

    ``latency_ms`` is the duration of the attempt that answered; earlier attempts and the
    waits between them are counted in ``attempts`` instead.
    """
    sink = _guarded(on_text)
    started = time.perf_counter()

    async def timed() -> Streamed:
        nonlocal started
        started = time.perf_counter()
        return await attempt(sink)

    try:
        streamed, attempts = await call_with_retries(
            timed, policy=policy, translate=translate, sleep=sleep
        )
    except GaveUp as exc:
        failure = ProviderFailure(
            provider=provider,
            model=model,
            error=exc.error.reason + hint(exc.error),
            attempts=exc.attempts,
        )
        raise ModelUnavailable(describe(failure), failures=(failure,)) from None
    latency_ms = round((time.perf_counter() - started) * 1000)
    return build_reply(
        provider=provider,
        model=model,
        messages=messages,
        streamed=streamed,
        prices=prices,
        latency_ms=latency_ms,
        attempts=attempts,
    )


class LoopBound(Generic[C]):
    """An SDK client for the running event loop, made on first use and closed with it.

    An HTTP pool belongs to the event loop it was first used on, so a CLI that runs
    ``asyncio.run`` twice (doctor, then ask) needs a fresh client for the second loop.
    """

    def __init__(self, *, make: Callable[[], C], close: Callable[[C], Awaitable[Any]]) -> None:
        self._make = make
        self._close = close
        self._client: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> C:
        """The client of the running loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = self._make(), loop
        return self._client

    async def aclose(self) -> None:
        """Close the client when it belongs to the running loop; forget it either way."""
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._close(self._client)
        self._client = None
