"""Conversation ids: derived from platform coordinates, so no lookup table is needed."""

from __future__ import annotations

from uuid import UUID, uuid5

# A fixed namespace: changing it would give every existing thread a new conversation.
NAMESPACE = UUID("6f1b3c3e-2a4d-5b8e-9c71-0d5e8a4f2b10")


def conversation_id(
    *, platform: str, workspace: str, channel: str, thread: str, generation: int = 0
) -> UUID:
    """The uuid5 of (platform, workspace, channel, thread[, generation]).

    Generation 0 is the thread's first conversation; each ``new`` command starts the next
    generation, whose id also covers the generation number.
    """
    if generation < 0:
        raise ValueError("generation must not be negative")
    # A unit separator cannot appear in platform ids, so distinct coordinates never collide.
    parts = [platform, workspace, channel, thread]
    if generation:
        parts.append(str(generation))
    return uuid5(NAMESPACE, "\x1f".join(parts))
