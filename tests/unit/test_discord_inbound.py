"""Deciding what a Discord message means: a question, a command, a refusal, or nothing."""

from __future__ import annotations

from dataclasses import replace

from adapters.discord.inbound import (
    Ask,
    Command,
    Ignore,
    MessageFacts,
    Refuse,
    command_name,
    decide,
)
from bot.config import AccessPolicy
from bot.surface import Coordinates

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
OPEN = AccessPolicy()
MENTIONS_ON = AccessPolicy(mention_guilds=["7"])


def test_a_dm_is_a_question_in_the_conversation_of_that_dm_channel() -> None:
    decision = decide(DM, me=ME, access=OPEN)
    assert isinstance(decision, Ask)
    assert decision.incoming.coordinates == Coordinates("discord", "", "500", "500")
    assert decision.incoming.message_key == "111"
    assert decision.incoming.author == "42"
    assert decision.incoming.text == "why is ci-3 full?"
    assert decision.start_thread is False


def test_the_commands_are_recognised_in_a_dm_with_or_without_a_slash() -> None:
    cases = [("stop", "stop"), (" COST ", "cost"), ("/replay", "replay"), ("!new", "new")]
    for text, name in cases:
        decision = decide(replace(DM, content=text), me=ME, access=OPEN)
        assert isinstance(decision, Command)
        assert decision.name == name
        assert decision.coordinates == Coordinates("discord", "", "500", "500")


def test_a_sentence_that_contains_a_command_word_is_a_question() -> None:
    assert command_name("please stop the disk filling up") is None
    assert isinstance(decide(replace(DM, content="new disk?"), me=ME, access=OPEN), Ask)


def test_messages_of_bots_and_of_opsloop_itself_are_ignored() -> None:
    assert isinstance(decide(replace(DM, author_is_bot=True), me=ME, access=OPEN), Ignore)
    assert isinstance(decide(replace(DM, author_id=ME), me=ME, access=OPEN), Ignore)


def test_system_messages_and_empty_dms_are_ignored() -> None:
    assert isinstance(decide(replace(DM, is_system=True), me=ME, access=OPEN), Ignore)
    assert isinstance(decide(replace(DM, content="   "), me=ME, access=OPEN), Ignore)


def test_server_mentions_are_off_by_default() -> None:
    decision = decide(MENTION, me=ME, access=OPEN)
    assert isinstance(decision, Ignore)
    assert "mention_guilds" in decision.reason


def test_an_enabled_server_mention_asks_for_a_thread_keyed_by_the_mentioning_message() -> None:
    decision = decide(MENTION, me=ME, access=MENTIONS_ON)
    assert isinstance(decision, Ask)
    assert decision.start_thread is True
    assert decision.incoming.text == "disk full?"
    assert decision.incoming.coordinates == Coordinates("discord", "7", "600", "111")


def test_a_mention_inside_that_thread_continues_the_same_conversation() -> None:
    # A thread started on message 111 has id 111; its parent is the channel 600.
    follow_up = replace(
        MENTION, message_id="222", channel_id="111", parent_id="600", content=f"<@!{ME}> and ci-4?"
    )
    decision = decide(follow_up, me=ME, access=MENTIONS_ON)
    assert isinstance(decision, Ask)
    assert decision.start_thread is False
    assert decision.incoming.text == "and ci-4?"
    assert decision.incoming.coordinates == Coordinates("discord", "7", "600", "111")


def test_a_command_in_a_server_channel_outside_any_thread_is_ignored() -> None:
    decision = decide(replace(MENTION, content=f"<@{ME}> new"), me=ME, access=MENTIONS_ON)
    assert isinstance(decision, Ignore)
    assert "outside any conversation" in decision.reason


def test_a_command_inside_the_thread_applies_to_its_conversation() -> None:
    in_thread = replace(
        MENTION, message_id="222", channel_id="111", parent_id="600", content=f"<@{ME}> stop"
    )
    decision = decide(in_thread, me=ME, access=MENTIONS_ON)
    assert isinstance(decision, Command)
    assert decision.name == "stop"
    assert decision.coordinates == Coordinates("discord", "7", "600", "111")


def test_a_server_message_without_a_mention_is_ignored_even_where_mentions_are_on() -> None:
    unmentioned = replace(MENTION, mentions_me=False)
    assert isinstance(decide(unmentioned, me=ME, access=MENTIONS_ON), Ignore)


def test_a_user_outside_allow_users_is_refused_with_the_message_kept_for_the_record() -> None:
    decision = decide(DM, me=ME, access=AccessPolicy(allow_users=["1"]))
    assert isinstance(decision, Refuse)
    assert "allow_users" in decision.reason
    assert decision.incoming.message_key == "111"


def test_a_refused_user_cannot_use_commands_either() -> None:
    decision = decide(replace(DM, content="cost"), me=ME, access=AccessPolicy(allow_users=["1"]))
    assert isinstance(decision, Refuse)


def test_a_server_outside_allow_workspaces_is_refused() -> None:
    access = AccessPolicy(mention_guilds=["7"], allow_workspaces=["8"])
    decision = decide(MENTION, me=ME, access=access)
    assert isinstance(decision, Refuse)
    assert "allow_workspaces" in decision.reason


def test_allow_channels_applies_to_the_thread_parent_channel() -> None:
    access = AccessPolicy(mention_guilds=["7"], allow_channels=["600"])
    in_thread = replace(MENTION, channel_id="111", parent_id="600")
    assert isinstance(decide(in_thread, me=ME, access=access), Ask)
    assert isinstance(decide(replace(MENTION, channel_id="601"), me=ME, access=access), Refuse)


def test_allowlisted_users_in_dms_are_not_subject_to_server_lists() -> None:
    access = AccessPolicy(allow_users=["42"], allow_workspaces=["8"], allow_channels=["1"])
    assert isinstance(decide(DM, me=ME, access=access), Ask)
