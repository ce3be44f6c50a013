"""Slack's AI app surface through the stand-in and the real service: a thread opened in the
assistant panel gets the configured suggested prompts, its first question becomes its title,
the answer carries feedback buttons, and a click on one is recorded as ``FeedbackGiven``."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from bot.config import Policy
from bot.ports import ChatService
from bot.surface import Coordinates
from tests.real_service import real_service
from tests.slack_clicks import send_click
from tests.slack_harness import running_bot
from tests.slack_standin import TEAM, Call, envelope, mention, message

SCRIPT = "turns:\n  - The disk is full of logs.\n  - Noted.\n"
PROMPTS = ["Why is the disk full?", "Show the biggest files"]
THREAD = Coordinates(platform="slack", workspace=TEAM, channel="D1", thread="800.1")


@pytest.fixture
def tmp_path(jail_reachable_dir: Path) -> Path:
    """Overrides pytest's: the jail user must reach the sandbox workspaces inside it."""
    return jail_reachable_dir


def thread_event(kind: str, *, channel: str = "C9") -> dict[str, Any]:
    return {
        "type": kind,
        "assistant_thread": {
            "user_id": "U0ALICE",
            "context": {"channel_id": channel, "team_id": TEAM, "enterprise_id": ""},
            "channel_id": "D1",
            "thread_ts": "800.1",
        },
        "event_ts": f"{time.time():.6f}",
    }


def feedback_click(posted: Call, *, value: str, user: str = "U0ALICE") -> dict[str, Any]:
    p = posted.params
    return {
        "type": "block_actions",
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": "A0APP",
        "container": {
            "type": "message",
            "message_ts": p["_ts"],
            "channel_id": p["channel"],
            "is_ephemeral": False,
            "thread_ts": p.get("thread_ts"),
        },
        "team": {"id": TEAM},
        "channel": {"id": p["channel"]},
        "message": {"ts": p["_ts"], "thread_ts": p.get("thread_ts"), "blocks": p["blocks"]},
        "actions": [
            {
                "action_id": "opsloop_feedback",
                "type": "feedback_buttons",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


async def feedback_events(service: ChatService, where: Coordinates) -> list[dict[str, Any]]:
    timeline = await service.timeline(await service.current_conversation(where))
    return [e for e in timeline if e["type"] == "FeedbackGiven"]


async def test_an_assistant_thread_gets_prompts_a_title_and_feedback_buttons_that_record(
    tmp_path: Path,
) -> None:
    policy = Policy.model_validate({"slack": {"suggested_prompts": PROMPTS}})
    service = await real_service(tmp_path, SCRIPT, policy)
    async with running_bot(service, suggested_prompts=PROMPTS) as bot:
        slack = bot.slack
        assert (
            await bot.events.send(
                envelope(thread_event("assistant_thread_started"), event_id="EvA1")
            )
        )[0] == 200
        await slack.wait_for(lambda: bool(slack.of("assistant.threads.setSuggestedPrompts")))
        prompts = slack.of("assistant.threads.setSuggestedPrompts")[0].params
        assert [p["message"] for p in prompts["prompts"]] == PROMPTS
        assert (prompts["channel_id"], prompts["thread_ts"]) == ("D1", "800.1")

        changed = envelope(
            thread_event("assistant_thread_context_changed", channel="C7"), event_id="EvA2"
        )
        assert (await bot.events.send(changed))[0] == 200

        question = message(
            channel="D1",
            ts="800.3",
            thread_ts="800.1",
            channel_type="im",
            text="why is   the disk full?",
        )
        await bot.events.send(envelope(question, event_id="EvA3"))
        await slack.wait_for(
            lambda: "white_check_mark" in slack.reactions("D1", "800.3"), timeout=60
        )
        await bot.surface.idle()
        (title,) = slack.of("assistant.threads.setTitle")
        assert title.params["title"] == "why is the disk full?"
        assert (title.params["channel_id"], title.params["thread_ts"]) == ("D1", "800.1")
        stored = await bot.surface.assistant.contexts.find(channel_id="D1", thread_ts="800.1")
        assert stored is not None and stored["channel_id"] == "C7"

        (buttons,) = [
            c
            for c in slack.posts_in("D1", "800.1")
            if any(b.get("type") == "context_actions" for b in c.params.get("blocks") or [])
        ]
        sha = hashlib.sha256(b"The disk is full of logs.").hexdigest()
        element = buttons.params["blocks"][0]["elements"][0]
        assert element["type"] == "feedback_buttons"
        assert element["positive_button"]["value"] == f"good:{sha}"
        assert element["negative_button"]["value"] == f"bad:{sha}"

        forged = feedback_click(buttons, value="good:" + "0" * 64)
        assert (await send_click(bot.events, forged))[0] == 200
        assert (await send_click(bot.events, feedback_click(buttons, value=f"bad:{sha}")))[0] == 200
        for _ in range(200):
            if await feedback_events(service, THREAD):
                break
            await asyncio.sleep(0.05)
        await bot.surface.idle()
        given = await feedback_events(service, THREAD)
    assert [(e["by"], e["value"], e["answer_sha256"]) for e in given] == [("U0ALICE", "bad", sha)]


async def test_a_channel_mention_keeps_todays_flow_without_title_or_feedback(
    tmp_path: Path,
) -> None:
    service = await real_service(tmp_path, SCRIPT)
    async with running_bot(service, suggested_prompts=PROMPTS) as bot:
        body = envelope(
            mention(channel="C1", ts="900.1", text="why is the disk full?"), event_id="EvM"
        )
        await bot.events.send(body)
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "900.1"), timeout=60
        )
        await bot.surface.idle()
        assert "The disk is full of logs." in bot.slack.thread_text("C1", "900.1")
        assert bot.slack.of("assistant.threads.setTitle") == []
        assert bot.slack.of("assistant.threads.setSuggestedPrompts") == []
        assert not any(
            b.get("type") == "context_actions"
            for c in bot.slack.posts_in("C1", "900.1")
            for b in c.params.get("blocks") or []
        )
