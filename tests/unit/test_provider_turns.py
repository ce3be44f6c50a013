"""``bot.providers.turns``: what bounds a turn on the wire, and the tag a stop sequence took."""

from __future__ import annotations

from bot.ports import ChatMessage
from bot.providers.turns import (
    STOP_SEQUENCE,
    TurnCaps,
    close_stopped_block,
    finish_text,
    ollama_options,
    openai_limits,
    truncation,
    wire_messages,
)
from domain.helpers import parse_helpers
from domain.runaway import ReplyGuard

MESSAGES = [
    ChatMessage("system", "You are opsloop."),
    ChatMessage("user", "disk?"),
    ChatMessage("assistant", "<helpers>\ndf\n</helpers>"),
    ChatMessage("user", "Result of block t1b1"),
]


def test_the_limits_go_out_as_each_providers_own_fields() -> None:
    caps = TurnCaps(max_output_tokens=300)
    assert openai_limits(caps) == {"max_tokens": 300, "stop": [STOP_SEQUENCE]}
    assert ollama_options(caps, {"num_ctx": 8192}) == {
        "num_ctx": 8192,
        "num_predict": 300,
        "stop": [STOP_SEQUENCE],
    }


def test_a_model_without_a_system_role_gets_the_system_prompt_in_its_first_user_message() -> None:
    folded = wire_messages(MESSAGES, system_role=False)
    assert [m["role"] for m in folded] == ["user", "assistant", "user"]
    assert folded[0]["content"] == "You are opsloop.\n\ndisk?"
    assert wire_messages(MESSAGES, system_role=True)[0] == {
        "role": "system",
        "content": "You are opsloop.",
    }


def test_a_reply_stopped_inside_a_block_gets_its_closing_tag_back_and_its_block_runs() -> None:
    stopped = "Computing.\n<helpers>\nprint(2**100)\n"
    closed = close_stopped_block(stopped)
    assert closed == stopped + STOP_SEQUENCE
    assert [b.code for b in parse_helpers(closed).blocks] == ["print(2**100)"]


def test_a_reply_with_its_block_closed_or_without_blocks_is_left_as_it_is() -> None:
    for text in ("The answer is 42.", "<helpers>\nprint(1)\n</helpers>", ""):
        assert close_stopped_block(text) == text


def test_the_tag_is_given_back_only_when_the_provider_says_it_stopped() -> None:
    guard = ReplyGuard()
    guard.feed("<helpers>\nprint(1)\n")
    assert finish_text(guard, stopped=False) == "<helpers>\nprint(1)\n"
    assert finish_text(guard, stopped=True).endswith(STOP_SEQUENCE)


def test_a_length_finish_is_a_token_cut_unless_a_block_already_closed() -> None:
    open_guard = ReplyGuard()
    open_guard.feed("a long ramble")
    assert truncation(open_guard, length=True) == "tokens"
    assert truncation(open_guard, length=False) is None
    closed = ReplyGuard()
    closed.feed("<helpers>\nprint(1)\n</helpers>\nmore")
    assert truncation(closed, length=True) is None
