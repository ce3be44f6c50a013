"""Fakes for the Discord surface's tests: a poster, and the fake service with their script."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.discord.outbound import Outgoing
from bot.config import AccessPolicy
from tests.fake_chat_service import FakeChatService


@dataclass
class RecordingPoster:
    """A ``Poster`` that keeps what would have been sent."""

    posted: list[Outgoing] = field(default_factory=list)
    typings: int = 0

    async def post(self, message: Outgoing) -> None:
        self.posted.append(message)

    async def typing(self) -> None:
        self.typings += 1


DISK_CODE = "import shutil; print(shutil.disk_usage('/'))"


def scripted_service(
    *,
    answer: str = "The disk is full of logs.",
    stdout: str = "usage(total=10)\n",
    hold: asyncio.Event | None = None,
    access: Mapping[str, AccessPolicy] | None = None,
) -> FakeChatService:
    """The surface tests' fake service playing the Discord tests' script: prose, one block
    checking the disk, then ``answer``."""
    return FakeChatService(
        prose="Let me check.",
        code_for=lambda text: DISK_CODE,
        output_for=lambda text: stdout,
        answer_for=lambda text, result: answer,
        hold=hold,
        access=dict(access or {}),
    )
