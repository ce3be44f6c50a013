"""Which read-only mounts a caller's blocks get: one pure decision.

``[sandbox] mounts`` names host directories; each may be limited like a tool
(``bot.tools.access``): an entry of ``allow_users`` or ``allow_channels`` is a platform id
(``"U012AB"``) or a qualified one (``"slack:U012AB"``), and a role may stand in
``allow_users`` (``"role:oncall"``); users and roles form one list (when either is set the
caller must be in it); an empty list allows everyone on the surface. The sandbox resolves
the names it is given from its own configuration, so this decides names only, never paths.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import MountDecl, SandboxPolicy
from bot.policy.roles import ROLE_PREFIX
from bot.tools.values import Caller


def mounts_for(policy: SandboxPolicy, *, caller: Caller) -> tuple[str, ...]:
    """The names of the mounts ``caller`` may have (``[sandbox]``'s order): pass them to
    ``Sandbox.run(mounts=...)``."""
    return tuple(name for name, decl in policy.mounts.items() if allowed(decl, caller=caller))


def allowed(decl: MountDecl, *, caller: Caller) -> bool:
    """May ``caller``'s blocks see this mount? (The operator at the console may.)"""
    if caller.operator:
        return True
    if decl.allow_users or decl.allow_roles:
        listed = _listed(decl.allow_users, caller.platform, caller.user)
        roles = set(decl.allow_roles) | {u.removeprefix(ROLE_PREFIX) for u in decl.allow_users}
        if not listed and not caller.roles & roles:
            return False
    return not decl.allow_channels or _listed(decl.allow_channels, caller.platform, caller.channel)


def _listed(entries: Sequence[str], platform: str, value: str) -> bool:
    return bool(value) and (value in entries or f"{platform}:{value}" in entries)
