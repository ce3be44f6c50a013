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
