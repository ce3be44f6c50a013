"""The replay numbers every event (the number ``audit verify`` names) and shows time zones."""

from __future__ import annotations

from bot.app.application import ConversationApp
from bot.audit.replay import render, when_of
from bot.surface import Coordinates

HERE = Coordinates("slack", "T1", "C1", "1.1")


def test_each_text_line_starts_with_the_event_number_verify_names(
    memory_app: ConversationApp,
) -> None:
    cid, _ = memory_app.receive_message(
        coordinates=HERE, message_key="m", author="alice", text="hi"
    )
    memory_app.answer(cid, text="hello")
    heads = [line for line in render(memory_app.timeline(cid), fmt="text") if line[:1] == "#"]
    assert [h.split()[0] for h in heads] == ["#1", "#2", "#3"]
    assert all(" UTC  " in h for h in heads)
    markdown = "\n".join(render(memory_app.timeline(cid), fmt="markdown"))
    assert "**alice** (#2, " in markdown and " UTC):" in markdown


def test_times_show_their_zone() -> None:
    assert when_of("2026-11-30T10:00:00.123456+00:00") == "2026-11-30 10:00:00.123 UTC"
    assert when_of("2026-11-30T11:00:00+01:00", millis=False) == "2026-11-30 11:00:00 UTC+0100"
    assert when_of("2026-11-30T10:00:00") == "2026-11-30 10:00:00.000 (no zone)"
