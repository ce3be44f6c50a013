"""When a block without an outcome is certainly over: its wall limit plus a grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.loop.interrupted import GRACE_SECONDS, over_at, seconds_left

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def started(block_id: str = "t1b1", **limits: float) -> dict[str, object]:
    return {
        "type": "BlockStarted",
        "block_id": block_id,
        "timestamp": T0.isoformat(),
        "limits": limits,
    }


def test_a_block_is_over_after_its_recorded_wall_limit_and_the_grace() -> None:
    deadline = over_at([started(wall_seconds=30)], block_id="t1b1", default_wall_seconds=10)
    assert deadline == T0 + timedelta(seconds=30 + GRACE_SECONDS)


def test_without_recorded_limits_the_configured_wall_limit_is_used() -> None:
    deadline = over_at([started()], block_id="t1b1", default_wall_seconds=10)
    assert deadline == T0 + timedelta(seconds=10 + GRACE_SECONDS)


def test_seconds_left_counts_down_to_zero_and_stays_there() -> None:
    timeline = [started(wall_seconds=10)]
    assert seconds_left(timeline, block_id="t1b1", default_wall_seconds=10, now=T0) == 15
    late = T0 + timedelta(minutes=5)
    assert seconds_left(timeline, block_id="t1b1", default_wall_seconds=10, now=late) == 0


def test_a_block_with_no_readable_start_time_is_over_now() -> None:
    no_time = [{"type": "BlockStarted", "block_id": "t1b1"}]
    assert seconds_left(no_time, block_id="t1b1", default_wall_seconds=10, now=T0) == 0
    assert seconds_left([started("t1b2")], block_id="t1b1", default_wall_seconds=10, now=T0) == 0


def test_a_timestamp_without_a_zone_is_read_as_utc() -> None:
    naive = [
        {
            "type": "BlockStarted",
            "block_id": "t1b1",
            "timestamp": "2026-11-25T09:00:00",
            "limits": {"wall_seconds": 1},
        }
    ]
    assert over_at(naive, block_id="t1b1", default_wall_seconds=10) == T0 + timedelta(seconds=6)
