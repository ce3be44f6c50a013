from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import ConfigError, ModelUnavailable
from bot.ports import ChatMessage
from bot.providers.scripted import (
    SCRIPT_EXHAUSTED,
    ScriptedModel,
    ScriptedTurn,
    chunks,
    load_script,
)

TURN_ONE = "Let me look.\n<helpers>\nprint(6 * 7)\n</helpers>\n"
USER = ChatMessage("user", "what is six times seven?")


def after(*assistant_turns: str) -> list[ChatMessage]:
    """A prompt that already holds the given assistant turns."""
    messages = [ChatMessage("system", "you are a bot"), USER]
    for text in assistant_turns:
        messages += [ChatMessage("assistant", text), ChatMessage("user", "exit 0")]
    return messages


async def test_it_streams_the_turn_in_chunks_that_join_to_the_text() -> None:
    model = ScriptedModel([TURN_ONE], chunk_chars=8)
    seen: list[str] = []

    async def sink(chunk: str) -> None:
        seen.append(chunk)

    reply = await model.reply(after(), on_text=sink)
    assert len(seen) > 1 and "".join(seen) == TURN_ONE == reply.text


async def test_the_turn_follows_the_number_of_assistant_messages_in_the_prompt() -> None:
    model = ScriptedModel([TURN_ONE, "The answer is 42."])
    assert (await model.reply(after())).text == TURN_ONE
    assert (await model.reply(after(TURN_ONE))).text == "The answer is 42."
    # The same prompt again (a resumed conversation) gets the same turn: no hidden state.
    assert (await model.reply(after(TURN_ONE))).text == "The answer is 42."


async def test_a_finished_script_answers_a_fixed_closing_message() -> None:
    model = ScriptedModel(["only turn"])
    assert (await model.reply(after("only turn"))).text == SCRIPT_EXHAUSTED


async def test_an_unavailable_turn_raises_model_unavailable_with_its_failure() -> None:
    model = ScriptedModel([ScriptedTurn(unavailable="the GPU caught fire")])
    with pytest.raises(ModelUnavailable, match="the GPU caught fire") as caught:
        await model.reply(after())
    assert caught.value.failures[0].provider == "scripted"


async def test_its_usage_is_estimated_and_free() -> None:
    reply = await ScriptedModel(["abcdefgh"]).reply(after())
    assert (reply.provider, reply.model, reply.attempts) == ("scripted", "inline", 1)
    assert reply.tokens_estimated and reply.output_tokens == 3  # eight bytes, three per token
    assert (reply.cost, reply.priced) == (0.0, True)


def test_a_toml_script_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "demo.toml"
    path.write_text(
        '[[turns]]\ntext = """\nhi\n<helpers>\nprint(1)\n</helpers>\n"""\n'
        '[[turns]]\nunavailable = "down"\n'
    )
    turns = load_script(path)
    assert turns[0].text == "hi\n<helpers>\nprint(1)\n</helpers>\n"
    assert turns[1] == ScriptedTurn(unavailable="down")


def test_a_yaml_script_may_list_plain_strings(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("turns:\n  - text: |\n      first\n  - second\n")
    assert [t.text for t in load_script(path)] == ["first\n", "second"]
    model = ScriptedModel.from_file(path)
    assert model.name == f"scripted:{path}"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("s.toml", "[[turns]\n", "not valid TOML"),
        ("s.yaml", "turns: [\n", "not valid YAML"),
        ("s.yaml", "turns: []\n", "has no turns"),
        ("s.toml", "title = 'x'\n", "has no turns"),
        ("s.yaml", "turns:\n  - 3\n", "turn 1 of script"),
        ("s.yaml", "turns:\n  - {txt: hi}\n", "turn 1 of script"),
    ],
)
def test_a_bad_script_is_a_clear_config_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_script(path)


def test_a_missing_script_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the script"):
        load_script(tmp_path / "nope.toml")


def test_chunks_cut_at_spaces_and_lose_nothing() -> None:
    text = "alpha beta gamma deltaepsilonzeta"
    pieces = chunks(text, size=8)
    assert "".join(pieces) == text
    assert all(len(p) <= 8 for p in pieces)
    assert pieces[0] == "alpha "


@given(text=st.text(max_size=300), size=st.integers(min_value=1, max_value=40))
def test_chunks_always_rebuild_the_text_within_the_size(text: str, size: int) -> None:
    pieces = chunks(text, size=size)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= size for p in pieces)
