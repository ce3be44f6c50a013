"""Where a Slack conversation's progress goes, and what the workspace supports: plain values
shared by the progress reporter and the answer stream."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Capabilities:
    """What this workspace turned out to support, learnt from the first refusals."""

    no_assistant_status: set[str] = field(default_factory=set)  # channels refusing setStatus
    streaming: bool = True  # False once chat.startStream is refused


@dataclass(frozen=True)
class Thread:
    """Where a conversation's progress goes."""

    team: str
    channel: str
    thread_ts: str
    message_ts: str  # the person's message that gets the reactions
    user: str
    assistant: bool = False  # an AI app (assistant) thread: answers get feedback buttons
