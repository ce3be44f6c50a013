"""Whole conversations through the Slack surface in HTTP mode.

The real service comes from ``bot.cli.bootstrap.build_chat_service``: the scripted model, a
real SQLite event store and the real nsjail sandbox. Slack is the local Web API stand-in,
and events are signed Events API requests on loopback, as Slack sends them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.config import Policy
from bot.ports import ChatService
from bot.surface import Coordinates
from tests.conftest import require_real
from tests.fake_chat_service import FakeChatService
from tests.slack_harness import running_bot
from tests.slack_standin import TEAM, envelope, mention, message

SCRIPT = """\
turns:
  - |
    Let me compute that in the sandbox.
    <helpers>
    print(6 * 7)
    </helpers>
  - The answer is 42, as the sandbox printed.
  - |
    <helpers>
    print(sum(range(10)))
    </helpers>
  - And the sum of 0..9 is 45.
"""


@pytest.fixture
def tmp_path(jail_reachable_dir: Path) -> Path:
    """Overrides pytest's: the jail user must reach the sandbox workspaces inside it."""
    return jail_reachable_dir


async def real_service(tmp_path: Path, *, policy: Policy | None = None) -> ChatService:
    """The real ChatService, or skip (laptop) / fail (CI) with the reason."""
    try:
        from bot.cli.bootstrap import build_chat_service
    except ImportError as exc:
        require_real(False, f"bot.cli.bootstrap is not importable yet ({exc})")
        raise
    from bot.settings import Settings
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'opsloop.sqlite3'}",
        provider="scripted",
        model=str(script),
        sandbox="nsjail",
    )
    return build_chat_service(settings=settings, policy=policy or Policy())


async def test_a_mention_gets_a_threaded_answer_that_uses_a_real_sandbox_result(
    tmp_path: Path,
) -> None:
    service = await real_service(tmp_path)
    async with running_bot(service) as bot:
        body = envelope(mention(channel="C1", ts="100.1", text="what is 6 * 7?"), event_id="Ev1")
        status, seconds = await bot.events.send(body)
        assert status == 200 and seconds < 3.0
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "100.1"), timeout=60
        )
        block = next(
            c for c in bot.slack.posts_in("C1", "100.1") if "Block 1/1" in c.params.get("text", "")
        )
        assert "exit 0" in block.params["text"]
        assert "42" in json.dumps(block.params["blocks"])  # printed by nsjail, not by the script
        assert "The answer is 42" in bot.slack.thread_text("C1", "100.1")
        assert bot.slack.reactions("C1", "100.1") == ["eyes", "white_check_mark"]

        reply = message(channel="C1", ts="100.2", thread_ts="100.1", text="and the sum of 0..9?")
        await bot.events.send(envelope(reply, event_id="Ev2"))
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "100.2"), timeout=60
        )
        shown = bot.slack.thread_text("C1", "100.1")
        assert "45" in shown and "And the sum of 0..9 is 45." in shown
        elsewhere = message(channel="C1", ts="100.4", thread_ts="100.3", text="not for the bot")
        assert (await bot.events.send(envelope(elsewhere, event_id="Ev3")))[0] == 200
        await bot.surface.idle()
        assert bot.slack.posts_in("C1", "100.3") == []  # a thread it is not part of
        thread = Coordinates(platform="slack", workspace=TEAM, channel="C1", thread="100.1")
        cid = await service.current_conversation(thread)
        assert (await service.totals(cid)).messages == 2


async def test_a_redelivery_to_the_real_service_gives_one_answer(tmp_path: Path) -> None:
    service = await real_service(tmp_path)
    async with running_bot(service) as bot:
        body = envelope(mention(channel="C1", ts="200.1", text="6 * 7?"), event_id="Ev1")
        statuses = [await bot.events.send(body, retry_num=n or None) for n in range(3)]
        assert [s for s, _ in statuses] == [200, 200, 200]
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "200.1"), timeout=60
        )
        await bot.surface.idle()
        assert (
            bot.slack.streams_in("C1", "200.1")[-1] == "The answer is 42, as the sandbox printed."
        )
        assert sum("answer is 42" in t for t in bot.slack.streams_in("C1", "200.1")) == 1
        assert (
            sum("Block 1/1" in c.params.get("text", "") for c in bot.slack.posts_in("C1", "200.1"))
            == 1
        )


async def test_an_allowlist_refusal_is_recorded_once_and_shown_once_despite_redelivery(
    tmp_path: Path,
) -> None:
    policy = Policy.model_validate({"slack": {"allow_users": ["U0BOB"]}})
    service = await real_service(tmp_path, policy=policy)
    async with running_bot(service) as bot:  # the service enforces policy.slack
        body = envelope(mention(channel="C1", ts="400.1", text="rm -rf /"), event_id="EvR")
        for retry in (None, 1, 2):
            assert (await bot.events.send(body, retry_num=retry))[0] == 200
        await bot.slack.wait_for(lambda: bool(bot.slack.posts_in("C1", "400.1")))
        await bot.surface.idle()
        (notice,) = bot.slack.posts_in("C1", "400.1")
        assert "not in [slack] allow_users" in notice.params["text"]
        assert bot.slack.reactions("C1", "400.1") == []  # no loop, no 👀
        cid = await service.current_conversation(
            Coordinates(platform="slack", workspace=TEAM, channel="C1", thread="400.1")
        )
        events = await service.timeline(cid)  # type: ignore[attr-defined]
        assert [e["type"] for e in events].count("MessageRefused") == 1
        assert "MessageReceived" not in [e["type"] for e in events]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fake", "real"])
async def test_fifty_mentions_in_five_seconds_are_acked_within_3s_and_answered_in_their_threads(
    kind: str, tmp_path: Path
) -> None:
    service = FakeChatService() if kind == "fake" else await real_service(tmp_path)
    channels = [f"C{n:02d}" for n in range(25)]  # two threads per channel, paced at 1 post/s
    async with running_bot(service, pacer_interval=1.0, status_interval=1.5) as bot:

        async def one(n: int) -> tuple[int, float]:
            await asyncio.sleep(n * 0.1)  # 50 mentions spread over 5 seconds
            event = mention(channel=channels[n % 25], ts=f"{300 + n}.1", text=f"question {n}")
            return await bot.events.send(envelope(event, event_id=f"EvL{n}"))

        acks = await asyncio.gather(*(one(n) for n in range(50)))
        assert all(status == 200 for status, _ in acks)
        assert max(seconds for _, seconds in acks) < 3.0, sorted(s for _, s in acks)[-5:]

        def answered() -> int:
            return sum(
                "white_check_mark" in bot.slack.reactions(channels[n % 25], f"{300 + n}.1")
                for n in range(50)
            )

        await bot.slack.wait_for(lambda: answered() == 50, timeout=120)
        for n in range(50):
            channel, thread = channels[n % 25], f"{300 + n}.1"
            expected = (
                f"Answer to 'question {n}': 4"
                if kind == "fake"
                else "The answer is 42, as the sandbox printed."
            )
            streams = bot.slack.streams_in(channel, thread)
            assert streams.count(expected) == 1 and streams[-1] == expected
            assert any(
                "Block 1/1" in c.params.get("text", "") for c in bot.slack.posts_in(channel, thread)
            )


async def test_a_user_over_their_daily_budget_is_stopped_in_the_thread_with_one_sentence(
    tmp_path: Path,
) -> None:
    policy = Policy.model_validate(
        {
            "budgets": {"per_user_daily_cost": 0.000001},
            "prices": {"scripted:*": {"input": 1.0, "output": 1.0}},
        }
    )
    service = await real_service(tmp_path, policy=policy)
    async with running_bot(service) as bot:
        first = envelope(mention(channel="C1", ts="500.1", text="what is 6 * 7?"), event_id="EvB1")
        await bot.events.send(first)
        await bot.slack.wait_for(
            lambda: "resets at 00:00 UTC" in bot.slack.thread_text("C1", "500.1"), timeout=60
        )
        other = envelope(mention(channel="C2", ts="600.1", text="and 6 * 8?"), event_id="EvB2")
        await bot.events.send(other)
        await bot.slack.wait_for(
            lambda: "resets at 00:00 UTC" in bot.slack.thread_text("C2", "600.1"), timeout=60
        )
        await bot.surface.idle()
        shown = bot.slack.thread_text("C1", "500.1")
        elsewhere = bot.slack.thread_text("C2", "600.1")

    # The first reply crossed the budget: its block ran, then the loop stopped before asking
    # the model again. In another channel the same person is stopped before any model call.
    assert "Block 1/1" in shown and "The answer is 42" not in shown
    for text in (shown, elsewhere):
        assert "You (U0ALICE) have used $" in text
        assert "of your $0.000001 daily budget today; it resets at 00:00 UTC, in " in text
    assert "Block" not in elsewhere and "compute" not in elsewhere
