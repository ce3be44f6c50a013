"""Slack events in: which events become messages or commands, and which are ignored."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.slack.inbound import (
    Click,
    Ignored,
    Inbound,
    click_from_action,
    inbound_from_event,
    strip_mentions,
)
from bot.surface import Coordinates, Decision

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


def block_actions(**overrides: Any) -> dict[str, Any]:
    """A ``block_actions`` payload as Slack sends it for a click on an approval button."""
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0ONCALL", "username": "oncall", "team_id": "T1"},
        "team": {"id": "T1", "domain": "ops"},
        "container": {
            "type": "message",
            "message_ts": "10.9",
            "channel_id": "C1",
            "is_ephemeral": False,
            "thread_ts": "10.1",
        },
        "channel": {"id": "C1", "name": "ops"},
        "message": {
            "type": "message",
            "user": BOT,
            "ts": "10.9",
            "thread_ts": "10.1",
            "text": "Block 1/1 needs approval before it runs",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "code"}}],
        },
        "actions": [
            {"action_id": "opsloop_approve", "block_id": "approval-r1", "value": "r1"},
        ],
    }
    body.update(overrides)
    return body


def test_a_click_decides_in_the_thread_of_the_clicked_message_as_the_message_path_keys_it() -> None:
    click = click_from_action(block_actions())
    assert isinstance(click, Click)
    mentioned = translate("mention", text=f"<@{BOT}> disk?", ts="10.1")
    assert isinstance(mentioned, Inbound)
    assert click.decision.coordinates == mentioned.coordinates  # the same conversation
    assert click.decision == Decision(
        coordinates=Coordinates("slack", "T1", "C1", "10.1"),
        by="U0ONCALL",
        approve=True,
        request_id="r1",
    )
    assert (click.channel, click.thread_ts, click.message_ts) == ("C1", "10.1", "10.9")
    assert click.blocks[0]["text"]["text"] == "code"  # kept to update the message in place


def test_deny_is_a_decision_against_and_the_team_falls_back_to_the_users_then_the_context() -> None:
    deny = [{"action_id": "opsloop_deny", "value": "r1"}]
    from_user = click_from_action(block_actions(actions=deny, team=None))
    from_context = click_from_action(
        block_actions(actions=deny, team=None, user={"id": "U0X"}), team_id="T9"
    )
    assert isinstance(from_user, Click) and isinstance(from_context, Click)
    assert from_user.decision.approve is False and from_user.decision.coordinates.workspace == "T1"
    assert from_context.decision.coordinates.workspace == "T9"


def test_a_click_on_a_message_outside_a_thread_keys_that_message_as_its_thread() -> None:
    message = {"type": "message", "ts": "20.1", "text": "x"}
    click = click_from_action(block_actions(message=message, container={"message_ts": "20.1"}))
    assert isinstance(click, Click) and click.decision.coordinates.thread == "20.1"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"actions": [{"action_id": "something_else", "value": "r1"}]}, "not an approval"),
        ({"actions": [{"action_id": "opsloop_approve", "value": ""}]}, "without a user"),
        ({"user": {}}, "without a user"),
        ({"channel": None, "container": {"message_ts": "10.9"}}, "without a user"),
        ({"container": {"message_ts": "10.9", "channel_id": "C1", "is_ephemeral": True}}, "ephem"),
    ],
)
def test_clicks_that_are_not_approval_decisions_are_ignored_with_a_reason(
    overrides: dict[str, Any], why: str
) -> None:
    ignored = click_from_action(block_actions(**overrides))
    assert isinstance(ignored, Ignored) and why in ignored.reason
