"""Limits of the loop as values: model turns per user message, token and cost budgets.

``bot.config.LoopPolicy`` (opsloop.toml ``[loop]``) holds the same three numbers; the
composition root builds ``LoopLimits`` from it, with ``[sandbox] wall_seconds`` as the wall
limit assumed for a started block whose ``BlockStarted`` recorded none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class InvalidLimits(ValueError):
    """A loop limit that makes no sense (zero turns, a negative budget, …)."""


@dataclass(frozen=True)
class LoopLimits:
    """How far one conversation's loop may go before it is stopped."""

    turns_per_message: int = 10  # model replies per user message
    token_budget: int | None = None  # input+output tokens per conversation; None = unlimited
    cost_budget: float | None = None  # USD per conversation; None = unlimited
    block_wall_seconds: float = 10.0  # a started block without recorded limits ends by then

    def __post_init__(self) -> None:
        # bool is an int in Python; True turns is a typo, not a limit
        if isinstance(self.turns_per_message, bool) or not isinstance(self.turns_per_message, int):
            raise InvalidLimits("turns_per_message must be a whole number")
        if self.turns_per_message < 1:
            raise InvalidLimits("turns_per_message must be at least 1")
        if self.token_budget is not None and (
            isinstance(self.token_budget, bool)
            or not isinstance(self.token_budget, int)
            or self.token_budget < 1
        ):
            raise InvalidLimits("token_budget must be a whole number of at least 1, or None")
        if self.cost_budget is not None and (
            isinstance(self.cost_budget, bool)
            or not isinstance(self.cost_budget, int | float)
            or not math.isfinite(self.cost_budget)
            or self.cost_budget <= 0
        ):
            raise InvalidLimits("cost_budget must be a positive number of USD, or None")

    def budget_exhausted(self, *, tokens_used: int, cost_used: float) -> str | None:
        """Why no further model call fits the budgets, or None when one still does."""
        if self.token_budget is not None and tokens_used >= self.token_budget:
            return (
                f"the conversation used {tokens_used} tokens of its "
                f"{self.token_budget}-token budget"
            )
        if self.cost_budget is not None and cost_used >= self.cost_budget:
            return f"the conversation spent ${cost_used:.4f} of its ${self.cost_budget:.4f} budget"
        return None
