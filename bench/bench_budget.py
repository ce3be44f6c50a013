"""What the daily budget check costs per model call, against baselines measured in the same run.

    .venv/bin/python bench/bench_budget.py [--conversations 12] [--rounds 3] [--ledger 20000]

The check (bot/loop/budget.py) is more than one indexed query: before each model call it
catches the usage ledger up from the notification log (the events recorded since the last
check, filtered by topic), then sums the author's and the channel's spend of the day (two
indexed queries). So it is measured, not assumed:

1. **Baseline, append**: one application command that appends one event, on the same SQLite
   file, measured between the conversations below.
2. **Baseline, loop**: whole conversations through the real runner without budgets (SQLite,
   prompt builder, scripted model, a no-op sandbox): 10 model calls and 9 blocks each. We
   report wall ms per model call.
3. **With budgets**: the same conversations with all three budgets set (never reached),
   alternating with (2) conversation by conversation (ABBA), so the shared machine's noise
   falls on both alike. We report the difference, and the check itself timed in its worker
   thread (catch-up of the reply and blocks recorded since the last check, both sums), as a
   ratio to the append and to the loop's cost per model call.
4. **The read alone, and its growth**: ``ConversationApp.daily_spend`` (catch-up with nothing
   new, then the two sums) on a small ledger and on one of ``--ledger`` rows spread over 1,000
   people and 50 days: the sums are indexed, so the ratio should stay near 1.

Results go to stdout and to bench/results/budget.md. Read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app.application import ConversationApp, open_app  # noqa: E402
from bot.config import Policy  # noqa: E402
from bot.loop import runner as runner_module  # noqa: E402
from bot.loop.runner import LoopRunner  # noqa: E402
from bot.loop.service import OpsloopService  # noqa: E402
from bot.prompt.builder import prompt_builder  # noqa: E402
from bot.providers.pricing import PriceTable, Rate  # noqa: E402
from bot.providers.scripted import ScriptedModel  # noqa: E402
from bot.surface import Coordinates, Incoming  # noqa: E402
from domain.budgets import DailyBudgets  # noqa: E402
from domain.limits import LoopLimits  # noqa: E402
from sandbox.files import Outbox
from sandbox.result import RunResult  # noqa: E402

BLOCK_TURNS = 9
TURNS = [f"Step {n}.\n<helpers>\nprint({n})\n</helpers>" for n in range(1, BLOCK_TURNS + 1)]
TURNS.append("Done: nine steps.")
MODEL_CALLS = BLOCK_TURNS + 1
NEVER = DailyBudgets(per_user_cost=1e9, per_user_tokens=10**15, per_channel_cost=1e9)
PRICES = PriceTable(overrides={"scripted:*": Rate(input=1.0, output=1.0)}, defaults={})
RESULTS = Path(__file__).parent / "results" / "budget.md"


class NoOpSandbox:
    """Returns a successful result at once: the loop's own cost is what is measured."""

    async def run(
        self, *, language: str, code: str, limits: Any = None, workspace: str | None = None
    ) -> RunResult:
        return RunResult(exit_code=0, signal=None, stdout="ok\n", stderr="", duration_ms=0)

    async def read_outbox(self, **_: Any) -> Outbox:
        return Outbox()  # blocks here write no files


class QuietProgress:
    async def thinking(self) -> None: ...
    async def model_text(self, chunk: str) -> None: ...
    async def block_started(self, **_: Any) -> None: ...
    async def block_finished(self, **_: Any) -> None: ...
    async def answered(self, text: str) -> None: ...
    async def stopped(self, **_: Any) -> None: ...


def service_on(app: ConversationApp, budgets: DailyBudgets) -> OpsloopService:
    model = ScriptedModel(TURNS, label="bench", chunk_chars=1 << 16, prices=PRICES)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=NoOpSandbox(),
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name),
        budgets=budgets,
    )
    return OpsloopService(app=app, runner=runner, model_name=model.name)


def coords(key: str) -> Coordinates:
    return Coordinates(platform="bench", workspace="w", channel="c", thread=key)


def baseline_appends_ms(app: ConversationApp, *, appends: int, key: str) -> list[float]:
    """Ms of each of ``appends`` append commands (load, trigger, save) on a conversation."""
    cid, _ = app.receive_message(coordinates=coords(key), message_key=key, author="a", text="h")
    times = []
    for _ in range(appends):
        started = time.perf_counter()
        app.record_model_failure(cid, provider="p", model="m", error="e", attempts=1)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def per_model_call_ms(service: OpsloopService, key: str) -> float:
    """Wall ms per model call of one whole conversation (its blocks and records included)."""
    receipt = await service.receive(
        Incoming(coordinates=coords(key), message_key=key, author=f"u{len(key) % 3}", text="go")
    )
    started = time.perf_counter()
    outcome = await service.run(receipt.conversation_id, QuietProgress())
    assert outcome.answer == "Done: nine steps.", outcome
    return (time.perf_counter() - started) * 1000 / MODEL_CALLS


class TimedCheck:
    """Wraps the runner's ``over_budget`` to time the check itself (in its worker thread)."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._check = runner_module.over_budget

    def __call__(self, *args: Any, **kwargs: Any) -> str | None:
        started = time.perf_counter()
        try:
            return self._check(*args, **kwargs)
        finally:
            self.ms.append((time.perf_counter() - started) * 1000)


def read_ms(app: ConversationApp, *, reads: int) -> float:
    """Median ms of one ``daily_spend`` (catch-up with nothing new, then both sums)."""
    today = datetime.now(UTC).date()
    times = []
    for n in range(reads):
        started = time.perf_counter()
        app.daily_spend(platform="bench", day=today, user=f"u{n % 3}", channel="c")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def grow_ledger(app: ConversationApp, *, rows: int) -> None:
    """``rows`` more ledger rows (1,000 people, 50 days), written straight into the table:
    folding that many replies through the application would take minutes."""
    start = date.today() - timedelta(days=50)
    values = [
        (f"grown-{n}", 2, 0.0, (start + timedelta(days=n % 50)).isoformat(), "bench",
         f"c{n % 40}", f"p{n % 1000}", "scripted", "bench", 100, 10, 0.001)
        for n in range(rows)
    ]  # fmt: skip
    with app.factory.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
        c.executemany(
            "INSERT INTO opsloop_usage (conversation_id, version, at, day, platform, channel, "
            "user_id, provider, model, input_tokens, output_tokens, cost) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )


async def measure(args: argparse.Namespace, work: Path) -> dict[str, float]:
    app = open_app(database_url=f"sqlite:///{work / 'budget.sqlite3'}")
    try:
        appends: list[float] = []
        plain, budgeted = service_on(app, DailyBudgets()), service_on(app, NEVER)
        check = TimedCheck()
        runner_module.over_budget = check  # type: ignore[assignment]
        without, with_ = [], []
        for n in range(args.conversations * args.rounds):  # ABBA: noise falls on both alike
            pair = [(plain, without), (budgeted, with_)]
            for service, times in pair if n % 2 == 0 else reversed(pair):
                times.append(await per_model_call_ms(service, f"{len(times)}-{id(times)}"))
            appends += baseline_appends_ms(app, appends=10, key=f"base-{n}")  # in between too
        small = read_ms(app, reads=300)
        grow_ledger(app, rows=args.ledger)
        large = read_ms(app, reads=300)
        return {
            "append": statistics.median(appends),
            "without": statistics.median(without),
            "with": statistics.median(with_),
            "check": statistics.median(check.ms),
            "read_small": small,
            "read_large": large,
        }
    finally:
        app.close()


def report(m: dict[str, float], args: argparse.Namespace) -> str:
    check = m["with"] - m["without"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("baseline: one event append (median)", f"{m['append']:.2f} ms"),
        ("baseline: loop per model call, no budgets", f"{m['without']:.2f} ms"),
        ("loop per model call, all three budgets set", f"{m['with']:.2f} ms"),
        ("difference per model call (with - without)", f"{check:.2f} ms"),
        ("loop with / without budgets ratio", f"{m['with'] / m['without']:.2f}x"),
        ("the check itself, in its thread (median)", f"{m['check']:.2f} ms"),
        ("check / append ratio", f"{m['check'] / m['append']:.2f}x"),
        ("check / loop-per-model-call ratio", f"{m['check'] / m['without']:.2f}x"),
        ("daily_spend alone, small ledger (median)", f"{m['read_small']:.3f} ms"),
        (f"daily_spend alone, ledger + {args.ledger:,} rows", f"{m['read_large']:.3f} ms"),
        ("large / small ledger ratio", f"{m['read_large'] / m['read_small']:.2f}x"),
    ]
    lines = [
        "# Budget check benchmark",
        "",
        f"{stamp}, Python {platform.python_version()}, {platform.machine()}, SQLite file store, "
        f"scripted model, no-op sandbox; {args.rounds * args.conversations} conversations x "
        f"{MODEL_CALLS} model calls each way. "
        "`.venv/bin/python bench/bench_budget.py`",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ledger", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp:
        measured = asyncio.run(measure(args, Path(tmp)))
    text = report(measured, args)
    print(text)
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
