"""The events of a ``Conversation`` (past tense, plain-value payloads).

Each event's ``apply`` hands itself to the aggregate's ``_evolve``, which changes state and
advances the hash chain (their base: domain/event_base.py; the file events are in
domain/file_events.py, the audit trail's own in domain/audit_events.py). Field lists are the
stored schema: add a field only together with a ``class_version`` bump and an
``upcast_vN_vN+1`` (see ``ModelFailed``), and document it in docs/events.md.
"""

from __future__ import annotations

from typing import Any, get_args
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.audit_events import AuditKeyed
from domain.event_base import ConversationEvent
from domain.file_events import FeedbackGiven, FileReceived, FileRefused, FileSent


class Started(ConversationEvent, Aggregate.Created):
    """A conversation began at these platform coordinates."""

    platform: str
    workspace: str
    channel: str
    thread: str
    started_by: str
    generation: int


class MessageReceived(ConversationEvent):
    """A user's message was accepted for the loop."""

    class_version = 2

    message_key: str
    author: str
    text: str
    redacted: dict[str, list[str]]  # field -> names of the secrets redacted in it

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no ``redacted``: old events took nothing out (or did not say)."""
        state["redacted"] = {}


class MessageRefused(ConversationEvent):
    """A user's message was recorded but not acted on (e.g. not on the allowlist)."""

    class_version = 2

    message_key: str
    author: str
    text: str
    reason: str
    redacted: dict[str, list[str]]  # field -> names of the secrets redacted in it

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no ``redacted``: old events took nothing out (or did not say)."""
        state["redacted"] = {}


class ModelReplied(ConversationEvent):
    """A model answered one turn of the loop."""

    class_version = 3

    turn: int
    provider: str
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost: float
    priced: bool
    latency_ms: int
    attempts: int
    prompt_fingerprint: str
    prompt_notes: str
    redacted: dict[str, list[str]]  # field -> names of the secrets redacted in it
    truncated: str | None  # "tokens" | "time" | "repetition": a cap cut the turn; else None
    discarded_chars: int  # characters dropped after the first block closed (never their text)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no ``redacted``: old events took nothing out (or did not say)."""
        state["redacted"] = {}

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """Version 2 had no caps on a turn: nothing was cut or discarded."""
        state["truncated"] = None
        state["discarded_chars"] = 0


class ModelFailed(ConversationEvent):
    """A provider failed for good (the loop may have fallen back to another)."""

    class_version = 2

    provider: str
    model: str
    error: str
    attempts: int

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 (the design sketch) had no ``model``; old events get ``""``."""
        state["model"] = ""


class BlockStarted(ConversationEvent):
    """A helper block is about to run in the sandbox."""

    block_id: str
    turn: int
    index: int
    language: str
    code: str
    limits: dict[str, Any]


KERNELS = ("new", "warm", "restarted")  # BlockFinished.kernel


class BlockFinished(ConversationEvent):
    """A helper block ran; its exit status, output and any limit it hit."""

    class_version = 3

    block_id: str
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    duration_ms: int
    cpu_ms: int | None
    timed_out: bool
    memory_exceeded: bool
    output_truncated: bool
    unsafe_local: bool
    redacted: dict[str, list[str]]  # field -> names of the secrets redacted in it
    kernel: str  # "new", "warm" or "restarted": the interpreter it ran in (sandbox.kernels)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no ``redacted``: old events took nothing out (or did not say)."""
        state["redacted"] = {}

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """Version 2 had no ``kernel``: every block before warm kernels ran in a new one."""
        state["kernel"] = "new"


class BlockSkipped(ConversationEvent):
    """A pending block was not run (an earlier block of its turn failed)."""

    block_id: str
    reason: str


class BlockRefused(ConversationEvent):
    """A block was refused by policy or by the sandbox."""

    block_id: str
    reason: str


class BlockOutcomeUnknown(ConversationEvent):
    """A started block has no recorded outcome (the process died); it is never re-run."""

    block_id: str
    detail: str


class ApprovalRequested(ConversationEvent):
    """A pending block needs an approver's yes before it runs (on its exact code)."""

    block_id: str
    request_id: str
    code_sha256: str  # the exact code the approval is for
    tools: list[str]  # the tools the block names: all it may call once approved
    requested_from: list[str]  # who may decide: users and roles, or ["anyone allowed here"]
    expires_at: str  # ISO 8601, UTC


class ApprovalGranted(ConversationEvent):
    """An approver said yes: the block runs, and may call the tools it named."""

    request_id: str
    by: str


class ApprovalDenied(ConversationEvent):
    """An approver said no: the block is refused and the model told why."""

    request_id: str
    by: str
    reason: str


class ApprovalExpired(ConversationEvent):
    """Nobody decided in time: the block is refused."""

    request_id: str


class ToolCalled(ConversationEvent):
    """A running block asked the broker to call a tool (its arguments as recorded: redacted).

    Every ``ToolCalled`` gets exactly one outcome before its block's: ``ToolReturned``,
    ``ToolRefused`` or ``ToolOutcomeUnknown``.
    """

    block_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    redacted: list[str]  # names of the secrets taken out of the arguments


class ToolReturned(ConversationEvent):
    """A tool call ran: its result (redacted) or its error."""

    call_id: str
    ok: bool
    result: Any  # text, or JSON data; None on failure
    result_bytes: int
    truncated: bool
    duration_ms: int
    error: str | None
    redacted: list[str]  # names of the secrets taken out of the result or error


class ToolRefused(ConversationEvent):
    """A tool call was not run: unknown tool, bad argument, not allowed, over the limit."""

    block_id: str
    call_id: str
    tool: str
    reason: str


class ToolOutcomeUnknown(ConversationEvent):
    """A tool call's outcome was lost (its block ended, or the process died, while it ran)."""

    call_id: str
    detail: str


class Answered(ConversationEvent):
    """The model's final answer to the latest message."""

    class_version = 2

    text: str
    redacted: dict[str, list[str]]  # field -> names of the secrets redacted in it

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no ``redacted``: old events took nothing out (or did not say)."""
        state["redacted"] = {}


class Stopped(ConversationEvent):
    """The loop stopped without an answer (cancelled, limit, budget, model unavailable)."""

    reason: str
    detail: str


class LoopClaimed(ConversationEvent):
    """A process took over running this conversation's loop (a lease in the shared store).

    Every step recorded after it, until the next ``LoopClaimed``, was taken by ``by``;
    ``token`` grows with every claim, so a process that lost its lease cannot record a step.
    """

    by: str  # the replica: host, process id and a random part
    token: int
    lease_until: str  # ISO 8601, UTC: the lease expires then unless renewed
    taken_over_from: str  # the holder whose lease had expired ("" if it was free)


class StopRequested(ConversationEvent):
    """Someone asked the loop to stop; the process that runs it stops at once."""

    message_key: str  # the platform's id of the stop message (a redelivery is not recorded)
    by: str


class BlockFinishedLate(ConversationEvent):
    """A block's result arrived after its outcome had been recorded as unknown (its process
    had lost the loop). Recorded, never dropped; the turn it belonged to is not reopened."""

    block_id: str
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    duration_ms: int
    cpu_ms: int | None
    timed_out: bool
    memory_exceeded: bool
    output_truncated: bool
    unsafe_local: bool
    redacted: dict[str, list[str]]  # field -> names of the secrets redacted in it
    kernel: str  # as BlockFinished's


class Renewed(ConversationEvent):
    """The ``new`` command: this conversation is closed and ``successor_id`` continues."""

    successor_id: UUID
    by: str


class UserErased(ConversationEvent):
    """A person's key was destroyed (``opsloop audit erase``): the text they were the source
    of in this conversation now reads ``[erased]``, and the chain still verifies."""

    user: str  # platform:id, e.g. slack:U012AB


AnyEvent = (
    Started
    | MessageReceived
    | MessageRefused
    | ModelReplied
    | ModelFailed
    | BlockStarted
    | BlockFinished
    | BlockSkipped
    | BlockRefused
    | BlockOutcomeUnknown
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalDenied
    | ApprovalExpired
    | ToolCalled
    | ToolReturned
    | ToolRefused
    | ToolOutcomeUnknown
    | Answered
    | Stopped
    | Renewed
    | LoopClaimed
    | StopRequested
    | BlockFinishedLate
    | UserErased
    | AuditKeyed
    | FileReceived
    | FileRefused
    | FileSent
    | FeedbackGiven
)  # every event the aggregate evolves by: ``_evolve`` matches each, and mypy checks it does

EVENT_TYPES: tuple[type[ConversationEvent], ...] = get_args(AnyEvent)
