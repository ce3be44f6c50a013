from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Policy, load_policy
from bot.errors import ConfigError


def test_no_file_means_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_policy(None) == Policy()


def test_a_typo_in_a_key_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text("[loop]\nturns_per_mesage = 3\n")
    with pytest.raises(ConfigError, match="loop.turns_per_mesage"):
        load_policy(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text("[loop\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(path)


def test_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text('[loop]\nturns_per_message = 3\n[prices."gpt-4o"]\ninput = 2.5\noutput = 10\n')
    policy = load_policy(path)
    assert policy.loop.turns_per_message == 3
    assert policy.prices["gpt-4o"].output == 10


def test_redact_env_names_variables_and_refuses_anything_else(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[redact]\nenv = ["PGPASSWORD", "AUDIT_KEY"]\n')
    assert load_policy(good).redact.env == ["PGPASSWORD", "AUDIT_KEY"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[redact]\nenv = ["NOT A NAME]"]\nextra = 1\n')
    with pytest.raises(ConfigError) as caught:
        load_policy(bad)
    assert "redact." in str(caught.value)


def test_budgets_are_read_into_the_runners_daily_budgets(tmp_path: Path) -> None:
    from bot.cli.bootstrap import daily_budgets
    from domain.budgets import DailyBudgets

    path = tmp_path / "opsloop.toml"
    path.write_text("[budgets]\nper_user_daily_cost = 2.0\nper_channel_daily_cost = 20\n")
    policy = load_policy(path)
    assert daily_budgets(policy) == DailyBudgets(per_user_cost=2.0, per_channel_cost=20.0)
    assert daily_budgets(Policy()).unlimited  # unset means unlimited


@pytest.mark.parametrize(
    "line",
    [
        "per_user_daily_cost = 0",
        "per_user_daily_cost = -1.5",
        "per_channel_daily_cost = inf",
        "per_user_daily_tokens = 0",
        "per_user_daily_tokens = 1.5",
        "per_person_daily_cost = 2.0",
    ],
)
def test_a_budget_that_makes_no_sense_or_a_typo_is_a_clear_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text(f"[budgets]\n{line}\n")
    with pytest.raises(ConfigError, match=f"budgets.{line.split()[0]}"):
        load_policy(path)
