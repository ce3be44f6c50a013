"""The daily budgets, checked before each model call (``[budgets]`` of opsloop.toml).

The runner calls ``over_budget`` (in a worker thread, like every application call) before it
asks the model. The person is the author of the message being worked on
(``Conversation.last_author``), the channel is the conversation's; the spend comes from the
usage ledger the application keeps from the event log (bot/app/usage.py), so replies recorded
by any conversation, channel or replica count. The decision itself is
``domain.budgets.over_budget``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.loop.approval_steps import author_of, coordinates_of
from bot.ports_app import LoopApp
from domain.budgets import DailyBudgets, day_of
from domain.budgets import over_budget as decide
from domain.state import LoopState


def over_budget(
    app: LoopApp, state: LoopState, budgets: DailyBudgets, *, now: datetime
) -> str | None:
    """The sentence to stop with when the author or the channel of ``state`` (a
    ``Conversation``) reached a daily budget at ``now``; None when the call fits (and no read
    at all when no budget is set)."""
    if budgets.unlimited:
        return None
    where = coordinates_of(state)
    platform, channel = where.platform, where.channel
    conversation: Any = state  # a snapshot from before last_author was kept has only this
    author = author_of(state) or str(conversation.started_by)
    spent = app.daily_spend(
        platform=platform,
        day=day_of(now),
        user=author if budgets.per_user else None,
        channel=channel if budgets.per_channel_cost is not None else None,
    )
    over = decide(budgets, user=author, channel=channel, spent=spent, now=now)
    return over.sentence if over is not None else None
