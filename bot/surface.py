"""What a chat surface (Slack, Discord, the terminal) asks of the application.

Adapters translate a platform event into an ``Incoming`` (or a ``Command``), hand it to a
``ChatService``, and translate what comes back (a ``Receipt``, ``Progress`` calls, an
``Outcome``) into platform messages. The service records the message *before* any work
starts, so acknowledging the platform after ``receive`` returns never loses a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from bot.ports import Progress

CommandName = Literal["stop", "cost", "replay", "new"]


@dataclass(frozen=True)
class Coordinates:
    """Where a conversation lives on its platform; its id is derived from these."""

    platform: str  # "slack" | "discord" | "terminal" | "cli"
    workspace: str  # Slack team id, Discord guild id ("" for DMs)
    channel: str
    thread: str  # Slack thread_ts, Discord DM channel id or thread id


@dataclass(frozen=True)
class Incoming:
    """A user's message as the surface saw it."""

    coordinates: Coordinates
    message_key: str  # the platform's own id (Slack event_id, Discord message id)
    author: str
    text: str


@dataclass(frozen=True)
class Receipt:
    """What ``receive`` did with a message.

    ``recorded``: a new ``MessageReceived``; run the loop. ``duplicate``: this
    ``message_key`` was recorded before; do nothing visible. ``refused``: recorded as
    refused (allowlist); show ``reply``.
    """

    conversation_id: str
    status: Literal["recorded", "duplicate", "refused"]
    reply: str = ""


@dataclass(frozen=True)
class Totals:
    """Per-conversation accounting, for the ``cost`` command and listings."""

    messages: int
    model_turns: int
    input_tokens: int
    output_tokens: int
    cost: float
    blocks: int
    duration_ms: int  # from Started to the last event


@dataclass(frozen=True)
class Outcome:
    """How a run of the loop ended."""

    conversation_id: str
    answer: str | None  # None when it stopped without one
    stopped_reason: str | None  # "cancelled" | "turn_limit" | "budget" | "model_unavailable" | …
    detail: str = ""


class ChatService(Protocol):
    """The application as a chat surface sees it."""

    async def receive(self, incoming: Incoming) -> Receipt:
        """Record the message (or recognise a redelivery); never runs the loop itself."""
        ...

    async def refuse(self, incoming: Incoming, *, reason: str) -> Receipt:
        """Record that this message was refused (e.g. allowlist) and return the reply to show."""
        ...

    async def run(self, conversation_id: str, progress: Progress) -> Outcome:
        """Run the loop of this conversation until it answers, stops or has nothing to do."""
        ...

    async def stop(self, conversation_id: str) -> bool:
        """Cancel a running loop, recorded as ``Stopped(reason="cancelled")``; False if none."""
        ...

    async def totals(self, conversation_id: str) -> Totals:
        """Tokens, cost, blocks and duration so far."""
        ...

    async def current_conversation(self, coordinates: Coordinates) -> str:
        """The id of the conversation these coordinates currently map to."""
        ...

    async def new_conversation(self, coordinates: Coordinates) -> str:
        """Start a fresh conversation at the same coordinates; returns its id."""
        ...

    async def interrupted(self, *, platform: str | None = None) -> list[tuple[str, Coordinates]]:
        """Conversations whose loop was interrupted (process killed), to resume at start-up."""
        ...
