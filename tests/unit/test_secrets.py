"""Which secrets the process knows: its own tokens, ``[redact] env`` and the tools'."""

from __future__ import annotations

import pytest

from bot.cli.bootstrap import redactor_for, tool_registry
from bot.config import Policy
from bot.secrets import known_secrets
from bot.settings import SECRET_SETTINGS, Settings

OWN = {
    "slack_bot_token": "xoxb-1-not-really-a-token",
    "openai_api_key": "sk-proj-abcdef0123456789",
    "cipher_key": "Y2lwaGVyLWtleS1ieXRlcy0wMTIzNDU2Nzg5YWI=",
    "database_url": "postgresql://opsloop:pa%24%24w0rd-here@db:5432/opsloop",
}


@pytest.fixture(autouse=True)
def no_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: the tests give their own values only."""
    for name in [*SECRET_SETTINGS.values(), "OPSLOOP_DATABASE_URL"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env file


def test_opsloop_names_its_own_secrets_after_their_variables() -> None:
    settings = Settings(**OWN)
    assert settings.secrets() == {
        "SLACK_BOT_TOKEN": "xoxb-1-not-really-a-token",
        "OPENAI_API_KEY": "sk-proj-abcdef0123456789",
        "OPSLOOP_CIPHER_KEY": "Y2lwaGVyLWtleS1ieXRlcy0wMTIzNDU2Nzg5YWI=",
        "OPSLOOP_DATABASE_URL": "pa$$w0rd-here",  # the password only, decoded
    }
    assert Settings(database_url="sqlite:///x.db").secrets() == {}


def test_redact_env_adds_the_variables_that_are_set_and_not_empty() -> None:
    policy = Policy.model_validate({"redact": {"env": ["PGPASSWORD", "UNSET", "EMPTY"]}})
    environ = {"PGPASSWORD": "correct-horse", "EMPTY": "", "OTHER": "not-listed-1"}
    assert known_secrets(settings=None, policy=policy, environ=environ) == {
        "PGPASSWORD": "correct-horse"
    }


def test_without_tools_the_redactor_knows_own_secrets_and_redact_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", "correct-horse-battery")
    policy = Policy.model_validate({"redact": {"env": ["PGPASSWORD"]}})
    redactor = redactor_for(settings=Settings(**OWN), policy=policy, tools=None)
    text = "key sk-proj-abcdef0123456789, pw correct-horse-battery"
    assert redactor.redact(text).text == "key [redacted:OPENAI_API_KEY], pw [redacted:PGPASSWORD]"


async def test_the_tools_redactor_is_the_processs_one_and_knows_every_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", "correct-horse-battery")
    monkeypatch.setenv("STATUS_TOKEN", "st-0a1b2c3d4e5f")
    tools = {
        "status": {
            "kind": "http",
            "url": "https://status.example.com/",
            "headers": {"Authorization": "Bearer ${env:STATUS_TOKEN}"},
        }
    }
    policy = Policy.model_validate({"tools": tools, "redact": {"env": ["PGPASSWORD"]}})
    registry = tool_registry(policy, settings=Settings(**OWN))
    assert registry is not None
    redactor = redactor_for(settings=Settings(**OWN), policy=policy, tools=registry)
    assert redactor is registry.redactor
    assert {"PGPASSWORD", "STATUS_TOKEN", "OPENAI_API_KEY"} <= redactor.names
    await registry.aclose()
