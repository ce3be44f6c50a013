"""The help screens say what the README says, without typer's type noise."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from bot.cli import app
from bot.cli.help import tidy
from bot.settings import env_name

runner = CliRunner()


def help_of(*words: str) -> str:
    import typer

    command = tidy(typer.main.get_command(app))
    done = runner.invoke(command, [*words, "--help"], env={"COLUMNS": "200"}, prog_name="opsloop")
    assert done.exit_code == 0, done.output
    return done.output


@pytest.mark.parametrize(
    "words", [(), ("ask",), ("chat",), ("serve", "slack"), ("sandbox", "run"), ("audit", "verify")]
)
def test_help_has_no_type_noise(words: tuple[str, ...]) -> None:
    text = help_of(*words)
    assert not re.search(r"<(bool|int|text|float|path)>|\{text\}|\bINTEGER\b", text)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("slack", ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OPSLOOP_DATABASE_URL", "OLLAMA_HOST")),
        ("discord", ("DISCORD_TOKEN", "OPSLOOP_PROVIDER", "OPSLOOP_CIPHER_KEY")),
        ("sandbox", ("OPSLOOP_SANDBOX_TOKEN", "OPSLOOP_NSJAIL", "OPSLOOP_DATA_DIR")),
    ],
)
def test_every_serve_help_lists_the_environment_variables_it_reads(
    command: str, expected: tuple[str, ...]
) -> None:
    text = help_of("serve", command)
    assert "Environment variables it reads" in text
    assert all(name in text for name in expected)


@pytest.mark.parametrize("command", ["slack", "discord"])
def test_serve_takes_the_model_like_every_command_that_talks_to_one(command: str) -> None:
    text = help_of("serve", command)
    assert "--provider" in text and "--model" in text and "--create" in text


def test_each_setting_has_the_variable_the_readme_names() -> None:
    assert env_name("ollama_host") == "OLLAMA_HOST"
    assert env_name("database_url") == "OPSLOOP_DATABASE_URL"
