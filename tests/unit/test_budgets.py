"""``over_budget`` and ``DailyBudgets``: the daily budget decision, on hand-written values."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.budgets import (
    DailyBudgets,
    DailySpend,
    Spend,
    day_bounds,
    day_of,
    over_budget,
    until,
    usd,
)
from domain.limits import InvalidLimits

NOW = datetime(2026, 11, 25, 20, 48, tzinfo=UTC)  # 3 h 12 min before midnight UTC
MIDNIGHT = datetime(2026, 11, 26, tzinfo=UTC)

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
dollars = st.floats(min_value=1e-9, max_value=10_000, allow_nan=False, allow_infinity=False)
spent = st.floats(min_value=0, max_value=20_000, allow_nan=False, allow_infinity=False)


def spend(*, user: float = 0.0, tokens: int = 0, channel: float = 0.0) -> DailySpend:
    return DailySpend(user=Spend(cost=user, tokens=tokens), channel=Spend(cost=channel))


def test_a_user_over_their_daily_cost_gets_the_sentence_with_spend_and_reset() -> None:
    over = over_budget(
        DailyBudgets(per_user_cost=2.0),
        user="U012AB",
        channel="C1",
        spent=spend(user=2.13),
        now=NOW,
    )

    assert over is not None and over.scope == "user"
    assert over.sentence == (
        "You (U012AB) have used $2.13 of your $2.00 daily budget today; "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )
    assert over.resets_at == MIDNIGHT


def test_a_user_over_their_daily_tokens_is_told_in_tokens() -> None:
    over = over_budget(
        DailyBudgets(per_user_tokens=100_000),
        user="U1",
        channel="C1",
        spent=spend(tokens=120_500),
        now=NOW,
    )

    assert over is not None
    assert over.sentence.startswith("You (U1) have used 120,500 of your 100,000 daily tokens")


def test_a_channel_over_its_daily_cost_is_named_in_the_sentence() -> None:
    over = over_budget(
        DailyBudgets(per_channel_cost=5.0),
        user="U1",
        channel="C012PROD",
        spent=spend(user=0.5, channel=5.1),
        now=NOW,
    )

    assert over is not None and over.scope == "channel"
    assert over.sentence == (
        "This channel (C012PROD) has used $5.10 of its $5.00 daily budget today; "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )


def test_spend_exactly_at_the_limit_leaves_no_room_for_another_call() -> None:
    over = over_budget(
        DailyBudgets(per_user_cost=1.0), user="U1", channel="C1", spent=spend(user=1.0), now=NOW
    )

    assert over is not None


def test_no_budget_set_means_unlimited_whatever_was_spent() -> None:
    budgets = DailyBudgets()

    assert budgets.unlimited and not budgets.per_user
    assert over_budget(budgets, user="U1", channel="C1", spent=spend(user=1e9), now=NOW) is None


def test_the_budget_day_is_the_utc_day_even_for_a_clock_in_another_zone() -> None:
    tokyo = datetime(2026, 11, 26, 8, 0, tzinfo=timezone(timedelta(hours=9)))  # 23:00 UTC

    assert day_of(tokyo) == date(2026, 11, 25)
    assert day_bounds(date(2026, 11, 26)) == (MIDNIGHT, MIDNIGHT + timedelta(days=1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_user_cost": 0}, "per_user_cost"),
        ({"per_user_cost": -1.0}, "per_user_cost"),
        ({"per_channel_cost": math.inf}, "per_channel_cost"),
        ({"per_user_tokens": 0}, "per_user_tokens"),
        ({"per_user_tokens": True}, "per_user_tokens"),
        ({"per_user_tokens": 1.5}, "per_user_tokens"),
    ],
)
def test_a_budget_that_makes_no_sense_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidLimits, match=message):
        DailyBudgets(**kwargs)  # type: ignore[arg-type]


@given(
    limit=dollars,
    tokens=st.integers(min_value=1, max_value=10**9),
    channel_limit=dollars,
    user_cost=spent,
    user_tokens=st.integers(min_value=0, max_value=2 * 10**9),
    channel_cost=spent,
    now=moments,
)
def test_a_call_is_refused_exactly_when_some_spend_reached_its_limit(
    limit: float,
    tokens: int,
    channel_limit: float,
    user_cost: float,
    user_tokens: int,
    channel_cost: float,
    now: datetime,
) -> None:
    budgets = DailyBudgets(
        per_user_cost=limit, per_user_tokens=tokens, per_channel_cost=channel_limit
    )
    used = spend(user=user_cost, tokens=user_tokens, channel=channel_cost)

    over = over_budget(budgets, user="U1", channel="C1", spent=used, now=now)

    reached = user_cost >= limit or user_tokens >= tokens or channel_cost >= channel_limit
    assert (over is not None) == reached
    if over is not None:
        assert over.scope == ("channel" if over.sentence.startswith("This channel") else "user")


@given(limit=dollars, extra=spent, now=moments)
def test_the_sentence_shows_a_spend_no_smaller_than_the_limit_and_the_wait_until_midnight(
    limit: float, extra: float, now: datetime
) -> None:
    over = over_budget(
        DailyBudgets(per_user_cost=limit),
        user="U1",
        channel="C1",
        spent=spend(user=limit + extra),
        now=now,
    )

    assert over is not None
    shown = [float(x.replace(",", "")) for x in re.findall(r"\$([\d,]+\.\d+)", over.sentence)]
    assert len(shown) == 2 and shown[0] >= shown[1]
    assert now < over.resets_at <= now + timedelta(days=1)
    assert (over.resets_at.hour, over.resets_at.minute, over.resets_at.second) == (0, 0, 0)
    assert over.sentence.endswith(f"in {until(over.resets_at - now)}.")


@given(seconds=st.floats(min_value=0, max_value=86_400, allow_nan=False))
def test_the_wait_is_rounded_up_to_whole_minutes_and_never_reads_zero(seconds: float) -> None:
    text = until(timedelta(seconds=seconds))

    hours = re.search(r"(\d+) h", text)
    minutes = re.search(r"(\d+) min", text)
    total = (int(hours.group(1)) if hours else 0) * 60 + (int(minutes.group(1)) if minutes else 0)
    assert total == max(1, math.ceil(seconds / 60))
    assert not re.search(r"\b0 min", text)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (2.13, "$2.13"),
        (2.0, "$2.00"),
        (1234.5, "$1,234.50"),
        (0.5, "$0.50"),
        (0.0042, "$0.0042"),
        (0.000001, "$0.000001"),
        (0.00071234, "$0.00071"),
        (0.0, "$0.00"),
    ],
)
def test_dollars_are_shown_in_cents_or_with_the_digits_cents_would_hide(
    amount: float, shown: str
) -> None:
    assert usd(amount) == shown
