"""Nothing a block, the model or a user writes pings or links in Slack (HTTP mode, stand-in).

The asker's text carries real mention syntax, the block prints it, the model's answer quotes
it; every Web API call the bot makes must carry it escaped, whether the answer is streamed
(``chat.startStream``) or posted (``chat.postMessage`` with a ``chat.update`` status).
"""

from __future__ import annotations

import json

import pytest

from bot.config import AccessPolicy
from bot.surface import Incoming, Receipt
from tests.fake_chat_service import FakeChatService
from tests.hostile import SLACK_ATTACK
from tests.slack_harness import running_bot
from tests.slack_standin import SlackStandIn, envelope, mention

LIVE = ("<!channel>", "<@U123>", "<https://evil.example|click>")
ESCAPED = "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt;"


def assert_nothing_live(slack: SlackStandIn) -> None:
    """No call carries a live mention or link, and none asks Slack to parse names."""
    for call in slack.calls:
        sent = json.dumps(call.params, ensure_ascii=False)
        for live in LIVE:
            assert live not in sent, f"{call.method} sent {live}"
        assert "link_names" not in call.params and "parse" not in call.params


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "posted"])
async def test_a_hostile_question_block_output_and_answer_reach_slack_escaped(
    streaming: bool,
) -> None:
    service = FakeChatService(output_for=lambda text: f"{SLACK_ATTACK}\n")
    slack = SlackStandIn(streaming=streaming, assistant_status=streaming)
    async with running_bot(service, slack=slack) as bot:
        event = mention(channel="C1", ts="5.1", text=f"echo {SLACK_ATTACK}")
        assert (await bot.events.send(envelope(event, event_id="EvX")))[0] == 200
        await bot.slack.wait_for(lambda: "white_check_mark" in bot.slack.reactions("C1", "5.1"))
        await bot.surface.idle()
        assert service.received[0].text == f"echo {SLACK_ATTACK}"  # recorded as written
        shown = bot.slack.thread_text("C1", "5.1")
        assert shown.count(ESCAPED) >= 3  # the block's code, its output, the answer
        assert f"Answer to 'echo {ESCAPED}'" in shown
        if not streaming:
            assert bot.slack.of("chat.update")  # the status fallback was used too
        assert_nothing_live(bot.slack)


class EchoingRefusal(FakeChatService):
    """Refuses with a reply that quotes the refused message (as a careless policy might)."""

    async def record_refusal(self, incoming: Incoming, *, reason: str) -> Receipt:
        receipt = await super().record_refusal(incoming, reason=reason)
        return Receipt(receipt.conversation_id, receipt.status, f"Refused: {incoming.text}")


async def test_a_refusal_notice_that_quotes_the_message_is_escaped() -> None:
    service = EchoingRefusal(access={"slack": AccessPolicy(allow_users=["U0BOB"])})
    async with running_bot(service) as bot:
        event = mention(channel="C1", ts="6.1", text=SLACK_ATTACK)
        await bot.events.send(envelope(event, event_id="EvR"))
        await bot.slack.wait_for(lambda: bool(bot.slack.posts_in("C1", "6.1")))
        await bot.surface.idle()
        (notice,) = bot.slack.posts_in("C1", "6.1")
        assert notice.params["text"] == f"Refused: {ESCAPED}"
        assert_nothing_live(bot.slack)
