"""Daily budgets in the loop, on the real application (``memory:``) and the real runner and
service; only the ports are fakes (the scripted model, priced at $1 per million tokens).

The spend is recorded with the store's own clock, so the runner's clock is set from the day
the usage ledger holds (``spend_day``): no test depends on when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

from bot.app.application import ConversationApp
from bot.config import Policy
from bot.loop.runner import LoopRunner
from bot.loop.service import OpsloopService
from bot.prompt.builder import prompt_builder
from bot.providers.pricing import PriceTable, Rate
from bot.surface import Coordinates, Incoming, Outcome
from domain.budgets import DailyBudgets, usd
from domain.limits import LoopLimits
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel
from tests.spend import StoreClock

PRICES = PriceTable(overrides={"scripted:*": Rate(input=1.0, output=1.0)}, defaults={})
BLOCK = "Let me look.\n<helpers>\nprint(1)\n</helpers>"
TINY = 0.000001  # USD: any priced reply goes over it


@dataclass
class StopProgress(RecordingProgress):
    """Records what a surface is told when the loop stops."""

    details: list[tuple[str, str]] = field(default_factory=list)

    async def stopped(self, *, reason: str, detail: str) -> None:
        await super().stopped(reason=reason, detail=detail)
        self.details.append((reason, detail))


def service_with(
    app: ConversationApp,
    budgets: DailyBudgets,
    *,
    clock: StoreClock,
    turns: list[str] | None = None,
) -> tuple[OpsloopService, WatchedModel]:
    model = WatchedModel(turns or ["The disk is fine."], prices=PRICES)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=FakeSandbox(),
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name),
        budgets=budgets,
        now=clock,
    )
    return OpsloopService(app=app, runner=runner, model_name=model.name), model


async def ask(
    service: OpsloopService,
    *,
    author: str,
    channel: str = "C1",
    thread: str | None = None,
    progress: RecordingProgress | None = None,
) -> Outcome:
    where = Coordinates("slack", "T1", channel, thread or uuid4().hex)
    incoming = Incoming(
        coordinates=where, message_key=uuid4().hex, author=author, text="why is disk full?"
    )
    receipt = await service.receive(incoming)
    return await service.run(receipt.conversation_id, progress or RecordingProgress())


def spend_day(app: ConversationApp) -> date:
    """The one UTC day the ledger holds spend in."""
    days = [row.key for row in app.usage(by="day")]
    assert len(days) == 1
    return date.fromisoformat(days[0])


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=UTC)


def kinds(app: ConversationApp, outcome: Outcome) -> list[str]:
    return [e["type"] for e in app.timeline(UUID(outcome.conversation_id))]


async def test_a_user_over_their_daily_budget_is_stopped_with_a_sentence_before_the_model_is_called(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, model = service_with(memory_app, DailyBudgets(per_user_cost=TINY), clock=clock)
    first = await ask(service, author="U012AB")
    clock.at = at(spend_day(memory_app), 20, 48)
    progress = StopProgress()

    second = await ask(service, author="U012AB", progress=progress)

    assert first.answer == "The disk is fine."
    assert len(model.prompts) == 1  # the second conversation's model call never happened
    assert second.stopped_reason == "budget" and second.answer is None
    spent = memory_app.usage(by="user")[0].cost
    assert second.detail == (
        f"You (U012AB) have used {usd(spent)} of your $0.000001 daily budget today; "
        "it resets at 00:00 UTC, in 3 h 12 min."
    )
    assert progress.details == [("budget", second.detail)]
    assert kinds(memory_app, second) == ["Started", "MessageReceived", "LoopClaimed", "Stopped"]
    stopped = memory_app.timeline(UUID(second.conversation_id))[-1]
    assert stopped["reason"] == "budget" and stopped["detail"] == second.detail


async def test_spend_in_another_conversation_and_another_channel_counts_against_the_same_person(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, model = service_with(memory_app, DailyBudgets(per_user_cost=TINY), clock=clock)
    await ask(service, author="U1", channel="C1")
    clock.at = at(spend_day(memory_app), 12)

    elsewhere = await ask(service, author="U1", channel="C2")

    assert elsewhere.stopped_reason == "budget"
    assert elsewhere.detail.startswith("You (U1) have used $")
    assert len(model.prompts) == 1


async def test_another_person_in_the_same_channel_is_not_stopped_by_someone_elses_budget(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, model = service_with(memory_app, DailyBudgets(per_user_cost=TINY), clock=clock)
    await ask(service, author="U1")
    clock.at = at(spend_day(memory_app), 12)

    other = await ask(service, author="U2")

    assert other.answer == "The disk is fine." and other.stopped_reason is None
    assert len(model.prompts) == 2


async def test_a_reply_counts_for_the_author_of_the_message_it_answers_not_the_thread_starter(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, _ = service_with(memory_app, DailyBudgets(), clock=clock)
    await ask(service, author="U1", thread="1.0")
    await ask(service, author="U2", thread="1.0")  # a reply in the same thread

    by_user = {row.key: row for row in memory_app.usage(by="user")}

    assert set(by_user) == {"slack:U1", "slack:U2"}
    assert by_user["slack:U1"].turns == 1 and by_user["slack:U2"].turns == 1
    assert by_user["slack:U2"].cost > by_user["slack:U1"].cost > 0  # the longer prompt is U2's


async def test_a_channel_over_its_daily_cost_stops_everyone_in_it_and_only_there(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, _ = service_with(memory_app, DailyBudgets(per_channel_cost=TINY), clock=clock)
    await ask(service, author="U1", channel="C012PROD")
    clock.at = at(spend_day(memory_app), 23, 59, 30)

    same_channel = await ask(service, author="U2", channel="C012PROD")
    other_channel = await ask(service, author="U2", channel="C2")

    assert same_channel.stopped_reason == "budget"
    assert same_channel.detail.startswith("This channel (C012PROD) has used $")
    assert same_channel.detail.endswith(
        "of its $0.000001 daily budget today; it resets at 00:00 UTC, in 1 min."
    )
    assert other_channel.answer == "The disk is fine."


async def test_a_person_over_their_daily_tokens_is_stopped_and_told_in_tokens(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, _ = service_with(memory_app, DailyBudgets(per_user_tokens=10), clock=clock)
    await ask(service, author="U1")
    clock.at = at(spend_day(memory_app), 12)

    again = await ask(service, author="U1")

    tokens = memory_app.usage(by="user")[0]
    assert again.stopped_reason == "budget"
    used = f"{tokens.input_tokens + tokens.output_tokens:,}"
    assert again.detail.startswith(f"You (U1) have used {used} of your 10 daily tokens today;")


async def test_the_budget_resets_at_midnight_utc(memory_app: ConversationApp) -> None:
    clock = StoreClock(memory_app)
    service, model = service_with(memory_app, DailyBudgets(per_user_cost=TINY), clock=clock)
    await ask(service, author="U1")
    day = spend_day(memory_app)

    clock.at = at(day, 23, 59, 59)
    late = await ask(service, author="U1")
    clock.at = at(day + timedelta(days=1), 0, 0, 1)
    next_day = await ask(service, author="U1")

    assert late.stopped_reason == "budget"
    assert next_day.answer == "The disk is fine." and next_day.stopped_reason is None
    assert len(model.prompts) == 2


async def test_the_budget_is_checked_before_every_model_call_not_only_the_first(
    memory_app: ConversationApp,
) -> None:
    clock = StoreClock(memory_app)
    service, model = service_with(
        memory_app, DailyBudgets(per_user_cost=TINY), clock=clock, turns=[BLOCK, "Done."]
    )

    outcome = await ask(service, author="U1")

    assert kinds(memory_app, outcome) == [
        "Started",
        "MessageReceived",
        "LoopClaimed",
        "ModelReplied",
        "BlockStarted",
        "BlockFinished",
        "Stopped",
    ]
    assert len(model.prompts) == 1 and outcome.stopped_reason == "budget"


async def test_without_budgets_the_loop_reads_no_spend(memory_app: ConversationApp) -> None:
    service, model = service_with(memory_app, DailyBudgets(), clock=StoreClock(memory_app))

    outcome = await ask(service, author="U1")

    assert outcome.answer == "The disk is fine." and len(model.prompts) == 1
    assert memory_app.usage_log.position() == 0  # the ledger was never caught up
