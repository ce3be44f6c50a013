"""The demo's script and its model, which answers from what the sandbox printed."""

from __future__ import annotations

from bot.cli.demo import (
    NO_RESULT,
    PLACEHOLDER,
    DemoModel,
    demo_model,
    last_stdout,
    load_demo_script,
)
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


def test_the_built_in_demo_model_plays_its_turns_again_for_every_question() -> None:
    from bot.cli.demo import chat_demo_model

    model = chat_demo_model()
    _, turns = load_demo_script()
    first = [ChatMessage("user", "anything at all?")]
    assert model.turn_for(first) == turns[0]
    finished = [
        *first,
        ChatMessage("assistant", "1"),
        result_message(ran("t1b1", "wrote\n")),
        ChatMessage("assistant", "2"),
        result_message(ran("t2b2", "api logged the most errors\n")),
        ChatMessage("assistant", "3"),
    ]
    assert model.turn_for([*finished, ChatMessage("user", "and again?")]) == turns[0]
    assert "api logged the most errors" in model.turn_for(finished[:-1]).text


def test_scripted_demo_names_the_built_in_model_not_a_file(tmp_path: object) -> None:
    from bot.config import Policy
    from bot.providers import make_model
    from bot.settings import Settings

    model = make_model(settings=Settings(), policy=Policy(), provider="scripted", model="demo")
    assert model.name == "scripted:demo"
