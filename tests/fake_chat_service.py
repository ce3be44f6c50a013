"""The one hand-written ``ChatService`` of the surface tests: it records in memory, then plays a
script.

Each run answers every message not yet answered: ``thinking``, streamed prose with one python
block whose result comes from ``output_for(text)``, then a streamed answer. ``gate`` (when
set) holds each answer at ``thinking`` until released, to stand for a slow model; ``hold``
holds it after its block, to show what surfaces do while a long loop runs. ``stop`` cancels
the running loop, which stops as cancelled.

Only the primitives are faked: who may use the bot is the real ``bot.policy.access`` and the
thread commands are the real ``bot.loop.commands``, so no surface test can pass against a
rule of its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.config import AccessPolicy
from bot.errors import NotFound, StoreUnreachable
from bot.loop import commands
from bot.loop.decisions import NOTHING_WAITING
from bot.policy.access import refusal
from bot.ports import Progress, StopStatus
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
from sandbox.result import RunResult


def ok_result(stdout: str) -> RunResult:
    """A block that exited 0 with ``stdout``."""
    return RunResult(exit_code=0, signal=None, stdout=stdout, stderr="", duration_ms=42)


@dataclass
class FakeChatService:
    """Implements ``bot.ports.ChatService`` (and ``CommandTarget``) in memory."""

    output_for: Callable[[str], str] = lambda text: "4\n"
    code_for: Callable[[str], str] = lambda text: f"print({text!r})"
    prose: str = "Let me run that."
    answer_for: Callable[[str, RunResult], str] = lambda text, result: (
        f"Answer to {text!r}: {result.stdout.strip()[:40]}"
    )
    access: Mapping[str, AccessPolicy] = field(default_factory=dict)
    roles: Mapping[str, Sequence[str]] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # a slow model: each answer waits here at "thinking"
    hold: asyncio.Event | None = None  # a long loop: each answer waits here after its block
    receive_delay: float = 0.0  # a slow store: seconds before a message counts as recorded
    store_down: bool = False  # receive raises StoreUnreachable, as the real one would
    received: list[Incoming] = field(default_factory=list)
    attached: list[tuple[str, list[str]]] = field(default_factory=list)  # (conversation, names)
    ratings: list[tuple[Coordinates, str, str, str]] = field(default_factory=list)
    recorded_at: list[float] = field(default_factory=list)  # monotonic time of each record
    refused: list[tuple[Incoming, str]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # every receipt's status, in order
    runs: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    _stop_keys: set[str] = field(default_factory=set)
    renewed: list[Coordinates] = field(default_factory=list)
    interrupted_list: list[tuple[str, Coordinates]] = field(default_factory=list)
    watching: list[str | None] = field(default_factory=list)  # watch_approvals' platforms
    _keys: set[str] = field(default_factory=set)
    _generation: dict[Coordinates, int] = field(default_factory=dict)
    _messages: dict[str, list[Incoming]] = field(default_factory=dict)
    _answered: dict[str, int] = field(default_factory=dict)
    _running: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    def conversation_of(self, c: Coordinates) -> str:
        """The id these coordinates map to now (changes with ``new``)."""
        name = f"{c.platform}/{c.workspace}/{c.channel}/{c.thread}/{self._generation.get(c, 0)}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    def leave_interrupted(self, incoming: Incoming) -> str:
        """Record ``incoming`` as if a killed process left its loop unfinished."""
        cid = self.conversation_of(incoming.coordinates)
        self._messages.setdefault(cid, []).append(incoming)
        self.interrupted_list.append((cid, incoming.coordinates))
        return cid

    # -- recording ----------------------------------------------------------------------------

    async def receive(self, incoming: Incoming) -> Receipt:
        """Record the message, or its refusal, or say it is a redelivery."""
        if self.store_down:
            raise StoreUnreachable("the event store at sqlite:///x cannot be reached")
        reason = refusal(
            self.access, coordinates=incoming.coordinates, author=incoming.author, roles=self.roles
        )
        if reason is not None:
            return await self.record_refusal(incoming, reason=reason)
        cid = self.conversation_of(incoming.coordinates)
        if incoming.message_key in self._keys:
            self.statuses.append("duplicate")
            return Receipt(conversation_id=cid, status="duplicate")
        self._keys.add(incoming.message_key)
        if self.receive_delay:
            await asyncio.sleep(self.receive_delay)
        self.received.append(incoming)
        self.recorded_at.append(time.monotonic())
        self._messages.setdefault(cid, []).append(incoming)
        self.statuses.append("recorded")
        return Receipt(conversation_id=cid, status="recorded")

    async def record_refusal(self, incoming: Incoming, *, reason: str) -> Receipt:
        """Record the refusal once; a redelivery of it is a duplicate."""
        cid = self.conversation_of(incoming.coordinates)
        if incoming.message_key in self._keys:
            self.statuses.append("duplicate")
            return Receipt(conversation_id=cid, status="duplicate")
        self._keys.add(incoming.message_key)
        self.refused.append((incoming, reason))
        self.statuses.append("refused")
        reply = f"Sorry, I can't take this request: {reason}."
        return Receipt(conversation_id=cid, status="refused", reply=reply)

    async def handle(self, command: Command) -> CommandReply:
        """The real thread commands, against this fake's primitives."""
        return await commands.handle(self, command)

    async def decide(self, decision: Decision) -> DecisionReply:
        """This fake never asks for approval, so nothing is ever waiting (the approval tests
        run on the real service)."""
        cid = self.conversation_of(decision.coordinates) if self._messages else None
        return DecisionReply(status="none", detail=NOTHING_WAITING, conversation_id=cid)

    # -- the scripted loop --------------------------------------------------------------------

    async def attach(
        self, conversation_id: str, files: Sequence[Attachment], *, by: str
    ) -> list[FileNote]:
        """Fetch each file (at most 1 MiB) and note it as saved; nothing is stored."""
        notes = []
        for file in files:
            data = await file.fetch(1 << 20)
            notes.append(FileNote(name=file.name, bytes=len(data)))
        self.attached.append((conversation_id, [n.name for n in notes]))
        return notes

    async def feedback(
        self, coordinates: Coordinates, *, by: str, value: str, answer_sha256: str
    ) -> bool:
        """Keep the rating; True."""
        self.ratings.append((coordinates, by, value, answer_sha256))
        return True

    async def run(self, conversation_id: str, progress: Progress) -> Outcome:
        """Answer every unanswered message of the conversation."""
        self.runs.append(conversation_id)
        self._running[conversation_id] = asyncio.current_task()  # type: ignore[assignment]
        answer = None
        try:
            messages = self._messages.get(conversation_id, [])
            while self._answered.get(conversation_id, 0) < len(messages):
                text = messages[self._answered.get(conversation_id, 0)].text
                answer = await self._answer(text, progress)
                self._answered[conversation_id] = self._answered.get(conversation_id, 0) + 1
        except asyncio.CancelledError:
            await progress.stopped(reason="cancelled", detail="stopped by the user")
            return Outcome(conversation_id, None, "cancelled", "stopped by the user")
        finally:
            self._running.pop(conversation_id, None)
        return Outcome(conversation_id=conversation_id, answer=answer, stopped_reason=None)

    async def _answer(self, text: str, progress: Progress) -> str:
        await progress.thinking()
        if self.gate is not None:
            await self.gate.wait()
        code = self.code_for(text)
        await self._say(progress, f"{self.prose}\n<helpers>\n{code}\n</helpers>\n")
        await progress.block_started(index=1, total=1, language="python", code=code)
        result = ok_result(self.output_for(text))
        await progress.block_finished(index=1, total=1, language="python", code=code, result=result)
        if self.hold is not None:
            await self.hold.wait()
        await progress.thinking()
        answer = self.answer_for(text, result)
        await self._say(progress, answer)
        await progress.answered(answer)
        return answer

    @staticmethod
    async def _say(progress: Progress, reply: str) -> None:
        """Stream ``reply`` in small pieces, as a model does (tags split across pieces)."""
        for start in range(0, len(reply), 5):
            await progress.model_text(reply[start : start + 5])

    # -- the primitives the commands use ------------------------------------------------------

    async def stop(
        self, conversation_id: str, *, by: str = "the user", message_key: str = ""
    ) -> StopStatus:
        """Cancel the running loop, if any (a ``message_key`` seen before is a duplicate)."""
        if message_key and message_key in self._stop_keys:
            return "duplicate"
        self._stop_keys.add(message_key)
        self.stops.append(conversation_id)
        task = self._running.get(conversation_id)
        if task is None:
            return "idle"
        task.cancel()
        return "stopping"

    async def totals(self, conversation_id: str) -> Totals:
        """Counts of this conversation; ``NotFound`` when it has no message."""
        messages = self._messages.get(conversation_id)
        if not messages:
            raise NotFound(f"no conversation {conversation_id}")
        answered = self._answered.get(conversation_id, 0)
        return Totals(
            messages=len(messages),
            model_turns=2 * answered,
            input_tokens=1200 * answered,
            output_tokens=80 * answered,
            cost=0.0021 * answered,
            blocks=answered,
            duration_ms=3400,
        )

    async def timeline(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages as ``MessageReceived`` events."""
        return [
            {
                "type": "MessageReceived",
                "version": i + 2,
                "timestamp": "2026-11-30T12:00:00+00:00",
                "message_key": m.message_key,
                "author": m.author,
                "text": m.text,
            }
            for i, m in enumerate(self._messages.get(conversation_id, []))
        ]

    async def current_conversation(self, coordinates: Coordinates) -> str:
        """The conversation these coordinates map to now."""
        return self.conversation_of(coordinates)

    async def takes_part(self, coordinates: Coordinates) -> bool:
        """Whether the conversation here has messages."""
        return bool(self._messages.get(self.conversation_of(coordinates)))

    async def new_conversation(self, coordinates: Coordinates, *, by: str) -> str:
        """A fresh conversation at the same coordinates."""
        self._generation[coordinates] = self._generation.get(coordinates, 0) + 1
        self.renewed.append(coordinates)
        return self.conversation_of(coordinates)

    async def interrupted(self, *, platform: str | None = None) -> list[tuple[str, Coordinates]]:
        """Conversations left unfinished (each reported once)."""
        found = [(c, k) for c, k in self.interrupted_list if platform in (None, k.platform)]
        self.interrupted_list = [(c, k) for c, k in self.interrupted_list if (c, k) not in found]
        return found

    async def pending_approvals(self) -> list[ApprovalRequest]:
        """This fake never asks for approval."""
        return []

    async def watch_approvals(
        self, *, platform: str | None, progress_for: Callable[[str, Coordinates], Progress]
    ) -> None:
        """Nothing ever expires here: wait until cancelled, as the real watcher does."""
        self.watching.append(platform)
        await asyncio.Event().wait()
