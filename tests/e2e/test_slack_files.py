"""Files both ways through the Slack surface: a log attached to a mention lands in the real
jail's /workspace/inbox, and the file a block writes to /workspace/outbox is uploaded to the
thread (files upload v2); with the caps, a login page instead of the file, and a file URL on
another host that never gets the token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config import Policy
from bot.ports import ChatService
from bot.surface import Coordinates
from tests.real_service import real_service
from tests.slack_harness import running_bot
from tests.slack_standin import TEAM, SlackStandIn, envelope, mention

SCRIPT = """\
turns:
  - |
    <helpers>
    import pathlib
    log = pathlib.Path("/workspace/inbox/app.log").read_text()
    out = pathlib.Path("/workspace/outbox")
    out.mkdir(exist_ok=True)
    (out / "report.txt").write_text(f"errors: {log.count('ERROR')}\\n")
    print("written")
    </helpers>
  - The log has 2 errors; the report is attached.
"""
QUIET = "turns:\n  - Noted.\n  - Noted.\n"


@pytest.fixture
def tmp_path(jail_reachable_dir: Path) -> Path:
    """Overrides pytest's: the jail user must reach the sandbox workspaces inside it."""
    return jail_reachable_dir


def with_files(event: dict[str, Any], *files: dict[str, Any]) -> dict[str, Any]:
    return {**event, "files": list(files), "subtype": "file_share"}


async def events_of(service: ChatService, ts: str, *types: str) -> list[dict[str, Any]]:
    where = Coordinates(platform="slack", workspace=TEAM, channel="C1", thread=ts)
    timeline = await service.timeline(await service.current_conversation(where))
    return [e for e in timeline if e["type"] in types]


async def test_a_slack_user_attaches_a_log_and_gets_an_answer_and_the_blocks_report(
    tmp_path: Path,
) -> None:
    service = await real_service(tmp_path, SCRIPT)
    async with running_bot(service) as bot:
        log = bot.slack.host_file("app.log", b"ERROR one\nok\nERROR two\n")
        event = with_files(mention(channel="C1", ts="500.1", text="summarize this log"), log)
        assert (await bot.events.send(envelope(event, event_id="EvF1")))[0] == 200
        await bot.slack.wait_for(lambda: "report.txt" in bot.slack.uploaded(), timeout=60)
        await bot.surface.idle()
        assert bot.slack.uploaded()["report.txt"] == b"errors: 2\n"
        assert "the report is attached" in bot.slack.thread_text("C1", "500.1")
        assert bot.slack.downloads == ["Bearer xoxb-test"]
        complete = bot.slack.of("files.completeUploadExternal")[-1].params
        assert complete.get("thread_ts") == "500.1"
        received = await events_of(service, "500.1", "FileReceived", "FileSent", "Answered")
    assert [e["type"] for e in received] == ["FileReceived", "FileSent", "Answered"]
    assert (received[0]["name"], received[0]["bytes"], received[0]["by"]) == (
        "app.log",
        23,
        "U0ALICE",
    )
    assert received[1]["name"] == "report.txt" and received[1]["bytes"] == 10


async def test_a_login_page_instead_of_the_file_and_a_file_over_the_cap_are_refused(
    tmp_path: Path,
) -> None:
    policy = Policy.model_validate({"files": {"max_mb": 1}})
    service = await real_service(tmp_path, QUIET, policy)
    async with running_bot(service) as bot:
        page = bot.slack.host_file("app.log", b"real log\n", login_page=True)
        big = bot.slack.host_file("big.bin", b"x" * (1024 * 1024 + 1), mimetype="application/x")
        event = with_files(mention(channel="C1", ts="600.1", text="look"), page, big)
        await bot.events.send(envelope(event, event_id="EvF2"))
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "600.1"), timeout=60
        )
        await bot.surface.idle()
        shown = bot.slack.thread_text("C1", "600.1")
        refused = await events_of(service, "600.1", "FileRefused", "FileReceived")
    assert [(e["type"], e["name"]) for e in refused] == [
        ("FileRefused", "app.log"),
        ("FileRefused", "big.bin"),
    ]
    assert "HTML page" in refused[0]["reason"] and "over the limit" in refused[1]["reason"]
    assert "Not saved: app.log" in shown
    assert len(bot.slack.downloads) == 1  # the big one was refused by its declared size


async def test_a_file_url_on_another_host_is_refused_and_never_gets_the_token(
    tmp_path: Path,
) -> None:
    elsewhere = SlackStandIn()
    await elsewhere.start()
    try:
        service = await real_service(tmp_path, QUIET)
        async with running_bot(service) as bot:
            planted = elsewhere.host_file("secrets.txt", b"anything")
            event = with_files(mention(channel="C1", ts="700.1", text="read it"), planted)
            await bot.events.send(envelope(event, event_id="EvF3"))
            await bot.slack.wait_for(
                lambda: "white_check_mark" in bot.slack.reactions("C1", "700.1"), timeout=60
            )
            await bot.surface.idle()
            refused = await events_of(service, "700.1", "FileRefused")
    finally:
        await elsewhere.stop()
    assert elsewhere.downloads == []  # not even a request without the token
    assert "not on Slack's hosts" in json.dumps(refused)
