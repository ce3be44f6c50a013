"""The surface's own rules around the loop: a bounded number of loops at once, failures shown."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.discord.surface import DiscordSurface
from bot.ports import Progress
from bot.surface import Coordinates, Incoming, Outcome
from tests.discord_fakes import scripted_service
from tests.fake_chat_service import FakeChatService


class FakeChannel:
    """Stands in for a discord.py channel: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        self.sent.append(content or "")

    async def typing(self) -> None:
        return None


async def test_a_burst_runs_at_most_max_loops_loops_at_once_and_the_rest_later() -> None:
    hold = asyncio.Event()
    service = scripted_service(hold=hold)
    surface = DiscordSurface(service=service, max_loops=1)
    c1, c2 = [
        (
            await service.receive(Incoming(Coordinates("discord", "", dm, dm), dm, "42", "disk?"))
        ).conversation_id
        for dm in ("501", "502")
    ]
    first, second = FakeChannel(), FakeChannel()
    one = asyncio.create_task(surface.run_loop(c1, first))  # type: ignore[arg-type]
    two = asyncio.create_task(surface.run_loop(c2, second))  # type: ignore[arg-type]
    while not any(t.startswith("**Block") for t in first.sent):
        await asyncio.sleep(0)
    for _ in range(100):
        await asyncio.sleep(0)
    assert service.runs == [c1]  # c1 holds the only slot
    hold.set()
    await asyncio.gather(one, two)
    assert service.runs == [c1, c2]
    assert second.sent[-1] == "The disk is full of logs."


async def test_a_loop_that_raises_tells_the_user_in_one_sentence_and_returns_none() -> None:
    class Broken(FakeChatService):
        async def run(self, conversation_id: str, progress: Progress) -> Outcome:
            raise RuntimeError("database is locked\nTraceback (most recent call last): ...")

    channel = FakeChannel()
    surface = DiscordSurface(service=Broken())
    assert await surface.run_loop("c1", channel) is None  # type: ignore[arg-type]
    assert channel.sent == [
        "opsloop hit a problem (database is locked). Your message is recorded; "
        "the loop resumes when opsloop restarts."
    ]
