"""What ``audit verify`` reports: problems, each blaming one thing, and the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

Kind = Literal["event", "listing", "snapshot", "checkpoint", "log", "usage"]


@dataclass(frozen=True)
class Problem:
    """The first bad event of one conversation (``kind="event"``), or a listing row, a usage
    ledger row, a snapshot, a checkpoint or the order of the log that is wrong while the
    events are not."""

    conversation_id: UUID | None
    version: int
    event_type: str
    reason: str
    kind: Kind = "event"

    def __str__(self) -> str:
        if self.kind == "snapshot":
            where = f"conversation {self.conversation_id}: snapshot at version {self.version}"
            return f"{where} {self.reason}"
        if self.kind == "listing":
            return f"conversation {self.conversation_id}: listing row {self.reason}"
        if self.kind == "usage":
            where = f"conversation {self.conversation_id}: usage ledger row of event {self.version}"
            return f"{where} {self.reason}"
        if self.kind in ("checkpoint", "log"):
            return f"{self.kind}: {self.reason}"
        kind = f" ({self.event_type})" if self.event_type else ""
        return f"conversation {self.conversation_id}: event {self.version}{kind} {self.reason}"

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "kind": self.kind,
            "conversation_id": str(self.conversation_id) if self.conversation_id else None,
            "version": self.version,
            "event_type": self.event_type,
            "reason": self.reason,
            "message": str(self),
        }


@dataclass(frozen=True)
class VerifyReport:
    """What ``audit verify`` found."""

    conversations: int
    events: int
    problems: tuple[Problem, ...]
    sealed: int = 0  # events carrying a seal that holds
    unsealed: int = 0  # events written before the audit key (or without one)
    checkpoints: tuple[str, ...] = field(default=())  # the checkpoints compared against

    @property
    def intact(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """What ``audit verify --json`` prints."""
        return {
            "intact": self.intact,
            "conversations": self.conversations,
            "events": self.events,
            "sealed": self.sealed,
            "unsealed": self.unsealed,
            "checkpoints": list(self.checkpoints),
            "problems": [p.as_json() for p in self.problems],
        }
