"""What a chat surface (Slack, Discord, the terminal) asks of the application.

Adapters translate a platform event into an ``Incoming`` (or a ``Command``), hand it to a
``ChatService``, and translate what comes back (a ``Receipt``, a ``CommandReply``,
``Progress`` calls, an ``Outcome``) into platform messages. The service records the message
*before* any work starts, so acknowledging the platform after ``receive`` returns never
loses a message. Who may use the bot is the service's decision, never an adapter's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from domain.state import block_failed

if TYPE_CHECKING:
    from sandbox.files import OutboxFile
    from sandbox.result import RunResult


RESUME_KEY_PREFIX = "resume:"  # message keys of retries recorded by ``opsloop resume ID``


class CommandName(StrEnum):
    """The thread commands: a message that is only this word runs it instead of the loop."""

    STOP = "stop"
    COST = "cost"
    REPLAY = "replay"
    NEW = "new"
    APPROVE = "approve"  # the latest pending approval request of the thread
    DENY = "deny"  # the same, with an optional reason: "deny not during the freeze"


def parse_command(text: str) -> CommandName | None:
    """The command a whole message names (``stop``, ``/stop``, ``!stop``, ``Stop.``), if any.

    Only ``deny`` takes words after it (its reason); any other word followed by more text is
    a message for the model, not a command."""
    word, _, rest = text.strip().partition(" ")
    name = _command_word(word if rest.strip() else text.strip())
    if rest.strip() and name is not CommandName.DENY:
        return None
    return name


def command_reason(text: str) -> str:
    """The words after a ``deny`` (the reason shown to the model and in the replay)."""
    return " ".join(text.split()[1:])


def _command_word(word: str) -> CommandName | None:
    try:
        return CommandName(word.rstrip(".!").lower().lstrip("/!"))
    except ValueError:
        return None


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
class Attachment:
    """A file attached to a person's message, not yet downloaded.

    ``fetch(most)`` downloads it with the surface's credentials: at most ``most`` bytes, or
    ``bot.errors.FileNotFetched`` saying why not (over the cap, a login page instead of the
    file, a host the token must not be sent to). The service calls it after the message is
    recorded, and only for a file within the caps.
    """

    name: str  # as the platform names it (untrusted)
    size: int | None  # as the platform declares it; None when it does not say
    fetch: Callable[[int], Awaitable[bytes]] = field(compare=False, repr=False)


@dataclass(frozen=True)
class FileNote:
    """What became of one attachment: saved as ``/workspace/inbox/<name>``, or ``refused``."""

    name: str  # as saved, or as attached when refused
    bytes: int = 0
    refused: str = ""  # why it was not saved; "" when it was


@dataclass(frozen=True)
class Command:
    """A thread command, with the message that carried it (where, who, its key)."""

    name: CommandName
    incoming: Incoming


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
class CommandReply:
    """What a command did, as plain values each surface renders in its own words.

    ``refused`` (the author may not use the bot here) and ``duplicate`` (this command's
    message was handled before) come first; ``conversation_id`` is None when there is no
    conversation here yet.
    """

    name: CommandName
    conversation_id: str | None = None
    stopped: bool = False  # stop: a running loop was stopped
    totals: Totals | None = None  # cost and replay
    new_conversation_id: str | None = None  # new
    timeline: tuple[dict[str, Any], ...] = field(default=())  # replay: the recorded events
    refused: str = ""  # the refusal sentence to show
    duplicate: bool = False
    decision: DecisionReply | None = None  # approve and deny


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
    truncated_turns: int = 0  # model turns a cap cut (ModelReplied.truncated)
    discarded_chars: int = 0  # streamed after a block closed and dropped
    estimated_turns: int = 0  # model turns whose token counts are opsloop's estimates


@dataclass(frozen=True)
class ApprovalRequest:
    """A block waiting for an approver's yes: what a surface shows beside its two buttons."""

    conversation_id: str
    coordinates: Coordinates  # the thread it waits in
    request_id: str
    block_id: str
    index: int  # 1-based, of ``total`` blocks in this turn
    total: int
    language: str
    code: str  # exactly what will run: the approval is bound to its SHA-256
    tools: tuple[str, ...]  # what the block may call once approved
    requested_from: tuple[str, ...]  # the configured approvers, or "anyone allowed here"
    expires_at: float  # epoch seconds
    requested_by: str  # the author of the message being worked on


DecisionStatus = Literal["granted", "denied", "not_approver", "decided", "expired", "none"]


@dataclass(frozen=True)
class Decision:
    """Someone's approve or deny: a button click, a thread command, or a terminal answer."""

    coordinates: Coordinates  # where it was made: the request must belong to this thread
    by: str  # the platform's user id
    approve: bool
    request_id: str = ""  # "" for the latest pending request here (the thread commands)
    reason: str = ""  # a deny's reason, shown to the model


@dataclass(frozen=True)
class DecisionReply:
    """What a decision did.

    ``granted``/``denied``: recorded; run the loop (``resumes``). ``not_approver``: nothing
    recorded, tell only the clicker. ``decided``/``expired``: the request was settled
    before; nothing changes. ``none``: no such request in this thread."""

    status: DecisionStatus
    detail: str  # one line to show
    conversation_id: str | None = None
    request_id: str = ""
    by: str = ""

    @property
    def resumes(self) -> bool:
        """Whether the loop of the conversation has a step to take now."""
        return self.status in ("granted", "denied")


@dataclass(frozen=True)
class Outcome:
    """How a run of the loop ended."""

    conversation_id: str
    answer: str | None  # None when it stopped without one
    stopped_reason: str | None  # "cancelled" | "turn_limit" | "budget" | "model_unavailable" | …
    detail: str = ""
    awaiting: ApprovalRequest | None = None  # paused until this request is decided or expires
    elsewhere: bool = False  # another process runs this loop now; it answers the message too
    files: tuple[OutboxFile, ...] = ()  # from /workspace/outbox, to send with the answer
    files_skipped: tuple[str, ...] = ()  # "name: why" of outbox entries not sent


def failed(result: RunResult) -> bool:
    """Whether a block's result counts as failed, by the domain's one rule."""
    return block_failed(
        exit_code=result.exit_code,
        signal=result.signal,
        timed_out=result.timed_out,
        memory_exceeded=result.memory_exceeded,
    )
