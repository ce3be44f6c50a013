"""``[roles]``: who holds which role, and whether a person is in a list of users and roles.

Pure. A role maps to qualified user ids (``"slack:U012AB"``, ``"discord:4242"``): a role
says who the person is on every platform, so an unqualified id would be ambiguous. A list of
people (``allow_users``, ``approvers``) takes user ids, bare (``"U012AB"``, any platform)
or qualified, and roles, as ``"role:oncall"`` or as the bare name of a role in
``[roles]``: wherever a user list is accepted, a role may stand in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

ROLE_PREFIX = "role:"

RolesTable = Mapping[str, Sequence[str]]  # role -> ["platform:user", ...]


def roles_of(roles: RolesTable, *, platform: str, user: str) -> frozenset[str]:
    """The roles ``user`` of ``platform`` holds."""
    me = f"{platform}:{user}"
    return frozenset(name for name, members in roles.items() if me in members)


def listed(entries: Sequence[str], roles: RolesTable, *, platform: str, user: str) -> bool:
    """Whether ``user`` is named in ``entries``, by id or through one of their roles."""
    if not user:
        return False
    if user in entries or f"{platform}:{user}" in entries:
        return True
    held = roles_of(roles, platform=platform, user=user)
    return any(_role_name(entry, roles) in held for entry in entries)


def _role_name(entry: str, roles: RolesTable) -> str | None:
    if entry.startswith(ROLE_PREFIX):
        return entry.removeprefix(ROLE_PREFIX)
    return entry if entry in roles else None


def unknown_roles(entries: Sequence[str], roles: RolesTable) -> list[str]:
    """Entries written ``role:NAME`` whose NAME is not in ``[roles]`` (a typo, at start-up)."""
    return [
        e for e in entries if e.startswith(ROLE_PREFIX) and e.removeprefix(ROLE_PREFIX) not in roles
    ]
