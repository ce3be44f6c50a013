"""Snapshots checked like events: a snapshot is a cache of the events it summarises.

The application believes only snapshots whose seal holds (``bot.app.mapper.SealedSnapshots``),
so a forged one never changes a budget decision or a replay: loading replays the events
instead. The audit still reports one that was edited (its seal does not hold), sealed with
another key, or -- against a checkpoint that listed it -- removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bot.audit.findings import Problem
from bot.audit.reader import Source
from bot.errors import OpsloopError
from domain.seal import seal_check


@dataclass(frozen=True)
class Snap:
    """One stored snapshot as the audit sees it."""

    conversation_id: UUID
    version: int
    status: str  # ok | bad | other-key | unsealed | undecodable
    digest: str


def read_snapshots(source: Source, ids: Iterable[UUID]) -> list[Snap]:
    """Every snapshot, its seal checked under the source's audit key."""
    key = source.mapper.audit_key
    out = []
    for stored in source.snapshots(ids):
        cid = UUID(str(stored.originator_id))
        try:
            _, record, seal = source.mapper.record_of(stored)
        except OpsloopError:
            out.append(Snap(cid, stored.originator_version, "undecodable", ""))
            continue
        status = "unsealed" if not seal else seal_check(key, record, seal) if key else "ok"
        digest = seal.partition(":")[2] if seal else ""
        out.append(Snap(cid, stored.originator_version, status, digest))
    return out


def heads(snaps: list[Snap]) -> dict[str, list[list[Any]]]:
    """What a checkpoint records of the sealed snapshots: version and digest of each."""
    out: dict[str, list[list[Any]]] = {}
    for s in snaps:
        if s.status == "ok":
            out.setdefault(str(s.conversation_id), []).append([s.version, s.digest])
    return out


_REASONS = {
    "bad": "was altered: its seal does not hold (it is ignored: loading replays the events)",
    "other-key": "is sealed with another audit key (it is ignored)",
    "undecodable": "cannot be decoded: it was altered (it is ignored)",
}


def snapshot_problems(
    snaps: list[Snap],
    checkpoints: Iterable[tuple[str, dict[str, Any]]],
    only: UUID | None,
    erased: set[UUID] = frozenset(),  # type: ignore[assignment]
) -> list[Problem]:
    """Altered snapshots, and snapshots a checkpoint listed that are gone or differ (an
    erasure removes the snapshots of the conversations it records ``UserErased`` in)."""
    problems = [
        Problem(s.conversation_id, s.version, "", _REASONS[s.status], kind="snapshot")
        for s in snaps
        if s.status in _REASONS and only in (None, s.conversation_id)
    ]
    have = {(str(s.conversation_id), s.version): s.digest for s in snaps}
    for _, cp in checkpoints:
        for cid, listed in (cp.get("snapshots") or {}).items():
            if (only is not None and cid != str(only)) or UUID(cid) in erased:
                continue
            for version, digest in listed:
                now = have.get((cid, int(version)))
                if now is None:
                    reason = f"was removed after the checkpoint of {cp.get('time')}"
                elif now != digest:
                    reason = f"differs from the checkpoint of {cp.get('time')}"
                else:
                    continue
                problems.append(Problem(UUID(cid), int(version), "", reason, kind="snapshot"))
    return list(dict.fromkeys(problems))
