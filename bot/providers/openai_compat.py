"""The ``openai`` and ``groq`` providers: any OpenAI-compatible chat completions API.

One class serves OpenAI, Groq (its OpenAI-compatible endpoint), vLLM, the llama.cpp
server and LM Studio, through the official ``openai`` client with its own retries off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import openai
import pydantic

from bot.errors import ModelUnavailable
from bot.ports import ChatMessage, ModelReply, TextSink
from bot.providers.base import LoopBound, Streamed, answer
from bot.providers.pricing import PriceTable
from bot.providers.probe import (
    PROBE_PROMPT,
    PROBE_SEEDS,
    PROBE_TOKENS,
    Bounds,
    context_from,
    judge,
    stop_word,
)
from bot.providers.retry import (
    AttemptError,
    ConnectFailed,
    HttpStatus,
    Incomplete,
    Malformed,
    RetryPolicy,
    Timeout,
    Unexpected,
    parse_retry_after,
)
from bot.providers.turns import (
    TurnCaps,
    finish_text,
    openai_limits,
    truncation,
    wire_messages,
)
from bot.providers.wire import error_message
from domain.runaway import ReplyGuard

GROQ_BASE_URL = "https://api.groq.com/openai/v1"


def translate_error(exc: Exception, *, timeout_seconds: float) -> AttemptError:
    """Map what the openai client raises to an ``AttemptError``."""
    if isinstance(exc, AttemptError):
        return exc
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return Timeout(f"no answer within {timeout_seconds:g} s")
    if isinstance(exc, openai.APIConnectionError | ConnectionError):
        cause = exc.__cause__ or exc
        # By name: the SDK wraps httpx's (openai 2) or httpx2's (openai 3) ConnectError.
        if isinstance(cause, ConnectionRefusedError) or type(cause).__name__ == "ConnectError":
            return ConnectFailed("cannot connect")
        return ConnectFailed(f"the connection broke ({type(cause).__name__})")
    if isinstance(exc, openai.APIStatusError):
        message, code = error_message(exc.response.text) if _readable(exc) else (exc.message, None)
        return HttpStatus(
            status=exc.status_code,
            message=message,
            code=exc.code or code,
            retry_after=parse_retry_after(dict(exc.response.headers)),
        )
    if isinstance(
        exc, openai.APIResponseValidationError | json.JSONDecodeError | pydantic.ValidationError
    ):
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return Malformed(f"malformed response, not the OpenAI wire format ({first})")
    if isinstance(exc, openai.APIError):
        # An {"error": …} event in the middle of a stream: the server failed while answering.
        return Incomplete(f"the stream stopped with an error: {exc.message[:200]}")
    return Unexpected(f"{type(exc).__name__}: {exc}")


def _readable(exc: openai.APIStatusError) -> bool:
    try:
        exc.response.text  # noqa: B018 - raises when a streamed body was never read
    except Exception:  # noqa: BLE001
        return False
    return True


class OpenAICompatModel:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint, streamed as SSE."""

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        api_key: str,
        base_url: str | None,
        retry: RetryPolicy,
        prices: PriceTable,
        stream: bool = True,
        key_variable: str = "OPENAI_API_KEY",
        caps: TurnCaps | None = None,
    ) -> None:
        self.provider = provider
        self.caps = caps or TurnCaps()
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self._retry = retry
        self._prices = prices
        self._stream = stream
        self._key_variable = key_variable
        self._clients = LoopBound(make=self._new_client, close=lambda client: client.close())

    @property
    def name(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"

    def _sdk(self) -> openai.AsyncOpenAI:
        return self._clients.get()

    def _new_client(self) -> openai.AsyncOpenAI:
        limit = self._retry.timeout_seconds
        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=openai.Timeout(limit, connect=min(limit, 10.0)),
            max_retries=0,  # every attempt is ours, counted and recorded
        )

    def _translate(self, exc: Exception) -> AttemptError:
        return translate_error(exc, timeout_seconds=self._retry.timeout_seconds)

    def _hint(self, error: AttemptError) -> str:
        where = self.base_url or "api.openai.com"
        if isinstance(error, HttpStatus) and error.status in (401, 403):
            return f" (check {self._key_variable})"
        if isinstance(error, HttpStatus) and error.quota_exhausted:
            return " (the account is out of credit)"
        if isinstance(error, HttpStatus) and error.status == 404:
            return f" (does {where} serve the model {self.model}?)"
        if isinstance(error, ConnectFailed):
            if self.base_url is None:
                return " (is api.openai.com reachable from here?)"
            return f" (is the server at {where} running?)"
        if isinstance(error, Malformed):
            return f" (is {where} an OpenAI-compatible API?)"
        return ""

    async def _attempt(self, messages: Sequence[ChatMessage], sink: TextSink | None) -> Streamed:
        payload: Any = wire_messages(messages, system_role=self.caps.system_role)
        client = self._sdk()
        limits = openai_limits(self.caps)
        guard = ReplyGuard()
        if not self._stream:
            whole = await client.chat.completions.create(
                model=self.model, messages=payload, **limits
            )
            choice = whole.choices[0] if whole.choices else None
            guard.feed((choice.message.content or "") if choice else "")
            reason = choice.finish_reason if choice else None
            text = finish_text(guard, stopped=reason == "stop")
            if sink and text:
                await sink(text)
            usage = whole.usage
            return Streamed(
                text,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
                truncated=truncation(guard, length=reason == "length"),
                discarded_chars=guard.discarded,
            )
        stream = await client.chat.completions.create(
            model=self.model,
            messages=payload,
            stream=True,
            stream_options={"include_usage": True},
            **limits,
        )
        return await self._read(stream, guard, sink)

    async def _read(self, stream: Any, guard: ReplyGuard, sink: TextSink | None) -> Streamed:
        """Read a chat completion stream through ``guard``, closing it early when it cuts."""
        reason: str | None = None
        tokens_in: int | None = None
        tokens_out: int | None = None
        async for chunk in stream:
            usage = chunk.usage
            if usage is not None:
                tokens_in, tokens_out = usage.prompt_tokens, usage.completion_tokens
            elif (groq := _groq_usage(chunk)) is not None:
                tokens_in, tokens_out = groq.prompt_tokens, groq.completion_tokens
            for choice in chunk.choices:
                piece = choice.delta.content if choice.delta else None
                kept = guard.feed(piece) if piece else ""
                if kept and sink:
                    await sink(kept)
                reason = choice.finish_reason or reason
            if guard.close_now:
                await stream.close()  # the rest is not wanted: the server stops generating
                break
        if reason is None and not guard.done:
            raise Incomplete("the stream ended before the model was done")
        text = finish_text(guard, stopped=reason == "stop")
        if sink and len(text) > len(guard.text):
            await sink(text[len(guard.text) :])  # the closing tag the stop sequence took
        return Streamed(
            text,
            tokens_in,
            tokens_out,
            truncated=truncation(guard, length=reason == "length"),
            discarded_chars=guard.discarded,
        )

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """Answer ``messages``, streaming text to ``on_text``; raises ``ModelUnavailable``."""
        return await answer(
            provider=self.provider,
            model=self.model,
            messages=messages,
            on_text=on_text,
            attempt=lambda sink: self._attempt(messages, sink),
            translate=self._translate,
            policy=self._retry,
            prices=self._prices,
            hint=self._hint,
        )

    async def ping(self) -> float:
        """List the server's models (no tokens spent); returns the latency in ms."""
        started = time.perf_counter()
        try:
            await self._sdk().models.list()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            error = self._translate(exc)
            where = self.base_url or "api.openai.com"
            raise ModelUnavailable(
                f"the heartbeat to {where} failed: {error.reason}{self._hint(error)}"
            ) from None
        return (time.perf_counter() - started) * 1000

    async def probe(self) -> Bounds:
        """Try ``max_tokens`` and ``stop`` on two tiny completions (``opsloop doctor``)."""
        client = self._sdk()
        ask: Any = [{"role": "user", "content": PROBE_PROMPT}]
        for seed in PROBE_SEEDS:  # small models often say nothing: try another seed
            capped = await client.chat.completions.create(
                model=self.model, messages=ask, max_tokens=PROBE_TOKENS, seed=seed
            )
            first = capped.choices[0] if capped.choices else None
            text = (first.message.content or "") if first else ""
            if (stop := stop_word(text)) is not None:
                break
        stopped_text = ""
        if stop is not None:
            stopped = await client.chat.completions.create(
                model=self.model,
                messages=ask,
                max_tokens=PROBE_TOKENS,
                seed=seed,
                stop=[stop],
            )
            stopped_text = (stopped.choices[0].message.content or "") if stopped.choices else ""
        max_tokens, honours_stop = judge(
            capped_tokens=capped.usage.completion_tokens if capped.usage else None,
            capped_finish=first.finish_reason if first else None,
            capped_text=text,
            stop=stop,
            stopped_text=stopped_text,
        )
        window = None
        async for listed in client.models.list():
            if listed.id == self.model:
                window = context_from(listed.model_extra)
        return Bounds(context_tokens=window, max_tokens=max_tokens, stop=honours_stop)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._clients.aclose()


class _Usage(pydantic.BaseModel):
    prompt_tokens: int
    completion_tokens: int


def _groq_usage(chunk: Any) -> _Usage | None:
    # Groq also reports streamed usage in an extra "x_groq" object of the last chunk.
    extra = getattr(chunk, "model_extra", None) or {}
    usage = (
        (extra.get("x_groq") or {}).get("usage") if isinstance(extra.get("x_groq"), dict) else None
    )
    try:
        return _Usage.model_validate(usage) if usage else None
    except pydantic.ValidationError:
        return None
