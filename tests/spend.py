"""Model spend for budget tests: recorded through the real application's own commands (no
loop, no model: a message, a ``ModelReplied`` with the given tokens and cost, an answer), and
a runner clock that follows the store's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from bot.app.application import ConversationApp
from bot.ports import ModelReply
from bot.surface import Coordinates


def where(channel: str = "C1", thread: str = "1.0", platform: str = "slack") -> Coordinates:
    return Coordinates(platform=platform, workspace="T1", channel=channel, thread=thread)


def spend(
    app: ConversationApp,
    *,
    author: str,
    at: Coordinates | None = None,
    cost: float = 1.0,
    input_tokens: int = 100,
    output_tokens: int = 10,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
) -> UUID:
    """``author`` asks at ``at`` and the model answers, costing ``cost``; the conversation id."""
    cid, _ = app.receive_message(
        coordinates=at or where(), message_key=uuid4().hex, author=author, text="why?"
    )
    reply = ModelReply(
        text="Because.",
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_estimated=False,
        cost=cost,
        priced=True,
        latency_ms=5,
        attempts=1,
    )
    app.record_model_reply(cid, reply=reply, prompt_fingerprint="f")
    app.answer(cid, text="Because.")
    return cid


@dataclass
class StoreClock:
    """A runner's clock: ``at`` when a test sets it, else the time of the latest event in the
    store (the store's own clock, so "today" is the day the spend was recorded, whenever the
    test runs)."""

    app: ConversationApp
    at: datetime | None = None

    def __call__(self) -> datetime:
        if self.at is not None:
            return self.at
        last = self.app.recorder.max_notification_id()
        if not last:
            return datetime.now(UTC)
        note = self.app.recorder.select_notifications(start=last, limit=1)[0]
        return self.app.mapper.to_domain_event(note).timestamp
