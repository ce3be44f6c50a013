"""The view of a conversation that the loop's decision (``domain.steps.next_step``) reads.

The ``Conversation`` aggregate satisfies ``LoopState``; tests of ``next_step`` use a plain
dataclass instead. Keeping the contract this small is what lets the decision stay a pure
function of recorded facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

BlockStatus = Literal[
    "pending",  # parsed from the model's reply, not started
    "started",  # BlockStarted recorded, no outcome yet (running, or the process died)
    "succeeded",  # BlockFinished with exit code 0
    "failed",  # BlockFinished with a non-zero exit, a signal, or a limit hit
    "skipped",  # BlockSkipped (an earlier block of the same turn failed)
    "refused",  # BlockRefused (policy, or the sandbox would not run it)
    "unknown",  # BlockOutcomeUnknown (interrupted; never re-run)
]

ConversationStatus = Literal[
    "idle",  # started, nothing to do yet
    "open",  # a user message is being worked on
    "answered",  # the last user message has its answer
    "stopped",  # Stopped recorded and no message since
]


def block_failed(
    *, exit_code: int | None, signal: int | None, timed_out: bool, memory_exceeded: bool
) -> bool:
    """Whether a finished block counts as failed: a non-zero exit, a signal or a limit hit.

    The one rule: the aggregate (``succeeded``/``failed``, and so which blocks are skipped),
    the prompt and every surface's rendering all ask it.
    """
    return bool(exit_code != 0 or signal or timed_out or memory_exceeded)


ApprovalStatus = Literal["requested", "granted", "denied", "expired"]


@dataclass(frozen=True)
class Approval:
    """Where a block's approval stands."""

    request_id: str
    status: ApprovalStatus
    tools: tuple[str, ...]  # what the request named: all the block may call once granted
    expires_at: float  # epoch seconds
    requested_from: tuple[str, ...] = ()  # the approvers named in the request
    by: str = ""  # who decided
    reason: str = ""  # why it was denied


@dataclass(frozen=True)
class BlockState:
    """One helper block of a model turn and how far it got."""

    block_id: str  # "t{turn}b{index}", unique within the conversation
    turn: int
    index: int  # 1-based position in its turn
    language: str  # "python" | "bash"
    code: str
    status: BlockStatus
    started_at: float | None = None  # epoch seconds of its BlockStarted, once started
    wall_seconds: float | None = None  # the wall limit BlockStarted recorded, if any
    approval: Approval | None = None  # once an approval was requested for it


class LoopState(Protocol):
    """What ``next_step`` needs to know about a conversation."""

    @property
    def status(self) -> ConversationStatus: ...

    @property
    def turns_since_message(self) -> int:
        """Model turns (ModelReplied) since the latest MessageReceived."""
        ...

    @property
    def last_reply_text(self) -> str | None:
        """Text of the latest model reply since the latest message; None if there is none."""
        ...

    @property
    def last_turn_blocks(self) -> tuple[BlockState, ...]:
        """Blocks of that reply, in order; empty when it had none or there is no reply."""
        ...

    @property
    def last_reply_truncated(self) -> str | None:
        """Why that reply was cut (``tokens``, ``time``, ``repetition``); None if it was not."""
        ...

    @property
    def cut_replies_in_a_row(self) -> int:
        """Replies in a row, up to the latest, that were cut before they held any block."""
        ...

    @property
    def tokens_used(self) -> int:
        """Input plus output tokens of the whole conversation."""
        ...

    @property
    def stop_requested_by(self) -> str | None:
        """Who asked the loop to stop (``StopRequested``), while that stands; else None."""
        ...

    @property
    def cost_used(self) -> float:
        """USD spent on the whole conversation."""
        ...


def approval_from(entry: dict[str, Any] | None) -> Approval | None:
    """The ``Approval`` of a stored approval entry (the aggregate's plain-value state)."""
    if entry is None:
        return None
    return Approval(
        request_id=entry["request_id"],
        status=entry["status"],
        tools=tuple(entry["tools"]),
        expires_at=float(entry["expires_at"]),
        requested_from=tuple(entry.get("requested_from", ())),
        by=entry.get("by", ""),
        reason=entry.get("reason", ""),
    )
