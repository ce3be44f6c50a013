"""Who may call a tool: users, roles, channels and approval."""

from __future__ import annotations

from typing import Any

from bot.tools.access import refusal
from bot.tools.config import ToolDecl
from bot.tools.values import Caller

ALICE = Caller(platform="slack", user="U1", channel="C1")


def tool(**keys: Any) -> ToolDecl:
    return ToolDecl(kind="command", argv=["df"], **keys)


def test_empty_lists_allow_everyone_on_the_surface() -> None:
    assert refusal("disk", tool(), ALICE) is None
    assert refusal("disk", tool(), Caller(platform="discord", user="42")) is None


def test_a_user_may_be_listed_bare_or_with_the_platform() -> None:
    assert refusal("disk", tool(allow_users=["U1"]), ALICE) is None
    assert refusal("disk", tool(allow_users=["slack:U1"]), ALICE) is None
    assert refusal("disk", tool(allow_users=["discord:U1"]), ALICE) == (
        "disk is not allowed for user slack:U1"
    )


def test_a_role_allows_its_members_even_when_users_are_listed() -> None:
    decl = tool(allow_users=["U9"], allow_roles=["oncall"])
    assert refusal("disk", decl, ALICE) is not None
    assert refusal("disk", decl, Caller("slack", "U1", "C1", roles=frozenset({"oncall"}))) is None


def test_roles_without_a_roles_section_allow_nobody() -> None:
    assert refusal("disk", tool(allow_roles=["oncall"]), ALICE) is not None


def test_channels_are_checked_too() -> None:
    assert refusal("disk", tool(allow_channels=["C2"]), ALICE) == "disk is not allowed in slack:C1"
    outside = Caller(platform="host", user="root")
    assert refusal("disk", tool(allow_channels=["C2"]), outside) == (
        "disk is not allowed outside a channel"
    )


def test_an_approval_only_tool_needs_a_block_approved_for_it() -> None:
    decl = ToolDecl(kind="mcp", command=["srv"], approve="always")
    assert refusal("docs.write", decl, ALICE) == (
        "docs.write needs approval, and this block was not approved to call it"
    )
    for approved in ("docs", "docs.write"):
        caller = Caller("slack", "U1", "C1", approved=frozenset({approved}))
        assert refusal("docs.write", decl, caller) is None
    assert refusal("docs.write", decl, ALICE, per_block=False) is None
