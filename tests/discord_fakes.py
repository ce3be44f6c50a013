"""Hand-written fakes for the Discord surface's tests: a scripted ChatService and a poster."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from adapters.discord.outbound import Outgoing
from bot.ports import Progress
from bot.surface import Coordinates, Incoming, Outcome, Receipt, Totals
from sandbox.result import RunResult


@dataclass
class RecordingPoster:
    """A ``Poster`` that keeps what would have been sent."""

    posted: list[Outgoing] = field(default_factory=list)
    typings: int = 0

    async def post(self, message: Outgoing) -> None:
        self.posted.append(message)

    async def typing(self) -> None:
        self.typings += 1


@dataclass
class ScriptedService:
    """A ``ChatService`` whose loop plays a fixed script: prose, one block, an answer.

    ``hold`` makes ``run`` wait after its block until released (or stopped), to show what
    happens while a long loop runs.
    """

    answer: str = "The disk is full of logs."
    stdout: str = "usage(total=10)\n"
    hold: asyncio.Event | None = None
    interrupted_list: list[tuple[str, Coordinates]] = field(default_factory=list)
    received: list[Incoming] = field(default_factory=list)
    refused: list[tuple[Incoming, str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # every receipt's status, in order
    renewed: list[Coordinates] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)
    _generation: dict[Coordinates, int] = field(default_factory=dict)
    _cancel: dict[str, asyncio.Event] = field(default_factory=dict)

    def conversation_of(self, coordinates: Coordinates) -> str:
        generation = self._generation.get(coordinates, 0)
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{coordinates}/{generation}"))

    async def receive(self, incoming: Incoming) -> Receipt:
        cid = self.conversation_of(incoming.coordinates)
        status = "duplicate" if incoming.message_key in self._keys else "recorded"
        self.statuses.append(status)
        if status == "recorded":
            self._keys.add(incoming.message_key)
            self.received.append(incoming)
        return Receipt(conversation_id=cid, status=status)  # type: ignore[arg-type]

    async def refuse(self, incoming: Incoming, *, reason: str) -> Receipt:
        cid = self.conversation_of(incoming.coordinates)
        if incoming.message_key in self._keys:
            return Receipt(conversation_id=cid, status="duplicate")
        self._keys.add(incoming.message_key)
        self.refused.append((incoming, reason))
        return Receipt(cid, "refused", reply=f"Sorry, I can't take this request: {reason}.")

    async def run(self, conversation_id: str, progress: Progress) -> Outcome:
        self.runs.append(conversation_id)
        cancel = self._cancel.setdefault(conversation_id, asyncio.Event())
        cancel.clear()
        code = "import shutil; print(shutil.disk_usage('/'))"
        await progress.thinking()
        await progress.model_text(f"Let me check.\n<helpers>\n{code}\n</helpers>")
        await progress.block_started(index=1, total=1, language="python", code=code)
        result = RunResult(exit_code=0, signal=None, stdout=self.stdout, stderr="", duration_ms=12)
        await progress.block_finished(index=1, total=1, language="python", code=code, result=result)
        if self.hold is not None:
            waiters = [asyncio.ensure_future(e.wait()) for e in (self.hold, cancel)]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if cancel.is_set():
                await progress.stopped(reason="cancelled", detail="stopped by the user")
                return Outcome(conversation_id, None, "cancelled", "stopped by the user")
        await progress.thinking()
        await progress.model_text(self.answer)
        await progress.answered(self.answer)
        return Outcome(conversation_id=conversation_id, answer=self.answer, stopped_reason=None)

    async def stop(self, conversation_id: str) -> bool:
        event = self._cancel.get(conversation_id)
        if event is None:
            return False
        event.set()
        return True

    async def totals(self, conversation_id: str) -> Totals:
        return Totals(
            messages=len(self.received),
            model_turns=2,
            input_tokens=1200,
            output_tokens=80,
            cost=0.0021,
            blocks=1,
            duration_ms=3400,
        )

    async def current_conversation(self, coordinates: Coordinates) -> str:
        return self.conversation_of(coordinates)

    async def new_conversation(self, coordinates: Coordinates) -> str:
        self._generation[coordinates] = self._generation.get(coordinates, 0) + 1
        self.renewed.append(coordinates)
        return self.conversation_of(coordinates)

    async def interrupted(self, *, platform: str | None = None) -> list[tuple[str, Coordinates]]:
        found = [(c, k) for c, k in self.interrupted_list if platform in (None, k.platform)]
        self.interrupted_list = []
        return found
