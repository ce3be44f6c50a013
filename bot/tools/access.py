"""Who may call a tool: ``allow_users``, ``allow_roles``, ``allow_channels`` and ``approve``.

Pure. An entry of ``allow_users`` or ``allow_channels`` is a platform id (``"U012AB"``, any
platform) or a qualified one (``"slack:U012AB"``). Users and roles together form one list:
when either is set, the caller must be in it. An empty list allows everyone on the surface.
A tool with ``approve = "always"`` is refused to a block that was not approved for it
(issue 12 decides approvals; the registry only enforces them). For an MCP tool, approving the
server (``"docs"``) approves all its tools, and ``"docs.search"`` approves one.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.tools.config import ToolDecl
from bot.tools.values import Caller


def refusal(name: str, decl: ToolDecl, caller: Caller, *, approval: bool = True) -> str | None:
    """Why ``caller`` may not call the tool ``name``, or None (``approval``: check it too).

    The operator at the host console (``opsloop tools call``) is refused nothing: the lists
    say who in chat may call what, and the operator can run these commands anyway.
    """
    if caller.operator:
        return None
    if decl.allow_users or decl.allow_roles:
        listed = _listed(decl.allow_users, caller.platform, caller.user)
        if not listed and not caller.roles & set(decl.allow_roles):
            return f"{name} is not allowed for user {caller.platform}:{caller.user}"
    if decl.allow_channels and not _listed(decl.allow_channels, caller.platform, caller.channel):
        where = f"in {caller.platform}:{caller.channel}" if caller.channel else "outside a channel"
        return f"{name} is not allowed {where}"
    if (
        approval
        and decl.approve == "always"
        and not {name, name.partition(".")[0]} & caller.approved
    ):
        return f"{name} needs approval, and this block was not approved to call it"
    return None


def _listed(entries: Sequence[str], platform: str, value: str) -> bool:
    return bool(value) and (value in entries or f"{platform}:{value}" in entries)
