"""Who may use the bot where: one pure decision for every surface.

Each platform has its own allowlists (``[slack]``, ``[discord]`` in opsloop.toml); an empty
list allows everyone. The workspace (Slack team, Discord server) is checked first, then the
channel, then the user. A conversation outside any workspace (a Discord DM) is checked
against the user list only: a DM is nobody's channel. Surfaces without a policy (the
terminal, ``opsloop ask``) are the local user's own.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import AccessPolicy
from bot.policy.roles import RolesTable, listed
from bot.surface import Coordinates

_WORKSPACE_NOUN = {"slack": "workspace", "discord": "server"}


def refusal(
    policies: Mapping[str, AccessPolicy],
    *,
    coordinates: Coordinates,
    author: str,
    roles: RolesTable | None = None,
) -> str | None:
    """Why ``author`` may not use the bot at ``coordinates``, or None when they may.

    ``allow_users`` may name roles of ``roles`` (``[roles]``) as well as users."""
    platform = coordinates.platform
    policy = policies.get(platform)
    if policy is None:
        return None
    where = f"[{platform}]"
    if coordinates.workspace:
        if policy.allow_workspaces and coordinates.workspace not in policy.allow_workspaces:
            noun = _WORKSPACE_NOUN.get(platform, "workspace")
            return f"{noun} {coordinates.workspace} is not in {where} allow_workspaces"
        if policy.allow_channels and coordinates.channel not in policy.allow_channels:
            return f"channel {coordinates.channel} is not in {where} allow_channels"
    if policy.allow_users and not listed(
        policy.allow_users, roles or {}, platform=platform, user=author
    ):
        return f"user {author} is not in {where} allow_users"
    return None
