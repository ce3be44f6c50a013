"""Turning the loop's results into Discord messages and files."""

from __future__ import annotations

from adapters.discord.chunking import DISCORD_LIMIT
from adapters.discord.outbound import (
    MAX_MESSAGES,
    BlockView,
    click_reply,
    render_approval,
    render_block,
    render_reply,
    render_stopped,
    settled_content,
)
from bot.surface import ApprovalRequest, Coordinates, DecisionReply
from sandbox.result import RunResult


def _result(stdout: str = "ok\n", stderr: str = "", **flags: object) -> RunResult:
    return RunResult(exit_code=0, signal=None, stdout=stdout, stderr=stderr, duration_ms=7, **flags)  # type: ignore[arg-type]


def _block(index: int = 1, total: int = 1, *, code: str = "print('ok')", **kw: object) -> BlockView:
    return BlockView(index=index, total=total, language="python", code=code, result=_result(**kw))  # type: ignore[arg-type]


def test_a_block_is_shown_as_fenced_code_plus_its_exit_status_and_output() -> None:
    text, files = render_block(_block(stdout="usage(total=10)\n"))
    assert files == ()
    assert text.startswith("**Block 1/1** · `python` · exit 0 · 7 ms\n```python\nprint('ok')\n```")
    assert "```\nusage(total=10)\n```" in text


def test_limits_hit_and_stderr_are_visible() -> None:
    result = RunResult(
        exit_code=None,
        signal=9,
        stdout="",
        stderr="Killed",
        duration_ms=10_000,
        timed_out=True,
        memory_exceeded=True,
        output_truncated=True,
    )
    text, _ = render_block(BlockView(index=2, total=3, language="bash", code="yes", result=result))
    assert "timed out" in text and "memory limit hit" in text and "output truncated" in text
    assert "stderr:\n```\nKilled\n```" in text


def test_a_block_that_ran_without_the_sandbox_says_so() -> None:
    text, _ = render_block(_block(unsafe_local=True))
    assert "WITHOUT a sandbox" in text


def test_triple_backticks_in_output_cannot_close_the_fence_early() -> None:
    text, _ = render_block(_block(stdout="before\n```\nafter\n"))
    assert "\n```\nafter" not in text
    assert "`\u200b``" in text


def test_an_answer_plus_10_blocks_fits_in_few_messages_each_within_the_limit() -> None:
    blocks = [
        _block(i, 10, code=f"print({i})", stdout=f"host {i}: disk 42% used\n" * 12)
        for i in range(1, 11)
    ]
    messages = render_reply(prose="Checking ten hosts.", blocks=blocks, answer="All ten are fine.")
    assert 1 < len(messages) < 10  # sections share messages instead of one message each
    assert all(0 < len(m.text) <= DISCORD_LIMIT for m in messages)
    assert all(m.text.count("```") % 2 == 0 for m in messages)  # every message renders alone
    joined = "\n".join(m.text for m in messages)
    for i in range(1, 11):
        assert f"**Block {i}/10**" in joined
    assert joined.index("Checking ten hosts.") < joined.index("**Block 1/10**")
    assert messages[-1].text.endswith("All ten are fine.")
    assert all(m.files == () for m in messages)


def test_output_too_long_for_5_messages_becomes_an_attachment() -> None:
    stdout = "".join(f"line {i:05d} of a very long log\n" for i in range(2000))  # ~64 kB
    messages = render_reply(blocks=[_block(stdout=stdout)])
    assert len(messages) == 1
    (only,) = messages
    assert "attached as `block-1-output.txt`" in only.text
    assert "```python\nprint('ok')\n```" in only.text  # the code is still shown inline
    assert [f.filename for f in only.files] == ["block-1-output.txt"]
    assert only.files[0].content.decode() == stdout


def test_output_that_fits_in_5_messages_stays_inline() -> None:
    stdout = "x" * 60 + "\n"
    stdout *= 100  # ~6 kB: four messages
    messages = render_reply(blocks=[_block(stdout=stdout)])
    assert 1 < len(messages) <= MAX_MESSAGES
    assert all(m.files == () for m in messages)


def test_stdout_and_stderr_both_go_into_the_attachment() -> None:
    messages = render_reply(blocks=[_block(stdout="o\n" * 6000, stderr="e\n" * 10)])
    content = messages[-1].files[0].content.decode()
    assert content.startswith("o\n") and "--- stderr ---\ne\n" in content


def test_a_huge_answer_is_attached_as_markdown_with_a_preview() -> None:
    answer = "## Findings\n" + "The disk is full. " * 1000
    messages = render_reply(answer=answer)
    assert len(messages) == 1
    assert messages[0].text.startswith("## Findings")
    assert [f.filename for f in messages[0].files] == ["answer.md"]
    assert messages[0].files[0].content.decode() == answer.strip()


def test_more_than_10_attachments_spill_into_file_only_messages() -> None:
    big = "y\n" * 6000
    messages = render_reply(blocks=[_block(i, 12, stdout=big) for i in range(1, 13)])
    assert sum(len(m.files) for m in messages) == 12
    assert all(len(m.files) <= 10 for m in messages)
    assert messages[-1].text == ""


def test_a_stop_is_one_sentence() -> None:
    assert render_stopped(reason="budget", detail="") == (
        "Stopped: this conversation has used its token or cost budget."
    )
    assert render_stopped(reason="weird", detail="the moon") == "Stopped (weird). the moon"


def test_a_budget_stop_shows_the_sentence_with_the_spend_and_the_reset() -> None:
    sentence = (
        "You (4242) have used $2.13 of your $2.00 daily budget today; "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )
    assert render_stopped(reason="budget", detail=sentence) == sentence
    assert render_reply(stopped=("budget", sentence))[0].text == sentence


def test_nothing_to_show_is_no_message() -> None:
    assert render_reply() == []


def _request(code: str = "print('ok')") -> ApprovalRequest:
    return ApprovalRequest(
        conversation_id="c1",
        coordinates=Coordinates("discord", "", "500", "500"),
        request_id="r1",
        block_id="t1b1",
        index=1,
        total=1,
        language="python",
        code=code,
        tools=(),
        requested_from=("role:oncall",),
        expires_at=1_800_000_900.0,
        requested_by="42",
    )


def test_a_settled_approval_keeps_its_code_and_says_who_decided_instead_of_how_to() -> None:
    message, buttons = render_approval(_request())
    granted = DecisionReply(status="granted", detail="approved by 42", by="42")

    settled = settled_content(message.text, granted)

    assert (buttons.approve_id, buttons.deny_id) == ("opsloop_approve:r1", "opsloop_deny:r1")
    assert settled is not None and settled.endswith("\n✅ approved by <@42>")
    assert "print('ok')" in settled and "or reply `approve`" not in settled
    assert len(settled) <= DISCORD_LIMIT


def test_each_decision_says_on_the_message_what_it_did_or_leaves_the_message_alone() -> None:
    def settled(status: str) -> str | None:
        return settled_content("code", DecisionReply(status=status, detail="", by="42"))  # type: ignore[arg-type]

    assert settled("denied") == "code\n⛔ denied by <@42>"
    assert (settled("expired") or "").startswith("code\n⌛ expired")
    assert [settled(s) for s in ("decided", "not_approver", "none")] == [None, None, None]
    decided = DecisionReply(status="decided", detail="already denied by 42", by="42")
    assert click_reply(decided) == "already denied by <@42>"
