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


def test_warm_kernels_are_on_by_default_with_the_issues_limits(tmp_path: Path) -> None:
    from bot.cli.sandboxing import kernel_options_from
    from sandbox.kernels import KernelOptions

    sandbox = Policy().sandbox
    assert (sandbox.warm_kernels, sandbox.kernel_idle_seconds, sandbox.max_kernels) == (
        True,
        600.0,
        32,
    )
    assert sandbox.prestarted == 2
    assert kernel_options_from(sandbox) == KernelOptions()


def test_warm_kernel_keys_are_read_and_false_turns_them_off(tmp_path: Path) -> None:
    from bot.cli.sandboxing import kernel_options_from

    path = tmp_path / "opsloop.toml"
    path.write_text(
        "[sandbox]\nkernel_idle_seconds = 30\nmax_kernels = 4\nprestarted = 0\n"
        "kernel_max_age_seconds = 900\n"
    )
    options = kernel_options_from(load_policy(path).sandbox)
    assert options is not None
    assert (options.idle_seconds, options.max_kernels, options.prestarted) == (30, 4, 0)
    assert options.max_age_seconds == 900
    path.write_text("[sandbox]\nwarm_kernels = false\n")
    assert kernel_options_from(load_policy(path).sandbox) is None


@pytest.mark.parametrize(
    "line",
    [
        "max_kernels = 0",
        "kernel_idle_seconds = -1",
        "prestarted = -1",
        "kernel_max_age_seconds = 7200",
    ],
)
def test_a_warm_kernel_limit_that_makes_no_sense_is_a_clear_error(
    tmp_path: Path, line: str
) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text(f"[sandbox]\n{line}\n")
    with pytest.raises(ConfigError, match=f"sandbox.{line.split()[0]}"):
        load_policy(path)


def test_a_turn_is_bounded_by_default_and_each_model_may_have_its_own_bounds(
    tmp_path: Path,
) -> None:
    assert (Policy().models.max_output_tokens, Policy().models.turn_seconds) == (2048, 180.0)
    path = tmp_path / "opsloop.toml"
    path.write_text(
        "[models]\nmax_output_tokens = 512\n\n"
        '[models."openai:gemma-3-270m"]\nmax_output_tokens = 128\nturn_seconds = 30\n'
        "system_role = false\n"
    )
    models = load_policy(path).models
    assert models.max_output_tokens_for(provider="openai", model="gemma-3-270m") == 128
    assert models.turn_seconds_for(provider="openai", model="gemma-3-270m") == 30
    assert models.override_for(provider="openai", model="gemma-3-270m").system_role is False
    assert models.max_output_tokens_for(provider="ollama", model="llama3.1") == 512
    assert models.turn_seconds_for(provider="ollama", model="llama3.1") == 180.0


def test_a_typo_in_a_models_own_table_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.toml"
    path.write_text('[models."gemma"]\nmax_output_token = 128\n')
    with pytest.raises(ConfigError, match="max_output_token"):
        load_policy(path)
