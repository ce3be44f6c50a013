"""The ports of the application layer: what the loop needs from the outside world.

Each port is a small ``Protocol``; concrete implementations live in ``bot/providers``
(models), ``sandbox/`` (code execution, in-process or through its HTTP client) and
``adapters/`` (progress on a chat surface). Results crossing a port are frozen
dataclasses of plain values, so they can be recorded as event payloads unchanged. The
application's own protocols (``LoopApp``, ``ServiceApp``) are in bot/ports_app.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.config import AccessPolicy
from bot.surface import (
    ApprovalRequest,
    Attachment,
    Command,
    CommandReply,
    Coordinates,
    Decision,
    DecisionReply,
    FileNote,
    Incoming,
    Outcome,
    Receipt,
    Totals,
)

if TYPE_CHECKING:
    from bot.tools.values import ToolSpec
    from sandbox.files import Outbox, StoredFile
    from sandbox.limits import Limits
    from sandbox.relay import ToolRelay
    from sandbox.result import RunResult

Role = Literal["system", "user", "assistant"]
StopStatus = Literal["stopping", "idle", "duplicate"]
TextSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a prompt, as sent to a model."""

    role: Role
    content: str


@dataclass(frozen=True)
class ProviderFailure:
    """A provider that failed for good before another one (a fallback) answered."""

    provider: str
    model: str
    error: str
    attempts: int


@dataclass(frozen=True)
class ModelReply:
    """What a model answered, with the accounting the audit log needs."""

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool  # True when the provider gave no usage and we counted ourselves
    cost: float  # in USD, from the price table
    priced: bool  # False when the model is not in the price table (cost is then 0)
    latency_ms: int
    attempts: int  # attempts made on the provider that answered
    # Providers of the fallback chain that failed before this one answered.
    failures: tuple[ProviderFailure, ...] = field(default=())
    truncated: str | None = None  # "tokens" | "time" | "repetition": a cap cut this turn
    discarded_chars: int = 0  # what arrived after the first block closed, dropped unread


class ChatModel(Protocol):
    """A language model that answers a prompt, streaming its text as it comes."""

    @property
    def name(self) -> str:
        """``provider:model``, for logs and ``opsloop doctor``."""
        ...

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """Answer ``messages``; raises ``bot.errors.ModelUnavailable`` when every attempt failed."""
        ...


class Sandbox(Protocol):
    """Runs one helper block under hard limits (nsjail in-process, or the sandbox service)."""

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
        tools: ToolRelay | None = None,
        mounts: Sequence[str] = (),
    ) -> RunResult:
        """Run ``code``; errors of the code are in the result, errors of the sandbox are raised.

        ``tools`` answers the block's tool frames (one request frame -> its response frame,
        ``sandbox.relay``); ``mounts`` names read-only mounts of the sandbox's own
        configuration (``bot.policy.mounts.mounts_for``). ``None`` and ``()``: today's jail.
        """
        ...

    async def put_file(self, *, workspace: str, name: str, data: bytes) -> StoredFile:
        """Save ``data`` in the workspace's ``/workspace/inbox`` under a safe name not yet
        taken there (derived from ``name``); ``FileRejected`` when it does not fit."""
        ...

    async def read_outbox(
        self,
        *,
        workspace: str,
        sent: Collection[tuple[str, str]] = (),
        max_files: int,
        max_bytes: int,
    ) -> Outbox:
        """The regular files of the workspace's ``/workspace/outbox`` that are not in
        ``sent`` (name, sha256), at most ``max_files`` of at most ``max_bytes`` each; the
        others are listed as skipped, with why."""
        ...


class Progress(Protocol):
    """Where the loop reports what it is doing, so a surface can show it as it happens."""

    async def thinking(self) -> None:
        """The loop is waiting for the model."""
        ...

    async def model_text(self, chunk: str) -> None:
        """A streamed piece of the model's reply."""
        ...

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        """Block ``index`` (1-based) of ``total`` in this turn is about to run."""
        ...

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: RunResult
    ) -> None:
        """Block ``index`` has run; ``result`` holds its exit status and output."""
        ...

    async def approval_requested(self, request: ApprovalRequest) -> None:
        """A block waits for an approver: show its code, its tools and the way to decide."""
        ...

    async def answered(self, text: str) -> None:
        """The model gave its final answer."""
        ...

    async def stopped(self, *, reason: str, detail: str) -> None:
        """The loop stopped without an answer (limit, budget, cancelled, model unavailable)."""
        ...


# -- what the loop needs of the application (``bot.app.application.ConversationApp``) --------


class PromptLike(Protocol):
    """What a prompt builder returns (``bot.prompt.context.Prompt`` is one)."""

    @property
    def messages(self) -> Sequence[ChatMessage]: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def notes(self) -> str: ...


class PromptBuilder(Protocol):
    """Timeline (and the tools and read-only mounts this turn may use) -> the next prompt."""

    def __call__(
        self,
        timeline: list[dict[str, Any]],
        *,
        tools: Sequence[ToolSpec] = (),
        mounts: Sequence[str] = (),
    ) -> PromptLike: ...


class ChatService(Protocol):
    """The application as a chat surface sees it."""

    async def receive(self, incoming: Incoming) -> Receipt:
        """Record the message, or its refusal (access), or recognise a redelivery; never runs
        the loop itself."""
        ...

    async def handle(self, command: Command) -> CommandReply:
        """Carry out a thread command for the conversation at its coordinates."""
        ...

    async def decide(self, decision: Decision) -> DecisionReply:
        """Record an approver's decision on a request of the thread at its coordinates."""
        ...

    async def attach(
        self, conversation_id: str, files: Sequence[Attachment], *, by: str
    ) -> list[FileNote]:
        """Save a recorded message's attachments in the workspace's inbox (or refuse them,
        over ``[files]``'s caps); each recorded, before the loop runs."""
        ...

    async def feedback(
        self, coordinates: Coordinates, *, by: str, value: str, answer_sha256: str
    ) -> bool:
        """Record a rating ("good" or "bad") of an answer the conversation at these coordinates
        gave (by its text's sha256); False when it gave no such answer."""
        ...

    async def run(self, conversation_id: str, progress: Progress) -> Outcome:
        """Run the loop of this conversation until it answers, stops or has nothing to do."""
        ...

    async def stop(
        self, conversation_id: str, *, by: str = "the user", message_key: str = ""
    ) -> StopStatus:
        """Stop the loop of this conversation, wherever it runs (Ctrl-C in a terminal, the
        ``stop`` command): ``stopping``, ``idle`` (nothing to stop) or ``duplicate``."""
        ...

    async def current_conversation(self, coordinates: Coordinates) -> str:
        """The id of the conversation these coordinates currently map to."""
        ...

    async def takes_part(self, coordinates: Coordinates) -> bool:
        """Whether a conversation at these coordinates has messages (a thread we are in)."""
        ...

    async def interrupted(self, *, platform: str | None = None) -> list[tuple[str, Coordinates]]:
        """Conversations whose loop was interrupted (process killed), to resume at start-up."""
        ...

    async def pending_approvals(self) -> list[ApprovalRequest]:
        """Approval requests still waiting, from the log (a terminal asks about its own)."""
        ...

    async def watch_approvals(
        self, *, platform: str | None, progress_for: Callable[[str, Coordinates], Progress]
    ) -> None:
        """Forever: run the loop of each conversation whose request expired, on time (a surface
        starts this beside its listener and cancels it when it stops)."""
        ...


class CommandTarget(Protocol):
    """What the thread commands (``bot.loop.commands``) act on: the service, or a fake."""

    @property
    def access(self) -> Mapping[str, AccessPolicy]:
        """Who may use the bot, per platform."""
        ...

    @property
    def roles(self) -> Mapping[str, Sequence[str]]:
        """``[roles]``: role -> qualified user ids."""
        ...

    async def record_refusal(self, incoming: Incoming, *, reason: str) -> Receipt:
        """Record that ``incoming`` was refused; the reply to show, or a duplicate."""
        ...

    async def decide(self, decision: Decision) -> DecisionReply:
        """Record an approver's decision (approve/deny), or say why it changed nothing."""
        ...

    async def current_conversation(self, coordinates: Coordinates) -> str:
        """The id of the conversation these coordinates currently map to."""
        ...

    async def totals(self, conversation_id: str) -> Totals:
        """Counts so far; ``NotFound`` when the conversation has no events."""
        ...

    async def stop(
        self, conversation_id: str, *, by: str = "the user", message_key: str = ""
    ) -> StopStatus:
        """Ask its loop to stop, wherever it runs (``StopRequested``): ``stopping``, ``idle``
        when nothing was being worked on, ``duplicate`` for a redelivered ``message_key``."""
        ...

    async def timeline(self, conversation_id: str) -> list[dict[str, Any]]:
        """Its recorded events, as ``replay --format json`` shows them."""
        ...

    async def new_conversation(self, coordinates: Coordinates, *, by: str) -> str:
        """Start a fresh conversation at the same coordinates; returns its id."""
        ...
