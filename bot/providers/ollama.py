"""The ``ollama`` provider: Ollama's ``/api/chat`` through the official ``ollama`` client."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
import ollama
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
)
from bot.providers.turns import (
    TurnCaps,
    finish_text,
    ollama_options,
    truncation,
    wire_messages,
)
from bot.providers.wire import status_error
from domain.runaway import ReplyGuard

PROVIDER = "ollama"


async def _raise_for_status(response: httpx.Response) -> None:
    # The ollama client turns an error status into ResponseError and drops the headers,
    # Retry-After among them; raising our own error from the response hook keeps them.
    if response.status_code >= 400:
        await response.aread()
        raise status_error(
            status=response.status_code, body=response.text, headers=dict(response.headers)
        )


def translate_error(exc: Exception, *, timeout_seconds: float) -> AttemptError:
    """Map what the ollama client (and httpx under it) raises to an ``AttemptError``."""
    if isinstance(exc, AttemptError):
        return exc
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return Timeout(f"no answer within {timeout_seconds:g} s")
    if isinstance(exc, ConnectionError | httpx.ConnectError):
        return ConnectFailed("cannot connect")
    if isinstance(exc, httpx.TransportError):
        return ConnectFailed(f"the connection broke ({type(exc).__name__})")
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code >= 400:
            return HttpStatus(status=exc.status_code, message=exc.error)
        # A status of -1 is an {"error": …} line in the middle of a stream.
        return Incomplete(f"the stream stopped with an error: {exc.error[:200]}")
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError):
        return Malformed(
            f"malformed response, not Ollama's JSON ({str(exc).splitlines()[0][:120]})"
        )
    return Unexpected(f"{type(exc).__name__}: {exc}")


class OllamaModel:
    """A model served by Ollama (``OLLAMA_HOST``), streamed as NDJSON."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        model: str,
        host: str,
        retry: RetryPolicy,
        prices: PriceTable,
        stream: bool = True,
        context_tokens: int | None = None,
        caps: TurnCaps | None = None,
    ) -> None:
        self.model = model
        self.caps = caps or TurnCaps()
        self.host = host
        self._retry = retry
        self._prices = prices
        self._stream = stream
        # Ollama runs every model with its own small default window (2048 or 4096 tokens)
        # and silently drops the start of a longer prompt; ask for the window the prompt
        # builder fits the history into instead.
        self._options = {"num_ctx": context_tokens} if context_tokens else None
        self._clients = LoopBound(make=self._new_client, close=lambda client: client.close())

    @property
    def name(self) -> str:
        """``ollama:model``."""
        return f"{PROVIDER}:{self.model}"

    def _sdk(self) -> ollama.AsyncClient:
        return self._clients.get()

    def _new_client(self) -> ollama.AsyncClient:
        limit = self._retry.timeout_seconds
        # No retries here: httpx's transport retries nothing by default (retries=0), and the
        # ollama client has no retry loop, so every attempt is ours.
        return ollama.AsyncClient(
            host=self.host,
            timeout=httpx.Timeout(limit, connect=min(limit, 10.0)),
            event_hooks={"response": [_raise_for_status]},
        )

    def _translate(self, exc: Exception) -> AttemptError:
        return translate_error(exc, timeout_seconds=self._retry.timeout_seconds)

    def _hint(self, error: AttemptError) -> str:
        if isinstance(error, ConnectFailed):
            return f" (is Ollama running at {self.host}? start it with `ollama serve`)"
        if isinstance(error, HttpStatus) and error.status == 404:
            return f" (run `ollama pull {self.model}`)"
        return ""

    async def _attempt(self, messages: Sequence[ChatMessage], sink: TextSink | None) -> Streamed:
        payload = wire_messages(messages, system_role=self.caps.system_role)
        client = self._sdk()
        options = ollama_options(self.caps, self._options)
        guard = ReplyGuard()
        if not self._stream:
            whole = await client.chat(
                model=self.model, messages=payload, stream=False, options=options
            )
            guard.feed(whole.message.content or "")
            text = finish_text(guard, stopped=whole.done_reason == "stop")
            if sink and text:
                await sink(text)
            return Streamed(
                text,
                whole.prompt_eval_count,
                whole.eval_count,
                truncated=truncation(guard, length=whole.done_reason == "length"),
                discarded_chars=guard.discarded,
            )
        chunks = await client.chat(model=self.model, messages=payload, stream=True, options=options)
        return await self._read(chunks, guard, sink)

    async def _read(self, chunks: Any, guard: ReplyGuard, sink: TextSink | None) -> Streamed:
        """Read Ollama's stream through ``guard``, closing it early when it cuts."""
        last = None
        async for chunk in chunks:
            piece = chunk.message.content or ""
            kept = guard.feed(piece) if piece else ""
            if kept and sink:
                await sink(kept)
            if chunk.done:
                last = chunk
            if guard.close_now:
                await chunks.aclose()  # closes the response: Ollama stops generating
                break
        if last is None and not guard.done:
            raise Incomplete("the stream ended before the model was done")
        reason = last.done_reason if last is not None else None
        text = finish_text(guard, stopped=reason == "stop")
        if sink and len(text) > len(guard.text):
            await sink(text[len(guard.text) :])  # the closing tag the stop sequence took
        # Ollama omits prompt_eval_count when the whole prompt was cached: then it is estimated.
        return Streamed(
            text,
            last.prompt_eval_count if last is not None else None,
            last.eval_count if last is not None else None,
            truncated=truncation(guard, length=reason == "length"),
            discarded_chars=guard.discarded,
        )

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """Answer ``messages``, streaming text to ``on_text``; raises ``ModelUnavailable``."""
        return await answer(
            provider=PROVIDER,
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
        """List the local models (the cheapest call) and check ours is among them; ms."""
        started = time.perf_counter()
        try:
            listed = await self._sdk().list()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            error = self._translate(exc)
            raise ModelUnavailable(
                f"the heartbeat to {self.host} failed: {error.reason}{self._hint(error)}"
            ) from None
        latency = (time.perf_counter() - started) * 1000
        names = {m.model or "" for m in listed.models}
        wanted = self.model if ":" in self.model else f"{self.model}:latest"
        if self.model not in names and wanted not in names:
            raise ModelUnavailable(
                f"Ollama at {self.host} has no model {self.model}; run `ollama pull {self.model}`"
            )
        return latency

    async def probe(self) -> Bounds:
        """Try ``num_predict`` and ``stop`` on two tiny completions (``opsloop doctor``)."""
        client = self._sdk()
        ask = [{"role": "user", "content": PROBE_PROMPT}]
        for seed in PROBE_SEEDS:  # small models often say nothing: try another seed
            capped = await client.chat(
                model=self.model, messages=ask, options={"num_predict": PROBE_TOKENS, "seed": seed}
            )
            text = capped.message.content or ""
            if (stop := stop_word(text)) is not None:
                break
        stopped_text = ""
        if stop is not None:
            options = {"num_predict": PROBE_TOKENS, "seed": seed, "stop": [stop]}
            stopped = await client.chat(model=self.model, messages=ask, options=options)
            stopped_text = stopped.message.content or ""
        max_tokens, honours_stop = judge(
            capped_tokens=capped.eval_count,
            capped_finish=capped.done_reason,
            capped_text=text,
            stop=stop,
            stopped_text=stopped_text,
        )
        try:
            shown = await client.show(self.model)
            window = context_from(dict(shown.modelinfo or {}))
        except Exception:  # noqa: BLE001 - an older Ollama, or a stand-in: not reported
            window = None
        return Bounds(context_tokens=window, max_tokens=max_tokens, stop=honours_stop)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._clients.aclose()
