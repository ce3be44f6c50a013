"""Who may call a tool: ``allow_users``, ``allow_roles``, ``allow_channels`` and ``approve``.

Pure. An entry of ``allow_users`` or ``allow_channels`` is a platform id (``"U012AB"``, any
platform) or a qualified one (``"slack:U012AB"``). Users and roles together form one list:
when either is set, the caller must be in it. An empty list allows everyone on the surface.
A block may call only the tools its code names (``Caller.allowed``, from
``domain.approvals.tools_named``), so no name computed at run time reaches a tool. A tool
with ``approve = "always"`` is refused to a block that was not approved for it
(issue 12 decides approvals; the registry only enforces them). For an MCP tool, approving the
server (``"docs"``) approves all its tools, and ``"docs.search"`` approves one.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.policy.roles import ROLE_PREFIX
from bot.tools.config import ToolDecl
from bot.tools.values import Caller


def refusal(name: str, decl: ToolDecl, caller: Caller, *, per_block: bool = True) -> str | None:
    """Why ``caller`` may not call the tool ``name``, or None.

    ``per_block=False`` leaves out what depends on the calling block (the names in its code
    and its approval): what a listing shows.

    The operator at the host console (``opsloop tools call``) is refused nothing: the lists
    say who in chat may call what, and the operator can run these commands anyway.
    """
    if caller.operator:
        return None
    if decl.allow_users or decl.allow_roles:
        listed = _listed(decl.allow_users, caller.platform, caller.user)
        roles = set(decl.allow_roles) | {u.removeprefix(ROLE_PREFIX) for u in decl.allow_users}
        if not listed and not caller.roles & roles:
            return f"{name} is not allowed for user {caller.platform}:{caller.user}"
    if decl.allow_channels and not _listed(decl.allow_channels, caller.platform, caller.channel):
        where = f"in {caller.platform}:{caller.channel}" if caller.channel else "outside a channel"
        return f"{name} is not allowed {where}"
    return _block_refusal(name, decl, caller) if per_block else None


def _block_refusal(name: str, decl: ToolDecl, caller: Caller) -> str | None:
    """What this block may call: what its code names, and approved-only tools if approved."""
    names = {name, name.partition(".")[0]}
    if caller.allowed is not None and not names & caller.allowed:
        return (
            f"{name} is not named in this block's code; a block calls a tool by its name "
            f"(tools.{name}(...) in Python, tool {name} in bash)"
        )
    if decl.approve == "always" and not names & caller.approved:
        return f"{name} needs approval, and this block was not approved to call it"
    return None


def _listed(entries: Sequence[str], platform: str, value: str) -> bool:
    return bool(value) and (value in entries or f"{platform}:{value}" in entries)
