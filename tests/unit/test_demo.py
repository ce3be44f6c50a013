"""The demo's scripted model and ``opsloop doctor``'s checks, without real parts."""

from __future__ import annotations

from bot.cli.demo import (
    NO_RESULT,
    PLACEHOLDER,
    DemoModel,
    demo_model,
    last_stdout,
    load_demo_script,
)
from bot.cli.doctor import Check, check_model, check_store, render
from bot.errors import ModelUnavailable, StoreUnreachable
from bot.ports import ChatMessage
from bot.prompt.system import BlockOutcome, render_result
from domain.helpers import parse_helpers


def result_message(*outcomes: BlockOutcome) -> ChatMessage:
    return ChatMessage(role="user", content="\n\n".join(render_result(o) for o in outcomes))


def ran(block_id: str, stdout: str, stderr: str = "") -> BlockOutcome:
    return BlockOutcome(
        block_id=block_id,
        language="python",
        code="x",
        status="succeeded",
        exit_code=0,
        stdout=stdout,
        stderr=stderr,
    )


def test_last_stdout_quotes_the_last_block_of_the_newest_results() -> None:
    messages = [
        ChatMessage("user", "question"),
        ChatMessage("assistant", "turn 1"),
        result_message(ran("t1b1", "old\n")),
        ChatMessage("assistant", "turn 2"),
        result_message(ran("t2b1", "240\n"), ran("t2b2", "api: 9 errors\n", stderr="warning")),
    ]
    assert last_stdout(messages) == "api: 9 errors\n"


def test_last_stdout_is_empty_when_the_last_block_did_not_run() -> None:
    refused = BlockOutcome(
        block_id="t1b2", language="python", code="x", status="refused", detail="sandbox down"
    )
    assert last_stdout([result_message(ran("t1b1", "something\n"), refused)]) == ""


def test_the_demo_script_is_a_multi_step_loop_ending_in_a_quoted_result() -> None:
    question, turns = load_demo_script()
    blocks = [len(parse_helpers(t.text).blocks) for t in turns]
    assert question and blocks == [1, 2, 0]
    assert PLACEHOLDER in turns[-1].text
    assert "/workspace/app.log" in turns[0].text and "/workspace/app.log" in turns[1].text


async def test_the_demo_model_answers_with_what_the_sandbox_printed() -> None:
    _, model = demo_model(chunk_delay=0)
    messages = [
        ChatMessage("user", "q"),
        ChatMessage("assistant", "1"),
        result_message(ran("t1b1", "a")),
        ChatMessage("assistant", "2"),
        result_message(ran("t2b2", "api logged the most errors\n")),
    ]
    streamed: list[str] = []

    async def sink(chunk: str) -> None:
        streamed.append(chunk)

    reply = await model.reply(messages, on_text=sink)

    assert "api logged the most errors" in reply.text and PLACEHOLDER not in reply.text
    assert "".join(streamed) == reply.text


def test_the_demo_model_admits_it_has_no_result_when_nothing_was_printed() -> None:
    _, turns = load_demo_script()
    model = DemoModel(turns)
    messages = [
        ChatMessage("assistant", "1"),
        ChatMessage("assistant", "2"),
        result_message(ran("t2b2", "")),
    ]
    assert model.turn_for(messages).text == NO_RESULT


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


def test_a_readable_store_reports_its_conversations() -> None:
    class _App:
        def list_conversations(self) -> list[int]:
            return [1, 2]

        def close(self) -> None:
            pass

    check = check_store(open_app=_App, url="sqlite:///x")
    assert check.ok and "2 conversations" in check.detail


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
