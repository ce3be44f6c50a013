"""Daily budgets per person and per channel, and the decision whether one more model call fits.

``[budgets]`` in opsloop.toml (``bot.config.BudgetsPolicy``) holds the limits; the spend comes
from the usage read model (``bot/app/usage.py``), which follows the event log, so it counts
every conversation, channel and replica. A day is a UTC calendar day: every budget resets at
00:00 UTC. A limit is reached when the spend is *at or over* it (like ``LoopLimits``), so a
call is refused once nothing is left rather than once something is owed.

Pure: the clock comes in as ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from domain.limits import InvalidLimits

Scope = Literal["user", "channel"]


@dataclass(frozen=True)
class DailyBudgets:
    """What one person, and one channel, may spend on models in a UTC day (None = unlimited)."""

    per_user_cost: float | None = None  # USD per person per day
    per_user_tokens: int | None = None  # input+output tokens per person per day
    per_channel_cost: float | None = None  # USD per channel per day

    def __post_init__(self) -> None:
        for name in ("per_user_cost", "per_channel_cost"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidLimits(f"{name} must be a positive number of USD, or None")
        tokens = self.per_user_tokens
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
            raise InvalidLimits("per_user_tokens must be a whole number of at least 1, or None")
        if tokens is not None and tokens < 1:
            raise InvalidLimits("per_user_tokens must be a whole number of at least 1, or None")

    @property
    def unlimited(self) -> bool:
        """True when no budget is set: nothing to check, nothing to read."""
        return (self.per_user_cost, self.per_user_tokens, self.per_channel_cost) == (None,) * 3

    @property
    def per_user(self) -> bool:
        """Whether a per-person budget is set (the person's spend must be read)."""
        return self.per_user_cost is not None or self.per_user_tokens is not None


@dataclass(frozen=True)
class Spend:
    """Model spend in some window: USD and input+output tokens."""

    cost: float = 0.0
    tokens: int = 0


@dataclass(frozen=True)
class DailySpend:
    """What the author of a message and its channel have spent so far in one UTC day."""

    user: Spend = Spend()
    channel: Spend = Spend()


@dataclass(frozen=True)
class OverBudget:
    """A daily budget that leaves no room for another model call, and what to tell the user."""

    scope: Scope
    sentence: str  # one sentence: who, how much of how much, and when it resets
    resets_at: datetime  # the next 00:00 UTC


def day_of(now: datetime) -> date:
    """The UTC day ``now`` falls in (a naive ``now`` is taken as UTC)."""
    return _utc(now).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """00:00 UTC of ``day`` and of the next day: the window a daily budget counts."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def over_budget(
    budgets: DailyBudgets, *, user: str, channel: str, spent: DailySpend, now: datetime
) -> OverBudget | None:
    """The first daily budget ``spent`` has reached (the person's cost, their tokens, then the
    channel's cost), or None when another model call still fits every one of them."""
    resets_at = day_bounds(day_of(now))[1]
    when = f"it resets at 00:00 UTC, in {until(resets_at - _utc(now))}"
    if budgets.per_user_cost is not None and spent.user.cost >= budgets.per_user_cost:
        used, limit = usd(spent.user.cost), usd(budgets.per_user_cost)
        sentence = f"You ({user}) have used {used} of your {limit} daily budget today; {when}."
        return OverBudget(scope="user", sentence=sentence, resets_at=resets_at)
    if budgets.per_user_tokens is not None and spent.user.tokens >= budgets.per_user_tokens:
        used, limit = f"{spent.user.tokens:,}", f"{budgets.per_user_tokens:,}"
        sentence = f"You ({user}) have used {used} of your {limit} daily tokens today; {when}."
        return OverBudget(scope="user", sentence=sentence, resets_at=resets_at)
    if budgets.per_channel_cost is not None and spent.channel.cost >= budgets.per_channel_cost:
        used, limit = usd(spent.channel.cost), usd(budgets.per_channel_cost)
        sentence = (
            f"This channel ({channel}) has used {used} of its {limit} daily budget today; {when}."
        )
        return OverBudget(scope="channel", sentence=sentence, resets_at=resets_at)
    return None


def usd(amount: float) -> str:
    """Dollars as people read them: cents from a dollar up; below that two significant digits
    ($0.0042, $0.000001), which cents would round to nothing; never fewer than two decimals."""
    if amount >= 1 or amount <= 0:
        return f"${amount:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(amount)))
    text = f"{amount:.{decimals}f}".rstrip("0")
    return f"${amount:.{max(2, len(text.partition('.')[2]))}f}"


def until(delta: timedelta) -> str:
    """A wait as "3 h 12 min", rounded up to the minute (never "0 min")."""
    minutes = max(1, math.ceil(delta.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
