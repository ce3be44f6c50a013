"""Slack events in: which events become messages or commands, and which are ignored."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.inbound import (
    Ignored,
    Inbound,
    inbound_from_event,
    strip_mentions,
)
from bot.surface import Coordinates

BOT = "U0BOT"


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "message",
        "user": "U0ALICE",
        "channel": "C1",
        "ts": "10.1",
        "text": "hello",
        "channel_type": "channel",
    }
    base.update(fields)
    return base


def translate(kind: str = "message", **fields: Any) -> Inbound | Ignored:
    return inbound_from_event(event(**fields), kind=kind, team_id="T1", bot_user_id=BOT)  # type: ignore[arg-type]


def test_a_mention_starts_a_conversation_in_the_thread_of_the_mentioning_message() -> None:
    inbound = translate("mention", type="app_mention", text=f"<@{BOT}> why is disk full?")
    assert isinstance(inbound, Inbound)
    assert inbound.coordinates == Coordinates(
        platform="slack", workspace="T1", channel="C1", thread="10.1"
    )
    assert inbound.incoming.text == "why is disk full?"
    assert inbound.incoming.author == "U0ALICE"
    assert (inbound.thread_ts, inbound.message_ts) == ("10.1", "10.1")
    assert inbound.command is None and not inbound.needs_thread_check


def test_a_mention_inside_a_thread_belongs_to_that_thread() -> None:
    inbound = translate("mention", text=f"<@{BOT}> more", ts="10.5", thread_ts="10.1")
    assert isinstance(inbound, Inbound)
    assert inbound.coordinates.thread == "10.1" and inbound.message_ts == "10.5"


def test_the_message_key_is_the_messages_own_identity_so_both_event_kinds_agree() -> None:
    as_mention = translate("mention", text=f"<@{BOT}> x", ts="10.5", thread_ts="10.1")
    assert isinstance(as_mention, Inbound)
    assert as_mention.incoming.message_key == "C1/10.5"


def test_a_thread_reply_without_a_mention_is_taken_only_after_checking_the_bot_is_in_it() -> None:
    inbound = translate(text="and then?", ts="10.6", thread_ts="10.1")
    assert isinstance(inbound, Inbound) and inbound.needs_thread_check


def test_a_thread_reply_that_mentions_the_bot_is_left_to_its_app_mention_event() -> None:
    assert isinstance(translate(text=f"<@{BOT}> hi", thread_ts="10.1"), Ignored)


def test_a_direct_message_is_taken_without_a_mention() -> None:
    inbound = translate(channel="D1", channel_type="im", text="hi")
    assert isinstance(inbound, Inbound) and not inbound.needs_thread_check
    assert inbound.coordinates.channel == "D1"


@pytest.mark.parametrize(
    "fields",
    [
        {"text": "lunch?"},  # a top-level channel message without a mention
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "bot_message", "bot_id": "B9"},
        {"bot_id": "B9"},
        {"user": BOT, "channel_type": "im"},
        {"subtype": "channel_join", "channel_type": "im"},
        {"edited": {"user": "U0ALICE"}, "channel_type": "im"},
        {"text": "   ", "channel_type": "im"},
        {"user": None, "channel_type": "im"},
    ],
)
def test_edits_deletes_bots_our_own_and_unaddressed_messages_are_ignored(
    fields: dict[str, Any],
) -> None:
    assert isinstance(translate(**fields), Ignored)


def test_a_file_share_by_a_person_still_counts_as_a_message() -> None:
    assert isinstance(translate(channel_type="im", subtype="file_share"), Inbound)


def test_mentions_are_stripped_and_slack_escapes_undone() -> None:
    assert strip_mentions(f"<@{BOT}|opsloop> a &lt;b&gt; &amp; c", bot_user_id=BOT) == "a <b> & c"
    assert strip_mentions("<@U0OTHER> hi", bot_user_id=BOT) == "<@U0OTHER> hi"
