"""Token estimates: one rule for the prompt builder and for providers that report no usage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.tokens import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, estimate_prompt_tokens, estimate_tokens


def test_a_token_is_counted_for_every_three_bytes_rounded_up() -> None:
    assert estimate_tokens("") == 0
    assert (estimate_tokens("abc"), estimate_tokens("abcd")) == (1, 2)
    assert estimate_tokens("日本") == 2  # three bytes a character


def test_a_prompt_counts_its_messages_and_the_templates_overhead() -> None:
    assert estimate_prompt_tokens([]) == 0
    assert (
        estimate_prompt_tokens(["a" * 30, "b" * 6])
        == 10 + 2 + 2 * MESSAGE_OVERHEAD + PROMPT_OVERHEAD
    )


@given(st.text(), st.text())
def test_the_estimate_never_undercounts_a_token_per_four_characters_and_adds_up(
    a: str, b: str
) -> None:
    assert estimate_tokens(a) >= -(-len(a) // 4)
    assert estimate_tokens(a + b) <= estimate_tokens(a) + estimate_tokens(b)


def test_the_prompt_builder_and_the_providers_use_this_same_rule() -> None:
    from bot.prompt import context
    from bot.providers import base

    assert context.estimate_tokens is estimate_tokens
    assert base.estimate_tokens is estimate_tokens
