"""The base of every conversation event (domain/events.py lists them all)."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate


class ConversationEvent(Aggregate.Event):
    """Base of every conversation event: carries the hash of its predecessor."""

    prev_hash: str

    def apply(self, aggregate: Any) -> None:
        """Evolve ``aggregate`` (a ``Conversation``) by this event."""
        aggregate._evolve(self)  # every subclass is one of ``AnyEvent``
