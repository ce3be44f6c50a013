"""``bot.providers.probe``: what ``opsloop doctor`` concludes from its two probe replies."""

from __future__ import annotations

from bot.providers.probe import (
    PROBE_TOKENS,
    Bounds,
    context_from,
    describe_bounds,
    judge,
    stop_word,
)


def test_the_stop_word_comes_from_the_second_half_of_the_first_reply() -> None:
    assert stop_word("there was a cat who sat on the mat") == "who"
    assert stop_word("") is None and stop_word("\n") is None and stop_word("one") is None


def test_a_server_that_stops_at_the_word_honours_stop_and_one_that_runs_past_does_not() -> None:
    honoured = judge(
        capped_tokens=PROBE_TOKENS,
        capped_finish="length",
        capped_text="a cat who sat",
        stop="sat",
        stopped_text="a cat who ",
    )
    ignored = judge(
        capped_tokens=PROBE_TOKENS + 40,
        capped_finish="stop",
        capped_text="a cat who sat",
        stop="sat",
        stopped_text="a cat who sat on the mat",
    )
    assert honoured == (True, True) and ignored == (False, False)


def test_without_usage_or_a_stop_word_the_verdict_is_could_not_tell() -> None:
    assert judge(
        capped_tokens=None, capped_finish="stop", capped_text="", stop=None, stopped_text=""
    ) == (None, None)
    bounds = Bounds(context_tokens=None, max_tokens=None, stop=None)
    line = describe_bounds(bounds, configured_context=8192)
    assert "opsloop assumes 8192" in line and line.count("could not tell") == 2


def test_the_context_window_is_read_from_whatever_key_the_server_uses() -> None:
    assert context_from({"max_model_len": 32768}) == 32768
    assert context_from({"gemma3.context_length": 32768, "general.name": "x"}) == 32768
    assert context_from({"id": "m"}) is None and context_from(None) is None
