"""The events of files in and out of a conversation, and of feedback on its answers (part of
domain/events.py, which lists them in ``AnyEvent``; the commands are in
domain/conversation_files.py). Stored under this module's topic.
"""

from __future__ import annotations

from domain.event_base import ConversationEvent


class FileReceived(ConversationEvent):
    """A file attached to a person's message was saved at /workspace/inbox/NAME."""

    name: str  # as saved (a safe name, made unique in the inbox)
    bytes: int
    sha256: str
    by: str  # who attached it


class FileRefused(ConversationEvent):
    """A file attached to a person's message was not saved: over a cap, or not the file."""

    name: str  # as the platform named it
    reason: str
    by: str


class FileSent(ConversationEvent):
    """A file a block wrote to /workspace/outbox/ went out with the answer."""

    name: str
    bytes: int
    sha256: str


class FeedbackGiven(ConversationEvent):
    """Someone rated an answer of this conversation (thumbs up or down)."""

    by: str
    value: str  # "good" | "bad"
    answer_sha256: str  # the answer rated: sha256 of its text
