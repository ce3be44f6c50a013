"""The usage ledger (bot/app/usage.py) on the real application (``memory:``): who each reply
is counted for, the sums per person, channel, model and day, and catching up idempotently."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import pytest

from bot.app.application import ConversationApp
from bot.app.usage import USAGE_BY
from domain.budgets import DailySpend, Spend
from tests.spend import spend, where


def today(app: ConversationApp) -> date:
    return date.fromisoformat(app.usage(by="day")[0].key)


def replied_at(app: ConversationApp, cid: UUID) -> datetime:
    stamp = next(e["timestamp"] for e in app.timeline(cid) if e["type"] == "ModelReplied")
    return datetime.fromisoformat(stamp)


def test_each_reply_counts_for_the_latest_author_and_the_conversations_channel(
    memory_app: ConversationApp,
) -> None:
    spend(memory_app, author="U1", at=where("C1", "1.0"), cost=1.0)
    spend(memory_app, author="U2", at=where("C1", "1.0"), cost=2.0)  # same thread, new author
    spend(memory_app, author="U1", at=where("C2", "9.0"), cost=4.0)

    day = today(memory_app)
    u1 = memory_app.daily_spend(platform="slack", day=day, user="U1", channel="C1")
    u2 = memory_app.daily_spend(platform="slack", day=day, user="U2", channel="C2")

    assert u1 == DailySpend(user=Spend(cost=5.0, tokens=220), channel=Spend(cost=3.0, tokens=220))
    assert u2 == DailySpend(user=Spend(cost=2.0, tokens=110), channel=Spend(cost=4.0, tokens=110))


def test_a_person_is_counted_per_platform_and_a_day_without_spend_is_zero(
    memory_app: ConversationApp,
) -> None:
    spend(memory_app, author="U1", at=where(platform="discord"), cost=1.0)

    day = today(memory_app)
    on_slack = memory_app.daily_spend(platform="slack", day=day, user="U1", channel="C1")
    next_day = date.fromordinal(day.toordinal() + 1)
    later = memory_app.daily_spend(platform="discord", day=next_day, user="U1", channel="C1")

    assert on_slack == DailySpend() and later == DailySpend()


def test_a_spend_not_asked_for_is_not_read(memory_app: ConversationApp) -> None:
    spend(memory_app, author="U1", cost=1.0)

    got = memory_app.daily_spend(platform="slack", day=today(memory_app), user=None, channel="C1")

    assert got == DailySpend(user=Spend(), channel=Spend(cost=1.0, tokens=110))


def test_usage_is_summed_by_person_channel_model_and_day(memory_app: ConversationApp) -> None:
    spend(memory_app, author="U1", at=where("C1", "1"), cost=1.0, model="gpt-4o-mini")
    spend(memory_app, author="U2", at=where("C1", "2"), cost=3.0, model="gpt-4o")
    spend(memory_app, author="U1", at=where("C2", "3"), cost=0.5, provider="groq", model="l")

    rows = {by: [(r.key, r.turns, r.cost) for r in memory_app.usage(by=by)] for by in USAGE_BY}

    assert rows["user"] == [("slack:U2", 1, 3.0), ("slack:U1", 2, 1.5)]
    assert rows["channel"] == [("slack:C1", 2, 4.0), ("slack:C2", 1, 0.5)]
    assert rows["model"] == [("openai:gpt-4o", 1, 3.0), ("openai:gpt-4o-mini", 1, 1.0),
                             ("groq:l", 1, 0.5)]  # fmt: skip
    assert rows["day"] == [(today(memory_app).isoformat(), 3, 4.5)]
    first = memory_app.usage(by="user")[0].as_json()
    assert first == {"by": "user", "key": "slack:U2", "turns": 1, "input_tokens": 100,
                     "output_tokens": 10, "tokens": 110, "cost": 3.0}  # fmt: skip


def test_since_leaves_out_replies_recorded_before_it(memory_app: ConversationApp) -> None:
    spend(memory_app, author="U1", at=where("C1", "1"), cost=1.0)
    later = spend(memory_app, author="U2", at=where("C1", "2"), cost=2.0)

    rows = memory_app.usage(by="user", since=replied_at(memory_app, later))

    assert [(r.key, r.cost) for r in rows] == [("slack:U2", 2.0)]


def test_catching_up_again_from_an_old_position_counts_no_reply_twice(
    memory_app: ConversationApp,
) -> None:
    spend(memory_app, author="U1", at=where("C1", "1"), cost=1.0)
    spend(memory_app, author="U2", at=where("C1", "1"), cost=2.0)
    before = memory_app.usage(by="user")
    # Another process that read the position before this one moved it folds the same events.
    with memory_app.factory.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
        c.execute("DELETE FROM opsloop_readmodel_position WHERE name = 'usage'")

    folded = memory_app.usage_log.catch_up()

    assert folded > 0
    assert memory_app.usage(by="user") == before
    assert [(r.key, r.cost) for r in before] == [("slack:U2", 2.0), ("slack:U1", 1.0)]


def test_a_database_from_before_the_ledger_gets_its_whole_history_on_the_first_read(
    memory_app: ConversationApp,
) -> None:
    spend(memory_app, author="U1", cost=1.0)
    spend(memory_app, author="U1", at=where("C2"), cost=2.0)
    with memory_app.factory.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
        for table in ("opsloop_usage", "opsloop_usage_authors"):
            c.execute(f"DROP TABLE {table}")
        c.execute("DELETE FROM opsloop_readmodel_position WHERE name = 'usage'")

    memory_app.schema.run(memory_app.usage_log.create_statements())  # migration 3

    assert [(r.key, r.turns, r.cost) for r in memory_app.usage(by="user")] == [("slack:U1", 2, 3.0)]


@pytest.mark.parametrize("by", USAGE_BY)
def test_an_empty_log_has_no_usage(memory_app: ConversationApp, by: str) -> None:
    assert memory_app.usage(by=by) == []  # type: ignore[arg-type]


def test_an_encrypted_store_keeps_its_ledger_too() -> None:
    import base64

    from bot.app.application import open_app

    app = open_app(database_url="memory:", cipher_key=base64.b64encode(b"k" * 32).decode())
    try:
        spend(app, author="U1", cost=1.5)
        rows = [(r.key, r.cost) for r in app.usage(by="user")]
    finally:
        app.close()

    assert rows == [("slack:U1", 1.5)]
