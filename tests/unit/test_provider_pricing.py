from __future__ import annotations

import pytest

from bot.config import Policy, Price
from bot.providers.pricing import PriceTable, Rate, default_rates, price_table


def test_a_default_price_costs_its_rate_per_million_tokens() -> None:
    cost = PriceTable().cost(
        provider="openai", model="gpt-4o", input_tokens=1_000_000, output_tokens=500_000
    )
    assert cost.priced
    assert cost.usd == pytest.approx(2.5 + 5.0)


def test_an_unknown_model_costs_nothing_and_is_marked_unpriced() -> None:
    cost = PriceTable().cost(
        provider="openai", model="my-finetune", input_tokens=9, output_tokens=9
    )
    assert (cost.usd, cost.priced) == (0.0, False)


def test_local_ollama_models_are_priced_at_zero() -> None:
    cost = PriceTable().cost(
        provider="ollama", model="qwen2.5:7b", input_tokens=10, output_tokens=10
    )
    assert (cost.usd, cost.priced) == (0.0, True)


def test_opsloop_toml_prices_win_over_the_defaults() -> None:
    policy = Policy(prices={"openai:gpt-4o": Price(input=1.0, output=2.0)})
    cost = price_table(policy).cost(
        provider="openai", model="gpt-4o", input_tokens=1_000_000, output_tokens=1_000_000
    )
    assert cost.usd == pytest.approx(3.0)


def test_a_bare_model_key_prices_that_model_on_any_provider() -> None:
    table = PriceTable(overrides={"llama3.1": Rate(1.0, 1.0)}, defaults={})
    assert table.rate(provider="openai", model="llama3.1") == Rate(1.0, 1.0)
    assert table.rate(provider="ollama", model="llama3.1") == Rate(1.0, 1.0)


def test_the_most_specific_key_wins_within_a_table() -> None:
    table = PriceTable(
        overrides={"groq:*": Rate(9, 9), "m": Rate(5, 5), "groq:m": Rate(1, 1)}, defaults={}
    )
    assert table.rate(provider="groq", model="m") == Rate(1, 1)
    assert table.rate(provider="openai", model="m") == Rate(5, 5)
    assert table.rate(provider="groq", model="other") == Rate(9, 9)


def test_an_operator_wildcard_beats_a_specific_default() -> None:
    table = PriceTable(overrides={"groq:*": Rate(0, 0)}, defaults={"groq:m": Rate(1, 1)})
    assert table.rate(provider="groq", model="m") == Rate(0, 0)


def test_the_built_in_table_has_the_common_models_with_sane_prices() -> None:
    rates = default_rates()
    for key in ("openai:gpt-4o-mini", "groq:llama-3.3-70b-versatile", "ollama:*", "scripted:*"):
        assert key in rates
    assert all(0 <= r.input <= 100 and 0 <= r.output <= 200 for r in rates.values())
