"""Named read-only mounts: host directories the operator offers at ``/mnt/NAME`` in a jail.

The names and their host paths come from the sandbox's own configuration
(``[sandbox] mounts``); a run asks for names only, so no caller, and no caller of the
service, can ever name a host path. A name is a simple identifier; a name this sandbox does
not have is a ``BadRequest`` naming it.

nsjail binds a directory recursively but makes only its top read-only: a filesystem mounted
*below* the host path would be writable in the jail. So a host path with mounts below it is
refused, when the sandbox starts and again before every run that asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sandbox.errors import BadRequest, SandboxUnavailable

MOUNT_ROOT = "/mnt"
MAX_MOUNTS = 32  # names one run may ask for
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ESCAPE = re.compile(r"\\([0-7]{3})")


def valid_name(name: object) -> bool:
    """Is ``name`` a mount name: an ASCII identifier of at most 64 characters?"""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def jail_path(name: str) -> str:
    """Where the mount ``name`` appears in the jail."""
    return f"{MOUNT_ROOT}/{name}"


def requested(available: Mapping[str, str], *, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The (name, host path) pairs of ``names`` (duplicates once, in order); ``BadRequest``
    for a name that is invalid or that ``available`` does not have."""
    if isinstance(names, str):
        raise BadRequest("mounts must be a list of names")
    if len(names) > MAX_MOUNTS:
        raise BadRequest(f"{len(names)} mounts asked for; at most {MAX_MOUNTS}")
    chosen: dict[str, str] = {}
    for name in names:
        if not valid_name(name):
            raise BadRequest(f"invalid mount name {str(name)[:80]!r}: use a simple identifier")
        if name not in available:
            known = ", ".join(sorted(available)) or "none"
            raise BadRequest(f"unknown mount {name!r} (mounts of this sandbox: {known})")
        chosen[name] = available[name]
    return tuple(chosen.items())


def _unescape(field: str) -> str:
    """A path from mountinfo, whose spaces, tabs, newlines and backslashes are octal escapes."""
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def mounts_below(path: str, *, mountinfo: str) -> list[str]:
    """Mount points strictly below ``path`` in a ``/proc/self/mountinfo`` text (pure)."""
    prefix = path.rstrip("/") + "/"
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _unescape(fields[4])
            if point.startswith(prefix):
                found.append(point)
    return found


def submounts(paths: Sequence[str], *, mountinfo: str) -> tuple[str, ...]:
    """Every mount point below any of ``paths``, parents before children (pure).

    The jail binds each of them read-only again, on top of the recursive bind of its parent,
    so that a filesystem the host mounted inside a system directory or an ``extra_mounts``
    path (whose top alone nsjail makes read-only) is read-only in the jail too."""
    found = {point for path in paths for point in mounts_below(path, mountinfo=mountinfo)}
    return tuple(sorted(found, key=lambda point: (point.count("/"), point)))


def read_mountinfo() -> str:
    """This process's mount table (nsjail starts from it)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        return table.read()


def refuse_mounts_below(pairs: Sequence[tuple[str, str]]) -> None:
    """``SandboxUnavailable`` when a filesystem is mounted below one of these host paths."""
    if not pairs:
        return
    table = read_mountinfo()
    for name, path in pairs:
        below = mounts_below(path, mountinfo=table)
        if below:
            raise SandboxUnavailable(
                f"mount {name}: {path} has another filesystem mounted below it ({below[0]}), "
                "which the jail could write to; offer that one as its own mount instead"
            )
