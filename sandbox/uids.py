"""Host uids for jails: one per workspace, from a configured range.

When every jail maps to the same host uid, a file one conversation's block plants (a setuid
copy of python, say) runs with the rights of every other conversation's files. With a uid
per workspace the jail user inside is still 65534, but on the host each workspace, and every
process of its blocks, belongs to a uid of its own: nothing of one conversation is reachable
as another.

The uid of a workspace is derived from its name (the same name prefers the same uid on any
host), with linear probing when that uid is taken; the first uid of the range is for runs
without a workspace, which share nothing anyway (each gets a private tmpfs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxUnavailable

DEFAULT_UID_RANGE = "200000-265535"
_MIN_UID = 1000  # below: system accounts
_MAX_UID = 2**32 - 2  # (uid_t)-1 is "no uid"


@dataclass(frozen=True)
class UidRange:
    """An inclusive range of host uids (and the same gids) reserved for jails."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not (_MIN_UID <= self.first < self.last <= _MAX_UID):
            raise SandboxUnavailable(
                f"uid_range {self.first}-{self.last} must be two uids with "
                f"{_MIN_UID} <= first < last <= {_MAX_UID}"
            )

    @classmethod
    def parse(cls, text: str) -> UidRange:
        """``"200000-265535"`` as a range (a one-line error otherwise)."""
        first, sep, last = text.partition("-")
        if not sep or not first.strip().isdigit() or not last.strip().isdigit():
            raise SandboxUnavailable(f"uid_range {text!r} must look like '200000-265535'")
        return cls(int(first), int(last))

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def scratch(self) -> int:
        """The uid of runs without a workspace."""
        return self.first

    @property
    def size(self) -> int:
        """How many workspaces can have a uid at once."""
        return self.last - self.first

    def preferred(self, name: str) -> int:
        """The uid ``name`` gets when nobody holds it."""
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        return self.first + 1 + int.from_bytes(digest[:8], "big") % self.size

    def allocate(self, name: str, *, taken: Container[int]) -> int:
        """The preferred uid of ``name``, or the next free one after it."""
        offset = self.preferred(name) - self.first - 1
        for step in range(self.size):
            uid = self.first + 1 + (offset + step) % self.size
            if uid not in taken:
                return uid
        raise SandboxUnavailable(
            f"all {self.size} uids of uid_range {self} are in use: widen [sandbox] uid_range "
            "or shorten workspace_idle_hours"
        )


def host_overlaps(
    uids: UidRange, *, passwd: Path = Path("/etc/passwd"), subuid: Path = Path("/etc/subuid")
) -> list[str]:
    """Accounts and subordinate-uid ranges of this host that fall inside ``uids``."""
    found = []
    for line in _lines(passwd):
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit() and uids.first <= int(parts[2]) <= uids.last:
            found.append(f"user {parts[0]} (uid {parts[2]}) in /etc/passwd")
    for line in _lines(subuid):
        parts = line.split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            start, count = int(parts[1]), int(parts[2])
            if start <= uids.last and uids.first < start + count:
                found.append(f"{parts[0]}'s subordinate uids {start}-{start + count - 1}")
    return found


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
