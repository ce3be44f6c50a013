"""Budgets across conversations and processes, on real stores: the same class runs against a
SQLite file and PostgreSQL.

Spend recorded by one process (an application of its own, or a real ``opsloop ask`` child
process) stops the same person in another conversation, channel and process, because the
budget is read from the ledger that follows the shared event log. Two processes catching up
at once count every reply once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from bot.app.application import ConversationApp, open_app
from bot.config import Policy
from bot.loop.runner import LoopRunner
from bot.loop.service import OpsloopService
from bot.prompt.builder import prompt_builder
from bot.providers.pricing import PriceTable, Rate
from bot.surface import Coordinates, Incoming, Outcome
from domain.budgets import DailyBudgets
from domain.limits import LoopLimits
from tests.port_fakes import FakeSandbox, RecordingProgress, WatchedModel
from tests.spend import StoreClock, spend, where

PRICES = PriceTable(overrides={"scripted:*": Rate(input=1.0, output=1.0)}, defaults={})
TINY = 0.000001  # USD: any priced reply goes over it
SCRIPT = '[[turns]]\ntext = "The disk is fine."\n'
CONFIG = """
[budgets]
per_user_daily_cost = 0.000001

[prices."scripted:*"]
input = 1.0
output = 1.0
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/events.sqlite3"
        return
    import psycopg

    base = request.getfixturevalue("postgres_url")
    name = f"opsloop_b_{uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def opened(database_url: str) -> Iterator[Callable[[], ConversationApp]]:
    """Opens applications (each its own connections, like a process) on the test's store."""
    apps: list[ConversationApp] = []

    def open_() -> ConversationApp:
        apps.append(open_app(database_url=database_url))
        return apps[-1]

    yield open_
    for app in apps:
        app.close()


def service_on(app: ConversationApp, budgets: DailyBudgets) -> tuple[OpsloopService, WatchedModel]:
    model = WatchedModel(["The disk is fine."], prices=PRICES)
    runner = LoopRunner(
        app=app,
        model=model,
        sandbox=FakeSandbox(),
        limits=LoopLimits(),
        build_prompt=prompt_builder(policy=Policy(), model_name=model.name),
        budgets=budgets,
        now=StoreClock(app),
    )
    return OpsloopService(app=app, runner=runner, model_name=model.name), model


async def ask(service: OpsloopService, *, author: str, channel: str) -> Outcome:
    incoming = Incoming(
        coordinates=Coordinates("slack", "T1", channel, uuid4().hex),
        message_key=uuid4().hex,
        author=author,
        text="why is disk full?",
    )
    receipt = await service.receive(incoming)
    return await service.run(receipt.conversation_id, RecordingProgress())


def opsloop(url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``opsloop`` console script in a child process on the test's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        OPSLOOP_DATABASE_URL=url,
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_CONFIG=str(home / "opsloop.toml"),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        OPSLOOP_SANDBOX="unsafe-local",  # the script runs no block
    )
    return subprocess.run(
        [str(Path(sys.executable).with_name("opsloop")), *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def day_of_event(app: ConversationApp, cid: str, kind: str) -> date:
    stamp = next(e["timestamp"] for e in app.timeline(UUID(cid)) if e["type"] == kind)
    return date.fromisoformat(stamp[:10])


class TestBudgetsAcrossProcesses:
    """The same tests on a SQLite file and on PostgreSQL."""

    async def test_spend_recorded_by_one_process_stops_the_person_in_another(
        self, opened: Callable[[], ConversationApp]
    ) -> None:
        first, _ = service_on(opened(), DailyBudgets(per_user_cost=TINY))
        second, second_model = service_on(opened(), DailyBudgets(per_user_cost=TINY))

        answered = await ask(first, author="U1", channel="C1")
        stopped = await ask(second, author="U1", channel="C2")  # another channel and process
        other = await ask(second, author="U2", channel="C2")

        assert answered.answer == "The disk is fine."
        assert stopped.stopped_reason == "budget"
        assert stopped.detail.startswith("You (U1) have used $")
        assert other.answer == "The disk is fine."
        assert len(second_model.prompts) == 1  # U2's call only: U1's never reached the model

    async def test_a_channel_budget_counts_every_process_and_person(
        self, opened: Callable[[], ConversationApp]
    ) -> None:
        first, _ = service_on(opened(), DailyBudgets(per_channel_cost=TINY))
        second, _ = service_on(opened(), DailyBudgets(per_channel_cost=TINY))

        await ask(first, author="U1", channel="C012PROD")
        stopped = await ask(second, author="U2", channel="C012PROD")

        assert stopped.stopped_reason == "budget"
        assert stopped.detail.startswith("This channel (C012PROD) has used $")

    def test_two_processes_catching_up_at_once_count_every_reply_once(
        self, opened: Callable[[], ConversationApp]
    ) -> None:
        writer = opened()
        for n in range(60):
            spend(writer, author=f"U{n % 3}", at=where(f"C{n % 2}", str(n % 7)), cost=0.25)
        readers = [opened(), opened(), opened()]
        start = threading.Barrier(len(readers))
        errors: list[BaseException] = []

        def catch_up(app: ConversationApp) -> None:
            try:
                start.wait()
                app.usage_log.catch_up()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=catch_up, args=(app,)) for app in readers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        for app in (writer, *readers):
            rows = {r.key: (r.turns, r.cost) for r in app.usage(by="user")}
            assert rows == {"slack:U0": (20, 5.0), "slack:U1": (20, 5.0), "slack:U2": (20, 5.0)}

    def test_a_real_second_os_process_is_stopped_by_what_the_first_spent(
        self, database_url: str, tmp_path: Path
    ) -> None:
        (tmp_path / "opsloop.toml").write_text(CONFIG, encoding="utf-8")
        (tmp_path / "script.toml").write_text(SCRIPT, encoding="utf-8")

        first = opsloop(database_url, tmp_path, "ask", "why is disk full?", "--json")
        second = opsloop(database_url, tmp_path, "ask", "and now?", "--json")
        usage = opsloop(database_url, tmp_path, "usage", "--by", "user", "--format", "json")

        assert first.returncode == 0, first.stderr
        answered, refused = json.loads(first.stdout), json.loads(second.stdout)
        assert answered["answer"] == "The disk is fine." and answered["cost"] > 0
        app = open_app(database_url=database_url)
        try:
            same_day = day_of_event(app, answered["conversation_id"], "ModelReplied") == (
                day_of_event(app, refused["conversation_id"], "MessageReceived")
            )
        finally:
            app.close()
        if same_day:
            assert second.returncode == 1
            assert refused["stopped_reason"] == "budget" and refused["cost"] == 0
            assert refused["detail"].startswith("You (")
            assert "daily budget today; it resets at 00:00 UTC, in " in refused["detail"]
        else:  # the two runs fell either side of 00:00 UTC: the budget was reset in between
            assert refused["answer"] == "The disk is fine."
        rows = [json.loads(line) for line in usage.stdout.splitlines()]
        assert usage.returncode == 0 and len(rows) == 1
        assert rows[0]["turns"] == (1 if same_day else 2)
        assert rows[0]["cost"] == pytest.approx(answered["cost"] + refused["cost"])
