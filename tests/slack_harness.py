"""Runs the Slack surface in HTTP mode on loopback against the Web API stand-in."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from adapters.slack.app import SlackSurface
from adapters.slack.server import EVENTS_PATH, build_client, start_http
from bot.ports import ChatService
from tests.slack_standin import EventSender, SlackStandIn

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Bot:
    """A running surface, the stand-in it talks to, and a signed-event sender."""

    surface: SlackSurface
    slack: SlackStandIn
    events: EventSender
    url: str


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running_bot(
    service: ChatService,
    *,
    slack: SlackStandIn | None = None,
    pacer_interval: float = 0.05,
    status_interval: float = 0.05,
    watch: bool = False,
    suggested_prompts: tuple[str, ...] | list[str] = (),
) -> AsyncIterator[Bot]:
    """The bot in HTTP mode with short pacing, so tests stay quick.

    A stand-in that is already running is left running (a restart test gives the next bot
    the same Slack); ``watch`` starts the approval watcher, as ``serve_http`` does."""
    slack = slack or SlackStandIn()
    owned = slack.port == 0
    if owned:
        await slack.start()
    client = build_client(token="xoxb-test", base_url=slack.base_url)
    surface = SlackSurface(
        service=service,
        client=client,
        signing_secret=SECRET,
        pacer_interval=pacer_interval,
        status_interval=status_interval,
        suggested_prompts=suggested_prompts,
    )
    port = free_port()
    runner = await start_http(surface, host="127.0.0.1", port=port)
    if watch:
        surface.watch_approvals()
    url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
    try:
        async with EventSender(url=url, secret=SECRET) as events:
            yield Bot(surface=surface, slack=slack, events=events, url=url)
    finally:
        await surface.close(grace=2.0)
        await runner.cleanup()
        await client.session.close() if client.session else None
        if owned:
            await slack.stop()
