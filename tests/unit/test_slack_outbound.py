"""Results out: blocks, answers and sentences within Slack's limits, never cut silently."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import outbound
from adapters.slack.pacer import ChannelPacer
from bot.surface import ApprovalRequest, Coordinates, DecisionReply, Totals
from sandbox.result import RunResult


def result(**fields: object) -> RunResult:
    base: dict[str, object] = {
        "exit_code": 0,
        "signal": None,
        "stdout": "ok\n",
        "stderr": "",
        "duration_ms": 1234,
    }
    base.update(fields)
    return RunResult(**base)  # type: ignore[arg-type]


def sections(message: outbound.SlackMessage) -> list[str]:
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section"]


def test_a_block_shows_its_code_its_status_and_its_output() -> None:
    message = outbound.block_message(
        index=1, total=2, language="python", code="print('ok')", result=result()
    )
    shown = "\n".join(sections(message))
    assert "Block 1/2" in shown and "exit 0" in shown and "1.2 s" in shown
    assert "print('ok')" in shown and "ok" in shown
    assert message.uploads == ()


def test_limits_hit_and_unsafe_local_are_said_out_loud() -> None:
    assert "timed out" in outbound.result_status(result(exit_code=None, signal=9, timed_out=True))
    assert "memory limit" in outbound.result_status(result(exit_code=None, memory_exceeded=True))
    assert "signal 11" in outbound.result_status(result(exit_code=None, signal=11))
    assert "truncated" in outbound.result_status(result(output_truncated=True))
    assert "unsafe-local" in outbound.result_status(result(unsafe_local=True))


def test_long_output_is_previewed_with_a_note_and_attached_whole() -> None:
    stdout = "".join(f"{n}\n" for n in range(10_000))
    message = outbound.block_message(
        index=1, total=1, language="bash", code="seq 10000", result=result(stdout=stdout)
    )
    (upload,) = message.uploads
    assert upload.content == stdout and upload.filename == "block-1-stdout.txt"
    shown = "\n".join(sections(message)) + str(message.blocks)
    assert "characters not shown" in shown and "attached" in shown


def test_a_code_fence_inside_output_cannot_close_the_code_block() -> None:
    message = outbound.block_message(
        index=1, total=1, language="python", code="x", result=result(stdout="```\nbreakout")
    )
    assert sections(message)[-1].count("```") == 2


@given(st.text(min_size=1, max_size=20_000))
def test_every_answer_fits_in_sections_of_3000_and_loses_nothing_but_line_breaks(text: str) -> None:
    messages = outbound.answer_messages(text)
    assert all(len(m.blocks) <= outbound.BLOCK_LIMIT for m in messages)
    assert all(0 < len(s) <= outbound.SECTION_LIMIT for m in messages for s in sections(m))
    if text.strip():
        rebuilt = "".join(s for m in messages for s in sections(m))
        shown = re.sub(
            r"&(amp|lt|gt);", lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m[1]], rebuilt
        )
        assert shown.replace("\n", "") == text.replace("\n", "")  # as Slack decodes it


def test_a_very_long_answer_is_spread_over_several_messages_of_at_most_50_blocks() -> None:
    text = ("x" * 99 + "\n") * 2000  # 200,000 characters: about 67 sections
    messages = outbound.answer_messages(text)
    assert len(messages) == 2
    assert [len(m.blocks) for m in messages][0] == outbound.BLOCK_LIMIT


@given(st.text(min_size=1, max_size=20_000))
def test_stream_chunks_join_back_to_exactly_the_text(text: str) -> None:
    chunks = outbound.stream_chunks(text)
    assert all(len(c) <= outbound.STREAM_CHUNK for c in chunks)
    assert "".join(chunks) == text


def test_a_stop_is_one_human_sentence_even_when_the_detail_is_a_traceback() -> None:
    detail = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom'
    sentence = outbound.stopped_sentence(reason="crashed", detail=detail)
    assert "\n" not in sentence and "File" not in sentence
    assert outbound.stopped_sentence(reason="budget", detail="").startswith("I stopped because")


def test_cost_and_replay_replies_carry_the_numbers_and_the_auditors_command() -> None:
    totals = Totals(
        messages=2,
        model_turns=3,
        input_tokens=1200,
        output_tokens=300,
        cost=0.0042,
        blocks=1,
        duration_ms=5300,
    )
    assert outbound.cost_text(totals) == (
        "So far: 2 message(s), 3 model turn(s), 1,200 input + 300 output tokens, $0.0042, "
        "1 block(s) run, 5.3 s."
    )
    assert "opsloop replay abc-123" in outbound.replay_text("abc-123")


def test_the_pacer_spaces_posts_in_one_channel_but_not_across_channels() -> None:
    now = [100.0]
    pacer = ChannelPacer(interval=1.0, clock=lambda: now[0])
    assert [pacer.reserve("C1") for _ in range(3)] == [0.0, 1.0, 2.0]
    assert pacer.reserve("C2") == 0.0
    now[0] = 110.0
    assert pacer.reserve("C1") == 0.0  # an idle channel starts afresh


def approval_request(**fields: object) -> ApprovalRequest:
    base: dict[str, object] = {
        "conversation_id": "c1",
        "coordinates": Coordinates("slack", "T1", "C1", "10.1"),
        "request_id": "r1",
        "block_id": "t1b1",
        "index": 1,
        "total": 1,
        "language": "python",
        "code": "print('<!channel>')",
        "tools": ("restart",),
        "requested_from": ("role:oncall",),
        "expires_at": 1_800_000_900.0,
        "requested_by": "U0ASKER",
    }
    base.update(fields)
    return ApprovalRequest(**base)  # type: ignore[arg-type]


def test_an_approval_message_shows_the_code_and_tools_with_two_buttons_bound_to_the_request() -> (
    None
):
    message = outbound.approval_message(approval_request())
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    buttons = [(e["action_id"], e["value"]) for e in actions["elements"]]
    assert buttons == [("opsloop_approve", "r1"), ("opsloop_deny", "r1")]
    shown = "\n".join(sections(message))
    assert "print('&lt;!channel&gt;')" in shown and "`restart`" in shown  # escaped, named


def test_a_settled_request_keeps_its_code_and_loses_its_buttons_and_how_to_decide_line() -> None:
    posted = outbound.approval_message(approval_request())
    granted = DecisionReply(status="granted", detail="approved by U0ONCALL", by="U0ONCALL")
    line = outbound.settled_line(granted)

    settled = outbound.settled_message(posted.blocks, line=line or "")

    assert line == "✅ approved by <@U0ONCALL>" and settled.text == line
    assert [b["type"] for b in settled.blocks] == ["section", "section", "context"]
    assert sections(settled) == sections(posted)  # the code, as it was shown
    assert settled.blocks[-1]["elements"][0]["text"] == line
    assert "approve` / `deny" not in str(settled.blocks)


def test_each_decision_says_on_the_message_what_it_did_or_leaves_the_message_alone() -> None:
    def line(status: str, by: str = "U0ONCALL") -> str | None:
        return outbound.settled_line(DecisionReply(status=status, detail="", by=by))  # type: ignore[arg-type]

    assert line("denied") == "⛔ denied by <@U0ONCALL>"
    assert (line("expired") or "").startswith("⌛ expired")
    assert [line(s) for s in ("decided", "not_approver", "none")] == [None, None, None]
    assert line("granted", by="<!channel>") == "✅ approved by <@&lt;!channel&gt;>"


def test_a_click_that_changed_nothing_is_answered_in_the_services_words_with_a_mention() -> None:
    def reply(status: str, detail: str, by: str = "") -> str:
        return outbound.click_reply(DecisionReply(status=status, detail=detail, by=by))  # type: ignore[arg-type]

    assert reply("not_approver", "you are not an approver here") == "you are not an approver here"
    assert reply("decided", "already denied by U0ONCALL", "U0ONCALL") == (
        "already denied by <@U0ONCALL>"
    )
    assert reply("none", "there is no <approval> waiting") == "there is no &lt;approval&gt; waiting"


def test_a_budget_stop_is_the_sentence_with_the_spend_and_the_reset() -> None:
    detail = (
        "You (U012AB) have used $2.13 of your $2.00 daily budget today; "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )
    assert outbound.stopped_sentence(reason="budget", detail=detail) == detail
    assert outbound.stopped_sentence(
        reason="budget", detail="the conversation spent $0.0100 of its $0.0100 budget"
    ) == ("The conversation spent $0.0100 of its $0.0100 budget.")
