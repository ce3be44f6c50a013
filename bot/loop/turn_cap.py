"""The wall-clock cap of one model turn, enforced by the loop whatever the provider streams.

The per-read timeout of a provider never fires while tokens keep coming, so a model that
streams for minutes is stopped here: after ``turn_seconds`` the call is cancelled and what
was streamed so far is the turn's text, recorded with ``truncated="time"``. The provider
never reported usage for a cancelled stream, so its tokens are estimates (marked so) and its
cost is unknown (``priced`` false). Complete blocks in it still run (``domain.steps``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from bot.ports import ChatMessage, ChatModel, ModelReply, TextSink
from domain.runaway import CUT_BY
from domain.tokens import estimate_prompt_tokens, estimate_tokens

DEFAULT_TURN_SECONDS = 180.0  # bot.config.ModelsPolicy.turn_seconds


def cut_note(reply: ModelReply) -> str:
    """What a surface appends to a cut reply's streamed text; empty when nothing was cut."""
    notes = []
    if reply.truncated is not None:
        notes.append(f"reply cut by {CUT_BY.get(reply.truncated, reply.truncated)}")
    if reply.discarded_chars:
        notes.append(f"{reply.discarded_chars} characters after the block discarded")
    return f"\n[opsloop: {'; '.join(notes)}]\n" if notes else ""


async def bounded_reply(
    model: ChatModel,
    messages: Sequence[ChatMessage],
    *,
    on_text: TextSink | None,
    turn_seconds: float,
) -> ModelReply:
    """``model.reply`` within ``turn_seconds``; past it, the text so far, ``truncated="time"``."""
    shown: list[str] = []

    async def sink(chunk: str) -> None:
        shown.append(chunk)
        if on_text is not None:
            await on_text(chunk)

    started = time.perf_counter()
    cap = asyncio.timeout(turn_seconds)
    try:
        async with cap:
            return await model.reply(messages, on_text=sink)
    except TimeoutError:
        if not cap.expired():
            raise
    text = "".join(shown)
    provider, _, name = model.name.partition(":")
    return ModelReply(
        text=text,
        provider=provider,
        model=name,
        input_tokens=estimate_prompt_tokens([m.content for m in messages]),
        output_tokens=estimate_tokens(text),
        tokens_estimated=True,
        cost=0.0,
        priced=False,
        latency_ms=round((time.perf_counter() - started) * 1000),
        attempts=1,
        truncated="time",
    )
