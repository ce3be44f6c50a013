"""``[approvals]`` and ``[roles]`` as one decision: when a block needs a yes, and whose.

Pure, built once from the policy. For a conversation's coordinates it gives the approval
rules (``domain.approvals.ApprovalRules``: the mode, the tools declared ``approve =
"always"``, the timeout), the approvers to name in ``ApprovalRequested``, and whether a
person may decide. The most specific ``[approvals.channels]`` entry wins, key by key:
``"slack:C01"``, then ``"C01"``, then ``"slack"``, then ``[approvals]`` itself. With no
``approvers``, anyone allowed to use the bot in that channel may approve
(``bot.policy.access``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.config import AccessPolicy, ApprovalOverride, ApprovalsPolicy, Policy
from bot.policy.access import refusal
from bot.policy.roles import RolesTable, listed, roles_of
from bot.surface import Coordinates
from domain.approvals import ApprovalRules

ANYONE_ALLOWED = "anyone allowed here"  # requested_from when no approvers are configured


@dataclass(frozen=True)
class ApprovalPolicy:
    """Approval rules, approvers and roles for every conversation (default: never ask)."""

    approvals: ApprovalsPolicy = field(default_factory=ApprovalsPolicy)
    roles: RolesTable = field(default_factory=dict)
    access: Mapping[str, AccessPolicy] = field(default_factory=dict)
    approval_tools: frozenset[str] = frozenset()  # tools declared approve = "always"

    @classmethod
    def from_policy(cls, policy: Policy) -> ApprovalPolicy:
        """The approval side of ``opsloop.toml``."""
        tools = frozenset(n for n, d in policy.tools.declared.items() if d.approve == "always")
        return cls(
            approvals=policy.approvals,
            roles={name: tuple(members) for name, members in policy.roles.items()},
            access={"slack": policy.slack, "discord": policy.discord},
            approval_tools=tools,
        )

    def rules_for(self, coordinates: Coordinates) -> ApprovalRules:
        """When blocks at these coordinates need approval, and how long a request waits."""
        blocks = next(
            (o.blocks for o in self._overrides(coordinates) if o.blocks is not None),
            self.approvals.blocks,
        )
        return ApprovalRules(
            blocks=blocks,
            approval_tools=self.approval_tools,
            timeout_seconds=self.approvals.timeout_minutes * 60,
        )

    def approvers_for(self, coordinates: Coordinates) -> tuple[str, ...]:
        """Who may decide here, as configured (``ANYONE_ALLOWED`` when nobody is named)."""
        named = self._approvers(coordinates)
        return tuple(named) if named else (ANYONE_ALLOWED,)

    def approver_refusal(self, coordinates: Coordinates, user: str) -> str | None:
        """Why ``user`` may not decide an approval at ``coordinates``, or None when they may."""
        named = self._approvers(coordinates)
        if named:
            if listed(named, self.roles, platform=coordinates.platform, user=user):
                return None
            return f"{user} is not an approver here"
        why = refusal(self.access, coordinates=coordinates, author=user, roles=self.roles)
        return None if why is None else f"{user} is not an approver here ({why})"

    def roles_of(self, platform: str, user: str) -> frozenset[str]:
        """The roles a person holds."""
        return roles_of(self.roles, platform=platform, user=user)

    def _approvers(self, coordinates: Coordinates) -> list[str]:
        return next(
            (o.approvers for o in self._overrides(coordinates) if o.approvers is not None),
            self.approvals.approvers,
        )

    def _overrides(self, coordinates: Coordinates) -> list[ApprovalOverride]:
        """The overrides that apply here, most specific first (each key set falls through)."""
        channels = self.approvals.channels
        platform, channel = coordinates.platform, coordinates.channel
        keys = (f"{platform}:{channel}", channel, platform)
        return [channels[key] for key in keys if key and key in channels]
