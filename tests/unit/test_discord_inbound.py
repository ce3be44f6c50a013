"""Deciding what a Discord message means: a question, a command, or nothing."""

from __future__ import annotations

from dataclasses import replace

from adapters.discord.inbound import Ask, ClickFacts, Ignore, MessageFacts, click_decision, decide
from bot.surface import Command, Coordinates, parse_command
from bot.surface import Decision as ApprovalDecision

ME = "900"
DM = MessageFacts(
    message_id="111",
    author_id="42",
    author_is_bot=False,
    content="why is ci-3 full?",
    guild_id=None,
    channel_id="500",
    parent_id=None,
    mentions_me=False,
)
MENTION = replace(
    DM, guild_id="7", channel_id="600", content=f"<@{ME}> disk full?", mentions_me=True
)
OPEN: tuple[str, ...] = ()
MENTIONS_ON = ("7",)


def test_a_dm_is_a_question_in_the_conversation_of_that_dm_channel() -> None:
    decision = decide(DM, me=ME, mention_guilds=OPEN)
    assert isinstance(decision, Ask)
    assert decision.incoming.coordinates == Coordinates("discord", "", "500", "500")
    assert decision.incoming.message_key == "111"
    assert decision.incoming.author == "42"
    assert decision.incoming.text == "why is ci-3 full?"
    assert decision.start_thread is False


def test_the_commands_are_recognised_in_a_dm_with_or_without_a_slash() -> None:
    cases = [("stop", "stop"), (" COST ", "cost"), ("/replay", "replay"), ("!new", "new")]
    for text, name in cases:
        decision = decide(replace(DM, content=text), me=ME, mention_guilds=OPEN)
        assert isinstance(decision, Command)
        assert decision.name == name
        assert decision.incoming.coordinates == Coordinates("discord", "", "500", "500")


def test_a_sentence_that_contains_a_command_word_is_a_question() -> None:
    assert parse_command("please stop the disk filling up") is None
    assert isinstance(decide(replace(DM, content="new disk?"), me=ME, mention_guilds=OPEN), Ask)


def test_messages_of_bots_and_of_opsloop_itself_are_ignored() -> None:
    assert isinstance(decide(replace(DM, author_is_bot=True), me=ME, mention_guilds=OPEN), Ignore)
    assert isinstance(decide(replace(DM, author_id=ME), me=ME, mention_guilds=OPEN), Ignore)


def test_system_messages_and_empty_dms_are_ignored() -> None:
    assert isinstance(decide(replace(DM, is_system=True), me=ME, mention_guilds=OPEN), Ignore)
    assert isinstance(decide(replace(DM, content="   "), me=ME, mention_guilds=OPEN), Ignore)


def test_server_mentions_are_off_by_default() -> None:
    decision = decide(MENTION, me=ME, mention_guilds=OPEN)
    assert isinstance(decision, Ignore)
    assert "mention_guilds" in decision.reason


def test_an_enabled_server_mention_asks_for_a_thread_keyed_by_the_mentioning_message() -> None:
    decision = decide(MENTION, me=ME, mention_guilds=MENTIONS_ON)
    assert isinstance(decision, Ask)
    assert decision.start_thread is True
    assert decision.incoming.text == "disk full?"
    assert decision.incoming.coordinates == Coordinates("discord", "7", "600", "111")


def test_a_mention_inside_that_thread_continues_the_same_conversation() -> None:
    # A thread started on message 111 has id 111; its parent is the channel 600.
    follow_up = replace(
        MENTION, message_id="222", channel_id="111", parent_id="600", content=f"<@!{ME}> and ci-4?"
    )
    decision = decide(follow_up, me=ME, mention_guilds=MENTIONS_ON)
    assert isinstance(decision, Ask)
    assert decision.start_thread is False
    assert decision.incoming.text == "and ci-4?"
    assert decision.incoming.coordinates == Coordinates("discord", "7", "600", "111")


def test_a_command_in_a_server_channel_outside_any_thread_is_ignored() -> None:
    decision = decide(replace(MENTION, content=f"<@{ME}> new"), me=ME, mention_guilds=MENTIONS_ON)
    assert isinstance(decision, Ignore)
    assert "outside any conversation" in decision.reason


def test_a_command_inside_the_thread_applies_to_its_conversation() -> None:
    in_thread = replace(
        MENTION, message_id="222", channel_id="111", parent_id="600", content=f"<@{ME}> stop"
    )
    decision = decide(in_thread, me=ME, mention_guilds=MENTIONS_ON)
    assert isinstance(decision, Command)
    assert decision.name == "stop"
    assert decision.incoming.coordinates == Coordinates("discord", "7", "600", "111")


def test_a_server_message_without_a_mention_is_ignored_even_where_mentions_are_on() -> None:
    unmentioned = replace(MENTION, mentions_me=False)
    assert isinstance(decide(unmentioned, me=ME, mention_guilds=MENTIONS_ON), Ignore)


CLICK = ClickFacts(
    custom_id="opsloop_approve:r1", user_id="42", guild_id=None, channel_id="500", parent_id=None
)


def test_a_click_in_a_dm_decides_in_the_conversation_of_that_dm_as_the_message_path_keys_it() -> (
    None
):
    decision = click_decision(CLICK)
    asked = decide(DM, me=ME, mention_guilds=OPEN)
    assert isinstance(asked, Ask)
    assert decision == ApprovalDecision(
        coordinates=asked.incoming.coordinates, by="42", approve=True, request_id="r1"
    )


def test_a_click_in_a_server_thread_decides_in_that_threads_conversation() -> None:
    in_thread = replace(
        CLICK, custom_id="opsloop_deny:r1", guild_id="7", channel_id="111", parent_id="600"
    )
    decision = click_decision(in_thread)
    asked = decide(MENTION, me=ME, mention_guilds=MENTIONS_ON)  # the thread took its id, 111
    assert isinstance(asked, Ask) and isinstance(decision, ApprovalDecision)
    assert (
        decision.coordinates
        == asked.incoming.coordinates
        == Coordinates("discord", "7", "600", "111")
    )
    assert decision.approve is False and decision.request_id == "r1"


def test_other_components_and_clicks_without_a_request_or_a_user_are_ignored() -> None:
    for facts in (
        replace(CLICK, custom_id="someone_elses_button"),
        replace(CLICK, custom_id="opsloop_approve:"),
        replace(CLICK, user_id=""),
    ):
        assert isinstance(click_decision(facts), Ignore)


def test_a_slash_command_acts_on_the_dm_or_the_thread_it_is_used_in_never_a_bare_channel() -> None:
    from adapters.discord.slash import Where, conversation_at

    assert conversation_at(Where(None, "D1", None)) == Coordinates("discord", "", "D1", "D1")
    assert conversation_at(Where("G1", "T1", "C1")) == Coordinates("discord", "G1", "C1", "T1")
    assert conversation_at(Where("G1", "C1", None)) is None
