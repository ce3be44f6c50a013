"""A real loop in Slack: a block in nsjail prints mentions and a masked link, the model repeats
them; Slack (the Web API stand-in) receives all of it escaped, streamed or posted."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Policy
from bot.ports import ChatService
from tests.conftest import require_real
from tests.integration.test_slack_output_is_data import ESCAPED, assert_nothing_live
from tests.slack_harness import running_bot
from tests.slack_standin import SlackStandIn, envelope, mention

SCRIPT = """\
turns:
  - |
    Checking <!channel> <@U123> <https://evil.example|click> first.
    <helpers>
    print("<!channel> <@U123> <https://evil.example|click>")
    </helpers>
  - "It printed <!channel> <@U123> <https://evil.example|click>, as asked."
"""


@pytest.fixture
def tmp_path(jail_reachable_dir: Path) -> Path:
    """Overrides pytest's: the jail user must reach the sandbox workspaces inside it."""
    return jail_reachable_dir


async def hostile_service(tmp_path: Path) -> ChatService:
    from bot.cli.bootstrap import build_chat_service
    from bot.settings import Settings
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")
    script = tmp_path / "script.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'opsloop.sqlite3'}",
        provider="scripted",
        model=str(script),
        sandbox="nsjail",
    )
    return build_chat_service(settings=settings, policy=Policy())


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "posted"])
async def test_a_real_block_and_model_that_ping_the_channel_reach_slack_escaped(
    tmp_path: Path, streaming: bool
) -> None:
    service = await hostile_service(tmp_path)
    slack = SlackStandIn(streaming=streaming, assistant_status=streaming)
    async with running_bot(service, slack=slack) as bot:
        event = mention(channel="C1", ts="7.1", text="print the mentions")
        assert (await bot.events.send(envelope(event, event_id="EvE")))[0] == 200
        await bot.slack.wait_for(
            lambda: "white_check_mark" in bot.slack.reactions("C1", "7.1"), timeout=60
        )
        await bot.surface.idle()
        sections = [
            block["text"]["text"]
            for call in bot.slack.posts_in("C1", "7.1")
            for block in call.params.get("blocks", [])
            if "text" in block
        ]
        shown = "\n".join([bot.slack.thread_text("C1", "7.1"), *sections])
        assert f"Checking {ESCAPED} first." in shown  # the model's prose
        assert f'print("{ESCAPED}")' in shown  # the block's code
        assert f"```\n{ESCAPED}\n```" in shown  # what nsjail printed
        assert f"It printed {ESCAPED}, as asked." in shown  # the answer
        assert_nothing_live(bot.slack)
