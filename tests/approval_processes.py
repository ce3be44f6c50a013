"""Opsloop processes for the approval tests of the chat surfaces: the real service
(``bot.cli.bootstrap.build_service``: the real application on a shared SQLite file, the
product's scripted model watched, the port fake of the sandbox) under one policy that asks
before every block, with a clock the test moves by hand.

The runners and the expiry watcher all read that clock, and the watcher sleeps on it, so a
test checks "on time" by moving the clock, never by timing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from bot.cli.bootstrap import build_service
from bot.config import Policy
from bot.loop.service import OpsloopService
from bot.settings import Settings
from tests.discord_standin import USER_ID
from tests.port_fakes import FakeSandbox, WatchedModel

BLOCK = "Let me look.\n<helpers>\nprint('disk is fine')\n</helpers>"
POLICY: dict[str, Any] = {
    "roles": {"oncall": ["slack:U0ONCALL", f"discord:{USER_ID}"]},
    "approvals": {"blocks": "always", "approvers": ["role:oncall"], "timeout_minutes": 15},
}
T0 = 1_800_000_000.0
EXPIRES = T0 + 15 * 60


class Clock:
    """The runners' clock, moved by the test; ``sleep`` returns once it has moved far enough."""

    def __init__(self) -> None:
        self.now = T0
        self.naps = 0  # sleeps begun: the expiry watcher begins one after each look at the log
        self._moved = asyncio.Event()

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    async def sleep(self, seconds: float) -> None:
        target = self.now + seconds
        self.naps += 1
        while self.now < target:
            self._moved.clear()
            await self._moved.wait()

    def move_to(self, when: float) -> None:
        self.now = when
        self._moved.set()


@dataclass
class Opsloop:
    """One opsloop process: its service (with its model and sandbox) on the shared SQLite file."""

    service: OpsloopService
    model: WatchedModel
    sandbox: FakeSandbox

    def kinds(self, cid: str) -> list[str]:
        """Event types but ``LoopClaimed`` (who ran the loop: docs/replicas.md)."""
        timeline = self.service.app.timeline(UUID(cid))  # type: ignore[attr-defined]
        return [e["type"] for e in timeline if e["type"] != "LoopClaimed"]

    def events(self, cid: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.service.app.timeline(UUID(cid)) if e["type"] == kind]  # type: ignore[attr-defined]


def sqlite_file(folder: Path) -> str:
    """The database URL of the SQLite file every process of a test shares."""
    return f"sqlite:///{folder / 'opsloop.sqlite3'}"


@contextlib.asynccontextmanager
async def opsloop(database: str, clock: Clock, *, turns: int = 1) -> AsyncIterator[Opsloop]:
    """A process's service: the script asks to run a block, then answers, ``turns`` times."""
    model = WatchedModel([BLOCK, "The disk is fine."] * turns)
    sandbox = FakeSandbox()
    service = build_service(
        settings=Settings(database_url=database),
        policy=Policy.model_validate(POLICY),
        model=model,
        sandbox=sandbox,
    )
    service.runner.now = clock
    service.runner.sleep = clock.sleep
    try:
        yield Opsloop(service=service, model=model, sandbox=sandbox)
    finally:
        await service.aclose()
