"""``opsloop doctor``'s checks and report, with stand-ins for the model and the store."""

from __future__ import annotations

from bot.cli.doctor import Check, check_model, check_store, render
from bot.errors import ModelUnavailable, StoreUnreachable
from bot.surface import Coordinates


class _Model:
    def __init__(self, *, fails: bool) -> None:
        self.fails = fails
        self.closed = False

    @property
    def name(self) -> str:
        return "ollama:llama3.1"

    async def ping(self) -> float:
        if self.fails:
            raise ModelUnavailable("ollama:llama3.1 failed after 1 attempt: connection refused")
        return 42.0

    async def aclose(self) -> None:
        self.closed = True


async def test_the_model_check_reports_name_and_latency() -> None:
    model = _Model(fails=False)
    check = await check_model(make_model=lambda: model, provider="ollama")
    assert check.ok and "ollama:llama3.1" in check.detail and "42 ms" in check.detail
    assert model.closed


async def test_a_model_that_does_not_answer_fails_with_the_fix() -> None:
    check = await check_model(make_model=lambda: _Model(fails=True), provider="ollama")
    assert not check.ok and "connection refused" in check.detail
    assert "ollama serve" in check.fix


async def test_a_model_that_cannot_be_configured_fails_with_the_fix() -> None:
    def broken() -> _Model:
        raise ModelUnavailable("the groq provider needs GROQ_API_KEY")

    check = await check_model(make_model=broken, provider="groq")
    assert not check.ok and "GROQ_API_KEY" in check.fix


def test_an_unreachable_store_fails_with_the_fix() -> None:
    def unreachable() -> object:
        raise StoreUnreachable("cannot use the event store at postgresql://x: connection refused")

    check = check_store(open_app=unreachable, url="postgresql://u:***@db/opsloop")
    assert not check.ok and "start PostgreSQL" in check.fix


def test_a_readable_store_reports_its_conversations_and_schema_version() -> None:
    from bot.app.application import open_app

    def two() -> object:
        app = open_app(database_url="memory:")
        for thread in ("1", "2"):
            app.start_conversation(coordinates=Coordinates("cli", "h", "me", thread), by="me")
        return app

    check = check_store(open_app=two, url="memory:")
    assert check.ok and check.detail == "memory:: 2 conversations, schema v4"


def test_the_report_lists_each_problem_with_its_fix_and_what_is_broken() -> None:
    text = render(
        [
            Check("sandbox", True, "nsjail runs blocks"),
            Check("model", False, "connection refused", "start Ollama"),
        ]
    )
    assert "ok   sandbox: nsjail runs blocks" in text
    assert "FAIL model: connection refused\n     fix: start Ollama" in text
    assert text.endswith("broken: model")
