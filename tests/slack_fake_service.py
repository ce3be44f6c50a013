"""A hand-written ``ChatService`` for the Slack adapter's tests: records, then plays a script.

Each run answers every message not yet answered: ``thinking``, streamed prose with one python
block whose result comes from ``output_for(text)``, then a streamed answer quoting the
message. ``gate`` (when set) holds every run at ``thinking`` until released, to stand for a
slow model.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from bot.errors import NotFound, StoreUnreachable
from bot.ports import Progress
from bot.surface import Coordinates, Incoming, Outcome, Receipt, Totals
from sandbox.result import RunResult


def ok_result(stdout: str) -> RunResult:
    """A block that exited 0 with ``stdout``."""
    return RunResult(exit_code=0, signal=None, stdout=stdout, stderr="", duration_ms=42)


class FakeChatService:
    """Implements ``bot.surface.ChatService`` in memory."""

    def __init__(self, *, output_for: Callable[[str], str] = lambda text: "4\n") -> None:
        self.output_for = output_for
        self.gate: asyncio.Event | None = None
        self.receive_delay = 0.0  # a slow store: seconds before a message counts as recorded
        self.store_down = False  # receive raises StoreUnreachable, as the real one would
        self.received: list[Incoming] = []
        self.recorded_at: list[float] = []  # time.monotonic() when each message was recorded
        self.refused: list[tuple[Incoming, str]] = []
        self.runs: list[str] = []
        self.stops: list[str] = []
        self._keys: set[str] = set()
        self._generation: dict[Coordinates, int] = {}
        self._messages: dict[str, list[Incoming]] = {}
        self._answered: dict[str, int] = {}
        self._running: dict[str, asyncio.Task[object]] = {}
        self._interrupted: list[tuple[str, Coordinates]] = []

    def _cid(self, c: Coordinates) -> str:
        name = f"{c.platform}/{c.workspace}/{c.channel}/{c.thread}/{self._generation.get(c, 0)}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))

    def leave_interrupted(self, incoming: Incoming) -> str:
        """Record ``incoming`` as if a killed process left its loop unfinished."""
        cid = self._cid(incoming.coordinates)
        self._messages.setdefault(cid, []).append(incoming)
        self._interrupted.append((cid, incoming.coordinates))
        return cid

    async def receive(self, incoming: Incoming) -> Receipt:
        """Record the message, or say it is a redelivery."""
        if self.store_down:
            raise StoreUnreachable("the event store at sqlite:///x cannot be reached")
        cid = self._cid(incoming.coordinates)
        if incoming.message_key in self._keys:
            return Receipt(conversation_id=cid, status="duplicate")
        self._keys.add(incoming.message_key)
        if self.receive_delay:
            await asyncio.sleep(self.receive_delay)
        self.received.append(incoming)
        self.recorded_at.append(time.monotonic())
        self._messages.setdefault(cid, []).append(incoming)
        return Receipt(conversation_id=cid, status="recorded")

    async def refuse(self, incoming: Incoming, *, reason: str) -> Receipt:
        """Record the refusal."""
        cid = self._cid(incoming.coordinates)
        if incoming.message_key in self._keys:
            return Receipt(conversation_id=cid, status="duplicate")
        self._keys.add(incoming.message_key)
        self.refused.append((incoming, reason))
        return Receipt(conversation_id=cid, status="refused", reply=f"Sorry, I can't: {reason}.")

    async def run(self, conversation_id: str, progress: Progress) -> Outcome:
        """Answer every unanswered message of the conversation."""
        self.runs.append(conversation_id)
        self._running[conversation_id] = asyncio.current_task()  # type: ignore[assignment]
        answer = None
        try:
            messages = self._messages.get(conversation_id, [])
            while self._answered.get(conversation_id, 0) < len(messages):
                text = messages[self._answered.get(conversation_id, 0)].text
                await progress.thinking()
                if self.gate is not None:
                    await self.gate.wait()
                code = f"print({text!r})"
                await self._say(progress, f"Let me run that.\n<helpers>\n{code}\n</helpers>\n")
                await progress.block_started(index=1, total=1, language="python", code=code)
                result = ok_result(self.output_for(text))
                await progress.block_finished(
                    index=1, total=1, language="python", code=code, result=result
                )
                await progress.thinking()
                answer = f"Answer to {text!r}: {result.stdout.strip()[:40]}"
                await self._say(progress, answer)
                await progress.answered(answer)
                self._answered[conversation_id] = self._answered.get(conversation_id, 0) + 1
        except asyncio.CancelledError:
            await progress.stopped(reason="cancelled", detail="stopped by the user")
            return Outcome(conversation_id=conversation_id, answer=None, stopped_reason="cancelled")
        finally:
            self._running.pop(conversation_id, None)
        return Outcome(conversation_id=conversation_id, answer=answer, stopped_reason=None)

    @staticmethod
    async def _say(progress: Progress, reply: str) -> None:
        """Stream ``reply`` in small pieces, as a model does (tags split across pieces)."""
        for start in range(0, len(reply), 5):
            await progress.model_text(reply[start : start + 5])

    async def stop(self, conversation_id: str) -> bool:
        """Cancel the running loop, if any."""
        self.stops.append(conversation_id)
        task = self._running.get(conversation_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def totals(self, conversation_id: str) -> Totals:
        """Counts of this conversation; ``NotFound`` when it has no message."""
        messages = self._messages.get(conversation_id)
        if not messages:
            raise NotFound(f"no conversation {conversation_id}")
        answered = self._answered.get(conversation_id, 0)
        return Totals(
            messages=len(messages),
            model_turns=answered,
            input_tokens=100 * answered,
            output_tokens=20 * answered,
            cost=0.0012 * answered,
            blocks=answered,
            duration_ms=1500,
        )

    async def current_conversation(self, coordinates: Coordinates) -> str:
        """The conversation these coordinates map to now."""
        return self._cid(coordinates)

    async def new_conversation(self, coordinates: Coordinates) -> str:
        """A fresh conversation at the same coordinates."""
        self._generation[coordinates] = self._generation.get(coordinates, 0) + 1
        return self._cid(coordinates)

    async def interrupted(self, *, platform: str | None = None) -> list[tuple[str, Coordinates]]:
        """Conversations left unfinished."""
        found = [(cid, c) for cid, c in self._interrupted if platform in (None, c.platform)]
        self._interrupted.clear()
        return found
