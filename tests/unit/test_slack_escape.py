"""What others wrote reaches Slack escaped: never a ping, a broadcast or a masked link (pure).

Slack decodes exactly ``&amp;``, ``&lt;`` and ``&gt;`` in message text, code blocks included,
in one pass. So escaping ``&`` every time is right: a model that writes ``&amp;`` is shown
``&amp;``, exactly as written, and nothing is ever decoded twice.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import outbound
from sandbox.result import RunResult
from tests.hostile import SLACK_ATTACK

ESCAPED = "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt;"
ENTITY = re.compile(r"&(amp|lt|gt);")
slacky = st.text(alphabet=st.sampled_from("&<>!@|;amplgt#`\n ") | st.characters(), max_size=300)


def as_slack_shows(mrkdwn: str) -> str:
    """What Slack displays for message text: its three entities decoded, in one pass."""
    return ENTITY.sub(lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], mrkdwn)


def only_entities(mrkdwn: str) -> bool:
    """No angle bracket survives, and every ``&`` starts one of the three entities."""
    return (
        "<" not in mrkdwn
        and ">" not in mrkdwn
        and len(ENTITY.findall(mrkdwn)) == (mrkdwn.count("&"))
    )


@given(slacky)
def test_escaped_text_has_no_angle_brackets_and_only_whole_entities(text: str) -> None:
    assert only_entities(outbound.escape(text))


@given(slacky)
def test_slack_shows_escaped_text_exactly_as_it_was_written(text: str) -> None:
    assert as_slack_shows(outbound.escape(text)) == text


def test_an_entity_written_by_the_model_is_shown_as_written_not_decoded() -> None:
    assert as_slack_shows(outbound.escape("a &amp; b &lt;x&gt;")) == "a &amp; b &lt;x&gt;"


@given(slacky, st.integers(min_value=0, max_value=300))
def test_clipping_escaped_text_never_leaves_half_an_entity(text: str, limit: int) -> None:
    clipped = outbound.clip(outbound.escape(text), limit)
    assert len(clipped) <= limit and only_entities(clipped)
    assert text.startswith(as_slack_shows(clipped))


def section_texts(message: outbound.SlackMessage) -> list[str]:
    texts = []
    for block in message.blocks:
        texts.extend(
            [block["text"]["text"]] if "text" in block else [e["text"] for e in block["elements"]]
        )
    return texts


def all_text(message: outbound.SlackMessage) -> str:
    return "\n".join([message.text, *section_texts(message)])


def test_block_code_output_and_language_reach_slack_escaped() -> None:
    result = RunResult(
        exit_code=0, signal=None, stdout=SLACK_ATTACK, stderr=SLACK_ATTACK, duration_ms=3
    )
    message = outbound.block_message(
        index=1, total=1, language="<!here>", code=f"print({SLACK_ATTACK!r})", result=result
    )
    assert all(only_entities(text) for text in section_texts(message))
    shown = all_text(message)
    assert shown.count(ESCAPED) == 3 and "`&lt;!here&gt;`" in shown
    assert "```\n" in shown  # our own fences stay fences


@given(st.text(alphabet=st.sampled_from("<>&x\n"), min_size=1500, max_size=6000))
def test_long_hostile_output_is_previewed_within_limits_with_whole_entities(stdout: str) -> None:
    result = RunResult(exit_code=0, signal=None, stdout=stdout, stderr="", duration_ms=3)
    message = outbound.block_message(index=1, total=1, language="bash", code="x", result=result)
    for text in section_texts(message):
        assert len(text) <= outbound.SECTION_LIMIT and only_entities(text)
    fenced = section_texts(message)[-1]
    assert fenced.startswith("```\n") and fenced.endswith("\n```")
    if message.uploads:
        assert message.uploads[0].content == stdout  # the file is the raw output


def test_a_preview_counts_the_characters_it_leaves_out_as_written() -> None:
    shown = outbound.preview(outbound.escape("<" * 3000), limit=1500)
    head, note, tail = shown.split("\n")
    assert note == f"… {3000 - (len(head) + len(tail)) // 4:,} characters not shown …"


@given(slacky.map(lambda s: s * 20))
def test_answers_are_escaped_cut_within_limits_and_lose_nothing_but_line_breaks(text: str) -> None:
    messages = outbound.answer_messages(text)
    sections = [s for m in messages for s in section_texts(m)]
    assert all(0 < len(s) <= outbound.SECTION_LIMIT and only_entities(s) for s in sections)
    assert all(only_entities(m.text) and len(m.text) <= 300 for m in messages)
    if text.strip():
        assert as_slack_shows("".join(sections)).replace("\n", "") == text.replace("\n", "")


def test_a_model_answer_pinging_the_channel_is_escaped() -> None:
    (message,) = outbound.answer_messages(f"Done. {SLACK_ATTACK}")
    assert all_text(message).count(f"Done. {ESCAPED}") == 2  # the fallback text and the section


def test_a_stop_detail_from_a_server_is_escaped() -> None:
    sentence = outbound.stopped_sentence(reason="<!channel>", detail=f"crashed: {SLACK_ATTACK}")
    assert only_entities(sentence) and ESCAPED in sentence
