"""Replicas of ``opsloop serve slack --http`` on one PostgreSQL, as an operator runs them.

Real child processes of the ``opsloop`` command, a fresh database each, the Slack Web API
stand-in, the scripted model and the unsafe-local sandbox (what is under test is ownership
of loops, not the jail). Slack redelivers an event to whichever replica it reaches: here
each mention goes to two replicas at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from bot.app.application import open_app
from tests.replicas import (
    assert_coherent_and_verified,
    environment,
    fresh_postgres,  # noqa: F401 - a fixture
    metric,
    start,
    timeline,
)
from tests.slack_harness import SECRET, free_port
from tests.slack_standin import EventSender, SlackStandIn, envelope, mention

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ANSWER = "The answer is 42."
QUICK = f"turns:\n  - |\n    <helpers>\n    print(6 * 7)\n    </helpers>\n  - {ANSWER}\n"
SLOW = (
    "turns:\n  - |\n    <helpers>\n    import time\n"
    "    open('slow-started', 'a').write('started\\n')\n    time.sleep(600)\n    </helpers>\n"
    "  - The slow check was cut off.\n"
)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    standin = SlackStandIn()
    await standin.start()
    yield standin
    await standin.stop()


class Replica:
    """One ``opsloop serve slack --http`` child and its port."""

    def __init__(self, name: str, *, url: str, home: Path, slack: SlackStandIn, **extra: str):
        self.name = name
        self.port = free_port()
        env = environment(
            url,
            home,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_API_URL=slack.base_url,
            SLACK_SIGNING_SECRET=SECRET,
            OPSLOOP_REPLICA_ID=name,
            **extra,
        )
        args = ["serve", "slack", "--http", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = start(args, env, home)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """Wait for ``/readyz`` to say ready; what it said."""
        for _ in range(600):
            assert self.process.poll() is None, self.process.communicate()
            try:
                async with session.get(f"{self.base}/readyz") as response:
                    if response.status == 200:
                        found: dict[str, Any] = await response.json()
                        return found
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} never became ready")

    async def metrics(self, session: aiohttp.ClientSession) -> str:
        async with session.get(f"{self.base}/metrics") as response:
            assert response.status == 200
            return await response.text()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def conversation_of(url: str, channel: str) -> str:
    app = open_app(database_url=url)
    try:
        [summary] = [s for s in app.list_conversations() if s.channel == channel]
        return str(summary.conversation_id)
    finally:
        app.close()


async def test_three_replicas_each_mention_sent_to_two_answer_each_once(
    fresh_postgres: str,  # noqa: F811
    jail_reachable_dir: Path,
    slack: SlackStandIn,
) -> None:
    tmp_path = jail_reachable_dir
    (tmp_path / "script.yaml").write_text(QUICK, encoding="utf-8")
    replicas = [Replica(f"r{n}", url=fresh_postgres, home=tmp_path, slack=slack) for n in range(3)]
    try:
        async with aiohttp.ClientSession() as session:
            for r in replicas:
                ready = await r.ready(session)
                assert set(ready["checks"]) == {"store", "sandbox", "model"}
            senders = [EventSender(url=f"{r.base}/slack/events", secret=SECRET) for r in replicas]
            for s in senders:
                await s.__aenter__()
            try:
                sent = []
                for n in range(6):
                    body = envelope(
                        mention(channel=f"C{n}", ts=f"{n}.1", text="6 * 7?"), event_id=f"Ev{n}"
                    )
                    pair = (senders[n % 3], senders[(n + 1) % 3])
                    sent.append(asyncio.gather(*(s.send(body) for s in pair)))
                for statuses in await asyncio.gather(*sent):
                    assert [status for status, *_ in statuses] == [200, 200]
            finally:
                for s in senders:
                    await s.__aexit__(None, None, None)
            for n in range(6):
                await slack.wait_for(
                    lambda n=n: ANSWER in slack.thread_text(f"C{n}", f"{n}.1"),  # type: ignore[misc]
                    timeout=90,
                )
            await asyncio.sleep(1.0)  # a duplicate answer would have had time to come
            scraped = [await r.metrics(session) for r in replicas]
    finally:
        errors = [r.stop() for r in replicas]
    for n in range(6):
        assert slack.thread_text(f"C{n}", f"{n}.1").count(ANSWER) == 1, n
        events = assert_coherent_and_verified(
            fresh_postgres, conversation_of(fresh_postgres, f"C{n}"), tmp_path
        )
        assert [e["type"] for e in events].count("MessageReceived") == 1
        assert [e["type"] for e in events].count("Answered") == 1
        [ran] = [e for e in events if e["type"] == "BlockFinished"]
        assert ran["stdout"] == "42\n"
    assert sum(metric(t, "opsloop_messages_total") for t in scraped) == 6
    assert sum(metric(t, "opsloop_blocks_total") for t in scraped) == 6
    assert sum(metric(t, "opsloop_loops_running") for t in scraped) == 0
    assert not any("Traceback" in e for e in errors), errors


async def start_slow_block(
    replica: Replica, home: Path, *, channel: str, ts: str, event: str
) -> Path:
    """Mention the bot on ``replica`` with the slow script; wait (up to 60 s) until its block
    has started; the workspaces' directory, where the block leaves its marker."""
    async with EventSender(url=f"{replica.base}/slack/events", secret=SECRET) as sender:
        body = envelope(mention(channel=channel, ts=ts, text="slow?"), event_id=event)
        assert (await sender.send(body))[0] == 200
    marker = home / "workspaces"
    deadline = time.monotonic() + 60
    while not list(marker.glob("*/slow-started")) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return marker


async def test_killing_the_owner_mid_block_lets_another_replica_take_over_after_the_lease(
    fresh_postgres: str,  # noqa: F811
    jail_reachable_dir: Path,
    slack: SlackStandIn,
) -> None:
    tmp_path = jail_reachable_dir
    (tmp_path / "script.yaml").write_text(SLOW, encoding="utf-8")
    lease = {"OPSLOOP_LEASE_SECONDS": "3"}
    first = Replica("first", url=fresh_postgres, home=tmp_path, slack=slack, **lease)
    second = Replica("second", url=fresh_postgres, home=tmp_path, slack=slack, **lease)
    try:
        async with aiohttp.ClientSession() as session:
            await first.ready(session)
            await second.ready(session)
            marker = await start_slow_block(first, tmp_path, channel="C9", ts="9.1", event="Ev9")
            found = timeline(fresh_postgres, conversation_of(fresh_postgres, "C9"))
            assert list(marker.glob("*/slow-started")), [
                (e["type"], e.get("stdout"), e.get("stderr"), e.get("reason")) for e in found
            ]
            os.kill(first.process.pid, signal.SIGKILL)  # no release, no last words
            await slack.wait_for(
                lambda: "The slow check was cut off." in slack.thread_text("C9", "9.1"),
                timeout=90,
            )
            scraped = await second.metrics(session)
    finally:
        first.stop()
        second.stop()
        for proc in psutil.process_iter(["cwd"]):  # the killed replica's block, orphaned
            with contextlib.suppress(psutil.Error):
                if str(proc.info["cwd"] or "").startswith(str(tmp_path)):
                    proc.kill()
    cid = conversation_of(fresh_postgres, "C9")
    events = assert_coherent_and_verified(fresh_postgres, cid, tmp_path)
    claims = [e for e in events if e["type"] == "LoopClaimed"]
    assert claims[0]["by"].startswith("first:")  # OPSLOOP_REPLICA_ID, and a random part
    assert claims[-1]["by"].startswith("second:")
    assert claims[-1]["taken_over_from"] == claims[0]["by"]
    assert [e["block_id"] for e in events if e["type"] == "BlockStarted"] == ["t1b1"]
    assert [e["block_id"] for e in events if e["type"] == "BlockOutcomeUnknown"] == ["t1b1"]
    assert events[-1]["type"] == "Answered"
    assert sum(p.read_text().count("started") for p in marker.glob("*/slow-started")) == 1
    assert metric(scraped, "opsloop_lease_takeovers_total") == 1
    assert timeline(fresh_postgres, cid) == events


async def test_a_stop_sent_to_another_replica_stops_the_owner_within_two_seconds(
    fresh_postgres: str,  # noqa: F811
    jail_reachable_dir: Path,
    slack: SlackStandIn,
) -> None:
    tmp_path = jail_reachable_dir
    (tmp_path / "script.yaml").write_text(SLOW, encoding="utf-8")
    owner = Replica("owner", url=fresh_postgres, home=tmp_path, slack=slack)
    other = Replica("other", url=fresh_postgres, home=tmp_path, slack=slack)
    try:
        async with aiohttp.ClientSession() as session:
            await owner.ready(session)
            await other.ready(session)
            marker = await start_slow_block(owner, tmp_path, channel="C7", ts="7.1", event="Ev7")
            assert list(marker.glob("*/slow-started")), "the block never started"
            cid = conversation_of(fresh_postgres, "C7")
            async with EventSender(url=f"{other.base}/slack/events", secret=SECRET) as sender:
                stop = mention(channel="C7", ts="7.2", thread_ts="7.1", text="stop")
                sent = time.monotonic()
                assert (await sender.send(envelope(stop, event_id="Ev8")))[0] == 200
            while time.monotonic() - sent < 30:
                kinds = [e["type"] for e in timeline(fresh_postgres, cid)]
                if "Stopped" in kinds:
                    break
                await asyncio.sleep(0.05)
            took = time.monotonic() - sent
    finally:
        owner.stop()
        other.stop()
    events = assert_coherent_and_verified(fresh_postgres, cid, tmp_path)
    kinds = [e["type"] for e in events]
    assert "StopRequested" in kinds and kinds[-1] == "Stopped", kinds
    assert took < 2.0, f"the owner stopped {took:.2f} s after the stop was recorded elsewhere"
    claims = {e["by"].split(":")[0] for e in events if e["type"] == "LoopClaimed"}
    assert claims == {"owner"}  # the other replica recorded the stop and ran nothing
    [outcome] = [e for e in events if e.get("block_id") == "t1b1" and e["type"] != "BlockStarted"]
    assert outcome["type"] in ("BlockFinished", "BlockOutcomeUnknown")
