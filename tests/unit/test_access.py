"""Who may use the bot where: the one allowlist decision every surface's messages go through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.config import AccessPolicy
from bot.policy.access import refusal
from bot.surface import Coordinates

SLACK = Coordinates("slack", "T1", "C1", "1.1")
DISCORD_DM = Coordinates("discord", "", "500", "500")
DISCORD_THREAD = Coordinates("discord", "7", "600", "111")  # channel 600 is the thread's parent


def test_a_platform_without_a_policy_and_empty_lists_allow_everyone() -> None:
    assert refusal({}, coordinates=SLACK, author="U1") is None
    assert refusal({"slack": AccessPolicy()}, coordinates=SLACK, author="U1") is None
    terminal = Coordinates("terminal", "host", "me", "chat")
    assert (
        refusal({"slack": AccessPolicy(allow_users=["U9"])}, coordinates=terminal, author="me")
        is None
    )


def test_each_list_refuses_what_it_does_not_name_and_says_which_list() -> None:
    policy = {
        "slack": AccessPolicy(allow_users=["U1"], allow_channels=["C1"], allow_workspaces=["T1"])
    }
    assert refusal(policy, coordinates=SLACK, author="U1") is None
    assert (
        refusal(policy, coordinates=SLACK, author="U2") == "user U2 is not in [slack] allow_users"
    )
    other_channel = Coordinates("slack", "T1", "C2", "1.1")
    assert refusal(policy, coordinates=other_channel, author="U1") == (
        "channel C2 is not in [slack] allow_channels"
    )
    other_team = Coordinates("slack", "T2", "C1", "1.1")
    assert refusal(policy, coordinates=other_team, author="U1") == (
        "workspace T2 is not in [slack] allow_workspaces"
    )


def test_the_workspace_is_checked_before_the_channel_and_the_channel_before_the_user() -> None:
    policy = {
        "slack": AccessPolicy(allow_users=["U1"], allow_channels=["C1"], allow_workspaces=["T1"])
    }
    everything_wrong = Coordinates("slack", "T2", "C2", "1.1")
    assert "workspace T2" in (refusal(policy, coordinates=everything_wrong, author="U2") or "")
    assert "channel C2" in (
        refusal(policy, coordinates=Coordinates("slack", "T1", "C2", "1"), author="U2") or ""
    )


def test_a_discord_server_is_named_as_a_server() -> None:
    policy = {"discord": AccessPolicy(allow_workspaces=["8"])}
    assert refusal(policy, coordinates=DISCORD_THREAD, author="42") == (
        "server 7 is not in [discord] allow_workspaces"
    )


def test_allow_channels_applies_to_a_discord_threads_parent_channel() -> None:
    policy = {"discord": AccessPolicy(allow_channels=["600"])}
    assert refusal(policy, coordinates=DISCORD_THREAD, author="42") is None
    elsewhere = Coordinates("discord", "7", "601", "222")
    assert "channel 601" in (refusal(policy, coordinates=elsewhere, author="42") or "")


def test_a_dm_is_checked_against_the_user_list_only() -> None:
    policy = {
        "discord": AccessPolicy(allow_users=["42"], allow_workspaces=["8"], allow_channels=["1"])
    }
    assert refusal(policy, coordinates=DISCORD_DM, author="42") is None
    assert (
        refusal(policy, coordinates=DISCORD_DM, author="43")
        == "user 43 is not in [discord] allow_users"
    )


ids = st.text(alphabet="ABCDEFGHU0123456789", min_size=1, max_size=4)


@given(users=st.lists(ids, max_size=3), author=ids)
def test_an_author_is_refused_exactly_when_a_non_empty_user_list_does_not_name_them(
    users: list[str], author: str
) -> None:
    policy = {"slack": AccessPolicy(allow_users=users)}
    refused = refusal(policy, coordinates=SLACK, author=author) is not None
    assert refused == (bool(users) and author not in users)
