"""When a block left without an outcome is certainly over (pure).

A ``BlockStarted`` with no outcome means the process running it died, or another process
(a replica) is still running it. A block cannot outlive its wall-time limit (the sandbox kills
it), so only once that limit and a grace period have passed since ``BlockStarted`` may the
block be recorded as *outcome unknown*; until then the loop waits. This keeps a replica from
declaring another replica's running block lost, and after a crash it lets an orphaned jail
finish before the model is told its outcome is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

GRACE_SECONDS = 5.0  # nsjail's own clock and the process-group kill land within this


def over_at(
    timeline: Sequence[Mapping[str, Any]], *, block_id: str, default_wall_seconds: float
) -> datetime | None:
    """When the started block ``block_id`` is over for sure; None when it cannot be told."""
    started = next(
        (
            e
            for e in reversed(timeline)
            if e.get("type") == "BlockStarted" and e.get("block_id") == block_id
        ),
        None,
    )
    if started is None or not started.get("timestamp"):
        return None
    try:
        at = datetime.fromisoformat(str(started["timestamp"]))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    limits = started.get("limits") or {}
    wall = limits.get("wall_seconds") if isinstance(limits, Mapping) else None
    wall = float(wall) if isinstance(wall, int | float) and wall > 0 else default_wall_seconds
    return at + timedelta(seconds=wall + GRACE_SECONDS)


def seconds_left(
    timeline: Sequence[Mapping[str, Any]],
    *,
    block_id: str,
    default_wall_seconds: float,
    now: datetime,
) -> float:
    """Seconds until the block is over for sure (0 when it already is, or cannot be told)."""
    deadline = over_at(timeline, block_id=block_id, default_wall_seconds=default_wall_seconds)
    if deadline is None:
        return 0.0
    return max(0.0, (deadline - now).total_seconds())
