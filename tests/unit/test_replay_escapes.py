"""``opsloop replay`` shows what was recorded as data: no field can drive the auditor's terminal,
forge a line of the timeline, or escape its markdown fence."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bot.app.application import ConversationApp, open_app
from bot.audit.replay import render
from bot.visible import visible
from tests.hostile import ATTACK, SHOWN, record_hostile_conversation

RAW = ("\x1b", "\x9b", "\u202e", "\x07", "\r")


@pytest.fixture
def app() -> Iterator[ConversationApp]:
    application = open_app(database_url="memory:")
    yield application
    application.close()


def replay(app: ConversationApp, fmt: str) -> str:
    return "\n".join(render(app.timeline(record_hostile_conversation(app)), fmt=fmt))


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_no_control_character_of_any_field_reaches_the_replay(
    app: ConversationApp, fmt: str
) -> None:
    shown = replay(app, fmt)
    for raw in RAW:
        assert raw not in shown, f"{raw!r} in the {fmt} replay"


def test_the_text_replay_shows_every_hostile_field_visibly(app: ConversationApp) -> None:
    shown = replay(app, "text")
    for field in ("started by alice", "on slack T", "/C", "    why? ", "HTTP 503 ", "It says "):
        assert f"{field}{SHOWN}" in shown, field
    assert f"alice{SHOWN} said:" in shown
    assert f'print("{SHOWN}")' in shown  # the code
    assert f"      {SHOWN}" in shown  # stdout and stderr, indented
    assert "    ␛[1A␛[2K␍all fine" in shown  # a CR cannot overwrite the line it is on


def test_a_newline_in_a_one_line_field_cannot_forge_a_timeline_line() -> None:
    forged = "boom\n2026-11-30 10:00:00.000  answer:\n    all fine"
    item = {
        "type": "ModelFailed",
        "timestamp": "2026-11-30T10:00:00.000000+00:00",
        "provider": "groq",
        "model": "m",
        "attempts": 1,
        "error": forged,
    }
    (line,) = render([item], fmt="text")
    assert line.endswith("boom␊2026-11-30 10:00:00.000  answer:␊    all fine")


def test_the_json_replay_keeps_exact_values_with_escapes_instead_of_raw_characters(
    app: ConversationApp,
) -> None:
    lines = replay(app, "json").splitlines()
    answer = json.loads(lines[-1])
    assert answer["type"] == "Answered" and answer["text"].startswith(f"It says {ATTACK}")
    assert "\\u009b2J\\u202egnp.exe" in lines[-1]


def fences(markdown: str) -> list[tuple[str, str]]:
    """(info string, content) of each fenced code block a CommonMark parser finds."""
    return [(t.info, t.content) for t in MarkdownIt().parse(markdown) if t.type == "fence"]


def test_markdown_fences_hold_code_and_output_whatever_they_contain(app: ConversationApp) -> None:
    found = fences(replay(app, "markdown"))
    assert len(found) == 5  # model turn 1, the block's code, stdout, stderr, model turn 2
    _, code, stdout, stderr, _ = found
    assert code == ("", f'print("{SHOWN}")\n')  # a language with backticks is no info string
    assert stdout == ("", f"{SHOWN}\n```\nnot code any more\n")
    assert stderr == ("", f"{SHOWN}\n")


def test_the_markdown_answer_is_quoted_so_it_cannot_swallow_later_events() -> None:
    items = [
        {"type": "Answered", "timestamp": "2026-11-30T10:00:00", "text": "fine\n```\n<!--"},
        {"type": "Stopped", "timestamp": "2026-11-30T10:00:01", "reason": "cancelled"},
    ]
    tokens = MarkdownIt().parse("\n".join(render(items, fmt="markdown")))
    after = [t for t in tokens if t.type == "inline" and "Stopped" in t.content]
    assert after and all(t.level == 1 for t in after)  # a paragraph of its own, not quoted


@given(st.text(max_size=60))
def test_a_markdown_fence_holds_any_block_output_exactly_as_shown(stdout: str) -> None:
    item = {
        "type": "BlockFinished",
        "timestamp": "2026-11-30T10:00:00",
        "block_id": "t1b1",
        "exit_code": 0,
        "duration_ms": 1,
        "stdout": stdout,
    }
    found = fences("\n".join(render([item], fmt="markdown")))
    if not stdout:
        assert found == []
        return
    lines = visible(stdout).removesuffix("\n").split("\n")
    assert found == [("", "".join(f"{line}\n" for line in lines))]
