"""Hand-written fakes of the loop's ports and of the application, for unit tests.

``FakeApp`` keeps the events as a list and derives the ``LoopState`` view from them, the way
the real aggregate does, so the real ``next_step`` can drive the real ``LoopRunner``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from bot.errors import ModelUnavailable
from bot.ports import ChatMessage, ModelReply, TextSink
from bot.prompt.context import Prompt
from bot.surface import Coordinates, Totals
from domain.helpers import parse_helpers
from domain.state import BlockState


@dataclass(frozen=True)
class Result:
    """Shaped like ``sandbox.result.RunResult``."""

    exit_code: int = 0
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 1
    cpu_ms: int = 1
    timed_out: bool = False
    memory_exceeded: bool = False
    output_truncated: bool = False
    unsafe_local: bool = False


@dataclass
class FakeState:
    """The ``LoopState`` view derived from the fake's events."""

    status: str = "idle"
    turns_since_message: int = 0
    last_reply_text: str | None = None
    last_turn_blocks: tuple[BlockState, ...] = ()
    tokens_used: int = 0
    cost_used: float = 0.0
    coordinates: tuple[str, str, str, str] = ("", "", "", "")


_OUTCOME = {"BlockSkipped": "skipped", "BlockRefused": "refused", "BlockOutcomeUnknown": "unknown"}


class FakeApp:
    """An in-memory stand-in for ``ConversationApp`` (only what the loop and service use)."""

    def __init__(self) -> None:
        self.events: dict[UUID, list[tuple[str, dict[str, Any]]]] = {}
        self.coords: dict[UUID, Coordinates] = {}
        self.keys: set[str] = set()

    # -- recording ---------------------------------------------------------------------
    def _add(self, cid: UUID, kind: str, **payload: Any) -> None:
        self.events.setdefault(cid, []).append((kind, payload))

    def kinds(self, cid: UUID) -> list[str]:
        return [kind for kind, _ in self.events[cid]]

    def receive_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str
    ) -> tuple[UUID, bool]:
        cid = next((c for c, co in self.coords.items() if co == coordinates), None) or uuid4()
        if message_key in self.keys:
            return cid, False
        self.keys.add(message_key)
        self.coords[cid] = coordinates
        self._add(cid, "MessageReceived", message_key=message_key, author=author, text=text)
        return cid, True

    def refuse_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str, reason: str
    ) -> tuple[UUID, bool]:
        cid, recorded = self.receive_message(
            coordinates=coordinates, message_key=message_key, author=author, text=text
        )
        if recorded:
            self.events[cid][-1] = ("MessageRefused", {"text": text, "reason": reason})
        return cid, recorded

    def record_model_reply(
        self, cid: UUID, *, reply: ModelReply, prompt_fingerprint: str, prompt_notes: str = ""
    ) -> None:
        for f in reply.failures:
            self.record_model_failure(
                cid, provider=f.provider, model=f.model, error=f.error, attempts=f.attempts
            )
        self._add(
            cid,
            "ModelReplied",
            text=reply.text,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost=reply.cost,
            prompt_fingerprint=prompt_fingerprint,
        )

    def record_model_failure(
        self, cid: UUID, *, provider: str, model: str, error: str, attempts: int
    ) -> None:
        self._add(
            cid, "ModelFailed", provider=provider, model=model, error=error, attempts=attempts
        )

    def start_block(self, cid: UUID, *, block_id: str, limits: dict[str, Any]) -> None:
        self._add(cid, "BlockStarted", block_id=block_id, limits=limits)

    def finish_block(self, cid: UUID, *, block_id: str, result: Any) -> None:
        self._add(
            cid,
            "BlockFinished",
            block_id=block_id,
            exit_code=result.exit_code,
            stdout=result.stdout,
        )

    def skip_block(self, cid: UUID, *, block_id: str, reason: str) -> None:
        self._add(cid, "BlockSkipped", block_id=block_id, reason=reason)

    def refuse_block(self, cid: UUID, *, block_id: str, reason: str) -> None:
        self._add(cid, "BlockRefused", block_id=block_id, reason=reason)

    def mark_block_unknown(self, cid: UUID, *, block_id: str, detail: str) -> None:
        self._add(cid, "BlockOutcomeUnknown", block_id=block_id, detail=detail)

    def answer(self, cid: UUID, *, text: str) -> None:
        self._add(cid, "Answered", text=text)

    def stop(self, cid: UUID, *, reason: str, detail: str = "") -> None:
        self._add(cid, "Stopped", reason=reason, detail=detail)

    def renew(self, *, coordinates: Coordinates, by: str) -> UUID:
        new = uuid4()
        for cid, co in list(self.coords.items()):
            if co == coordinates:
                del self.coords[cid]
        self.coords[new] = coordinates
        self.events[new] = []
        return new

    # -- queries -----------------------------------------------------------------------
    def timeline(self, cid: UUID) -> list[dict[str, Any]]:
        events = self.events.get(cid, [])
        return [{"type": k, "version": n, **p} for n, (k, p) in enumerate(events, start=1)]

    def current_id(self, coordinates: Coordinates) -> UUID:
        return next(c for c, co in self.coords.items() if co == coordinates)

    def resolve(self, prefix: str) -> UUID:
        return next(c for c in self.events if str(c).startswith(prefix))

    def totals(self, cid: UUID) -> Totals:
        kinds = self.kinds(cid)
        return Totals(
            messages=kinds.count("MessageReceived"),
            model_turns=kinds.count("ModelReplied"),
            input_tokens=0,
            output_tokens=0,
            cost=0.0,
            blocks=kinds.count("BlockStarted"),
            duration_ms=0,
        )

    def open_conversations(self) -> list[tuple[UUID, Coordinates]]:
        return [
            (cid, self.coords[cid])
            for cid in self.events
            if cid in self.coords and self.get(cid).status == "open"
        ]

    def get(self, cid: UUID) -> FakeState:
        state = FakeState()
        if cid in self.coords:
            c = self.coords[cid]
            state.coordinates = (c.platform, c.workspace, c.channel, c.thread)
        blocks: list[BlockState] = []
        turn = 0
        for kind, p in self.events.get(cid, []):
            if kind == "MessageReceived":
                state.status, state.turns_since_message = "open", 0
                state.last_reply_text, blocks = None, []
            elif kind == "ModelReplied":
                turn += 1
                state.turns_since_message += 1
                state.last_reply_text = p["text"]
                state.tokens_used += p["input_tokens"] + p["output_tokens"]
                state.cost_used += p["cost"]
                blocks = [
                    BlockState(
                        block_id=f"t{turn}b{b.index}",
                        turn=turn,
                        index=b.index,
                        language=b.language,
                        code=b.code,
                        status="pending",
                    )
                    for b in parse_helpers(p["text"]).blocks
                ]
            elif kind.startswith("Block"):
                status = {"BlockStarted": "started"}.get(kind) or _OUTCOME.get(kind)
                if kind == "BlockFinished":
                    status = "succeeded" if p["exit_code"] == 0 else "failed"
                when = p.get("timestamp")
                started = {
                    "started_at": datetime.fromisoformat(when).timestamp() if when else None,
                    "wall_seconds": (p.get("limits") or {}).get("wall_seconds"),
                }
                blocks = [
                    b if b.block_id != p["block_id"] else _with(b, status, **started)
                    for b in blocks
                ]
            elif kind == "Answered":
                state.status = "answered"
            elif kind == "Stopped":
                state.status = "stopped"
        state.last_turn_blocks = tuple(blocks)
        return state


def _with(block: BlockState, status: Any, **started: Any) -> BlockState:
    if status != "started":
        started = {}
    return replace(block, status=status, **started)


def reply(text: str, *, tokens: int = 10) -> ModelReply:
    """A model reply with made-up accounting."""
    return ModelReply(
        text=text,
        provider="scripted",
        model="test",
        input_tokens=tokens,
        output_tokens=tokens,
        tokens_estimated=False,
        cost=0.0,
        priced=False,
        latency_ms=1,
        attempts=1,
    )


@dataclass
class ScriptedModel:
    """Answers with the given texts in order; an exception in the list is raised instead."""

    turns: list[str | BaseException]
    app: FakeApp | None = None
    seen: list[Sequence[ChatMessage]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set, each call waits for this event
    active: int = 0
    max_active: int = 0

    @property
    def name(self) -> str:
        return "scripted:test"

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.seen.append(list(messages))
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(0)
            turn = self.turns.pop(0)
            if isinstance(turn, BaseException):
                raise turn
            if on_text is not None:
                await on_text(turn)
            return reply(turn)
        finally:
            self.active -= 1


def unavailable(message: str = "every provider failed") -> ModelUnavailable:
    """The error a provider chain raises when nobody answered."""
    from bot.ports import ProviderFailure

    failure = ProviderFailure(
        provider="ollama", model="llama3.1", error="503 Service Unavailable", attempts=4
    )
    return ModelUnavailable(message, failures=(failure,))


@dataclass
class FakeSandbox:
    """Returns canned results; records what it ran and what the log held at that moment."""

    results: list[Result | BaseException] = field(default_factory=list)
    app: FakeApp | None = None
    ran: list[tuple[str, str, str | None]] = field(default_factory=list)
    log_at_run: list[list[str]] = field(default_factory=list)
    hold: asyncio.Event | None = None

    async def run(
        self, *, language: str, code: str, limits: Any = None, workspace: str | None = None
    ) -> Any:
        self.ran.append((language, code, workspace))
        if self.app is not None:
            self.log_at_run.append([k for evs in self.app.events.values() for k, _ in evs])
        if self.hold is not None:
            await self.hold.wait()
        result = self.results.pop(0) if self.results else Result(stdout=f"ran {code}\n")
        if isinstance(result, BaseException):
            raise result
        return result


@dataclass
class RecordingProgress:
    """Records every progress call as (name, detail)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    async def thinking(self) -> None:
        self.calls.append(("thinking", None))

    async def model_text(self, chunk: str) -> None:
        self.calls.append(("model_text", chunk))

    async def block_started(self, *, index: int, total: int, language: str, code: str) -> None:
        self.calls.append(("block_started", (index, total, language, code)))

    async def block_finished(
        self, *, index: int, total: int, language: str, code: str, result: Any
    ) -> None:
        self.calls.append(("block_finished", (index, total, result.exit_code)))

    async def answered(self, text: str) -> None:
        self.calls.append(("answered", text))

    async def stopped(self, *, reason: str, detail: str) -> None:
        self.calls.append(("stopped", reason))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def simple_prompt(timeline: list[dict[str, Any]]) -> Prompt:
    """A prompt builder that sends each event as one user message."""
    messages = [
        ChatMessage(
            role="user",
            content=f"{e['type']}: "
            + (e.get("text") or e.get("stdout") or e.get("reason") or e.get("detail", "")),
        )
        for e in timeline
    ]
    return Prompt(messages=messages, fingerprint=f"fp{len(messages)}")
