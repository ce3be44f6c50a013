"""Files both ways through the Discord stand-in to the real service (scripted model, SQLite,
nsjail): an attachment lands in /workspace/inbox, a block's /workspace/outbox file comes back
as an attachment; with the caps and a URL that is not Discord's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.discord.surface import REACT_ANSWERED
from bot.config import AccessPolicy, Policy
from bot.ports import ChatService
from bot.surface import Coordinates
from tests.discord_harness import connected, dm
from tests.discord_standin import (
    BOT_ID,
    DM_CHANNEL_ID,
    GUILD_CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    DiscordStandIn,
    message_payload,
)
from tests.real_service import real_service

SCRIPT = """\
turns:
  - |
    <helpers>
    import pathlib
    log = pathlib.Path("/workspace/inbox/app.log").read_text()
    out = pathlib.Path("/workspace/outbox")
    out.mkdir(exist_ok=True)
    (out / "report.txt").write_text(f"errors: {log.count('ERROR')}\\n")
    </helpers>
  - Two errors; the report is attached.
"""
QUIET = "turns:\n  - Noted.\n  - Noted.\n"


async def events_of(service: ChatService, where: Coordinates, *types: str) -> list[dict[str, Any]]:
    timeline = await service.timeline(await service.current_conversation(where))
    return [e for e in timeline if e["type"] in types]


async def test_a_dm_attachment_is_read_by_a_block_whose_report_comes_back_attached(
    jail_reachable_dir: Path,
) -> None:
    service = await real_service(jail_reachable_dir, SCRIPT)
    async with connected(service, AccessPolicy()) as running:
        fake = running.discord
        question = dm("count the errors")
        question["attachments"] = [fake.host_attachment("app.log", b"ERROR a\nERROR b\nok\n")]
        await fake.dispatch("MESSAGE_CREATE", question)
        await fake.wait_until(lambda: any("report.txt" in s.files for s in fake.sent), timeout=60)
        (sent,) = [s for s in fake.sent if "report.txt" in s.files]
        assert sent.files["report.txt"] == b"errors: 2\n"
        assert "Two errors; the report is attached." in fake.texts(DM_CHANNEL_ID)
        where = Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)
        found = await events_of(service, where, "FileReceived", "FileSent", "Answered")
    assert [(e["type"], e.get("name")) for e in found] == [
        ("FileReceived", "app.log"),
        ("FileSent", "report.txt"),
        ("Answered", None),
    ]


async def test_a_server_mention_with_files_refuses_one_over_the_cap_and_one_off_discord(
    jail_reachable_dir: Path,
) -> None:
    service = await real_service(jail_reachable_dir, QUIET, Policy(files={"max_mb": 1}))
    elsewhere = DiscordStandIn()
    await elsewhere.start()
    access = AccessPolicy(mention_guilds=[GUILD_ID])
    try:
        async with connected(service, access, guilds=[GUILD_ID]) as running:
            fake = running.discord
            message = message_payload(
                channel_id=GUILD_CHANNEL_ID,
                guild_id=GUILD_ID,
                author_id=USER_ID,
                content=f"<@{BOT_ID}> look",
            )
            message["attachments"] = [
                fake.host_attachment("big.bin", b"x" * (1024 * 1024 + 1)),
                fake.host_attachment("liar.log", b"y" * 50, size=10),
                elsewhere.host_attachment("other.log", b"z", port=elsewhere.port),
                fake.host_attachment("ok.log", b"fine\n"),
            ]
            await fake.dispatch("MESSAGE_CREATE", message)
            await fake.wait_until(lambda: (message["id"], REACT_ANSWERED) in fake.reactions)
            thread = Coordinates("discord", GUILD_ID, GUILD_CHANNEL_ID, message["id"])
            found = await events_of(service, thread, "FileReceived", "FileRefused")
            shown = "\n".join(fake.texts(message["id"]))
    finally:
        await elsewhere.close()
    assert [(e["type"], e["name"]) for e in found] == [
        ("FileRefused", "big.bin"),
        ("FileRefused", "liar.log"),
        ("FileRefused", "other.log"),
        ("FileReceived", "ok.log"),
    ]
    assert "over the limit" in found[0]["reason"] and "declared 10" in found[1]["reason"]
    assert "not on Discord's hosts" in found[2]["reason"]
    assert elsewhere.fetched == [] and "Not saved: big.bin" in shown
