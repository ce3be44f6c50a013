"""``[roles]`` and ``[approvals]``: who holds a role, where overrides apply, who may decide,
and the start-up errors of a policy that names a role nobody defined."""

from __future__ import annotations

import pytest

from bot.config import AccessPolicy, Policy, load_policy
from bot.errors import ConfigError
from bot.policy.access import refusal
from bot.policy.approvals import ANYONE_ALLOWED, ApprovalPolicy
from bot.policy.roles import listed, roles_of
from bot.surface import Coordinates
from bot.tools.access import refusal as tool_refusal
from bot.tools.config import ToolDecl
from bot.tools.values import Caller

ROLES = {"oncall": ("slack:U0ONCALL", "discord:4242"), "dba": ("slack:U0DBA",)}
PROD = Coordinates("slack", "T1", "CPROD", "1.0")
DEV = Coordinates("slack", "T1", "CDEV", "1.0")


def policy(**approvals: object) -> ApprovalPolicy:
    return ApprovalPolicy.from_policy(
        Policy.model_validate(
            {"roles": {k: list(v) for k, v in ROLES.items()}, "approvals": approvals}
        )
    )


def test_a_role_names_people_across_platforms() -> None:
    assert roles_of(ROLES, platform="discord", user="4242") == {"oncall"}
    assert roles_of(ROLES, platform="slack", user="4242") == frozenset()
    assert listed(["role:oncall"], ROLES, platform="slack", user="U0ONCALL")
    assert listed(["oncall"], ROLES, platform="discord", user="4242")
    assert not listed(["role:dba"], ROLES, platform="slack", user="U0ONCALL")
    assert not listed(["role:oncall"], ROLES, platform="slack", user="")


def test_a_role_may_stand_in_an_allow_users_list() -> None:
    access = {"slack": AccessPolicy(allow_users=["role:oncall"])}
    assert refusal(access, coordinates=PROD, author="U0ONCALL", roles=ROLES) is None
    assert refusal(access, coordinates=PROD, author="U0DBA", roles=ROLES) is not None


def test_a_tool_s_allow_users_takes_roles_too() -> None:
    decl = ToolDecl.model_validate({"kind": "command", "argv": ["true"], "allow_users": ["oncall"]})
    oncall = Caller("slack", "U0ONCALL", "C1", roles=frozenset({"oncall"}))
    assert tool_refusal("t", decl, oncall) is None
    assert tool_refusal("t", decl, Caller("slack", "U0DBA", "C1")) is not None


def test_the_most_specific_override_wins_key_by_key() -> None:
    rules = policy(
        blocks="never",
        approvers=["role:dba"],
        channels={
            "slack": {"blocks": "with_tools"},
            "CPROD": {"approvers": ["role:oncall"]},
            "slack:CPROD": {"blocks": "always"},
        },
    )
    assert rules.rules_for(PROD).blocks == "always"
    assert rules.approvers_for(PROD) == ("role:oncall",)
    assert rules.rules_for(DEV).blocks == "with_tools"
    assert rules.approvers_for(DEV) == ("role:dba",)
    assert rules.rules_for(Coordinates("terminal", "h", "me", "chat")).blocks == "never"


def test_approvers_decide_and_nobody_else_when_approvers_are_named() -> None:
    rules = policy(approvers=["role:oncall", "U0BOSS"])
    assert rules.approver_refusal(PROD, "U0ONCALL") is None
    assert rules.approver_refusal(PROD, "U0BOSS") is None
    assert rules.approver_refusal(PROD, "U0DBA") == "U0DBA is not an approver here"


def test_without_approvers_the_channel_s_users_decide() -> None:
    rules = ApprovalPolicy.from_policy(Policy.model_validate({"slack": {"allow_users": ["U1"]}}))
    assert rules.approvers_for(PROD) == (ANYONE_ALLOWED,)
    assert rules.approver_refusal(PROD, "U1") is None
    assert "not in [slack] allow_users" in (rules.approver_refusal(PROD, "U2") or "")


def test_tools_declared_approve_always_are_approval_only() -> None:
    rules = ApprovalPolicy.from_policy(
        Policy.model_validate(
            {
                "tools": {
                    "restart": {"kind": "command", "argv": ["true"], "approve": "always"},
                    "disk": {"kind": "command", "argv": ["df"]},
                }
            }
        )
    )
    assert rules.rules_for(PROD).approval_tools == {"restart"}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[roles]\noncall = ["U012"]', "roles.oncall: 'U012': write members as platform:id"),
        (
            '[approvals]\napprovers = ["role:oncal"]',
            "approvals.approvers: 'role:oncal': no such role",
        ),
        ('[slack]\nallow_users = ["role:x"]', "slack.allow_users: 'role:x': no such role"),
        (
            '[tools.t]\nkind = "command"\nargv = ["true"]\nallow_roles = ["ghost"]',
            "tools.t.allow_roles: 'ghost': no such role",
        ),
        ('[approvals]\nblocks = "sometimes"', "approvals.blocks"),
    ],
)
def test_a_policy_naming_a_role_nobody_defined_fails_at_start_up_in_one_line(
    tmp_path, toml: str, message: str
) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)
