from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Policy
from bot.errors import ConfigError, ModelUnavailable
from bot.ports import ChatMessage
from bot.providers import FallbackModel, ModelChoice, ScriptedModel, ScriptedTurn, make_model
from bot.providers.fallback import parse_fallback
from bot.providers.ollama import OllamaModel
from bot.providers.openai_compat import GROQ_BASE_URL, OpenAICompatModel
from bot.settings import Settings

PROMPT = [ChatMessage("user", "hello")]


def settings(**values: object) -> Settings:
    """Settings from these values only: nothing from the environment or a .env file."""
    base: dict[str, object] = {
        "provider": "ollama",
        "model": None,
        "fallback": "",
        "OLLAMA_HOST": "http://127.0.0.1:11434",
        "OPENAI_API_KEY": None,
        "OPENAI_BASE_URL": None,
        "GROQ_API_KEY": None,
    }
    return Settings(_env_file=None, **(base | values))  # type: ignore[arg-type]


def test_fallback_entries_are_provider_model_pairs() -> None:
    assert parse_fallback("ollama:llama3.1, groq:llama-3.3-70b-versatile") == (
        ModelChoice("ollama", "llama3.1"),
        ModelChoice("groq", "llama-3.3-70b-versatile"),
    )


def test_a_fallback_model_may_contain_colons_and_a_bare_provider_means_its_default() -> None:
    assert parse_fallback("ollama:llama3.1:8b,groq") == (
        ModelChoice("ollama", "llama3.1:8b"),
        ModelChoice("groq", None),
    )
    assert parse_fallback("  ") == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("olama:llama3.1", "unknown provider 'olama'"),
        ("ollama:llama3.1,,groq", "empty entry at position 2"),
        ("ollama:llama3.1,", "empty entry at position 2"),
        (":llama3.1", "no provider before the colon"),
        ("groq:", "no model after the colon"),
    ],
)
def test_a_bad_fallback_is_a_clear_config_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fallback(spec)


def test_the_provider_and_model_come_from_the_settings() -> None:
    model = make_model(settings=settings(provider="ollama", model="qwen2.5"), policy=Policy())
    assert isinstance(model, OllamaModel) and model.name == "ollama:qwen2.5"


def test_explicit_arguments_win_and_another_providers_model_is_not_borrowed() -> None:
    chosen = settings(provider="ollama", model="qwen2.5", GROQ_API_KEY="gsk")
    model = make_model(settings=chosen, policy=Policy(), provider="groq")
    assert isinstance(model, OpenAICompatModel)
    assert model.name == "groq:llama-3.3-70b-versatile" and model.base_url == GROQ_BASE_URL
    named = make_model(
        settings=chosen, policy=Policy(), provider="groq", model="llama-3.1-8b-instant"
    )
    assert named.name == "groq:llama-3.1-8b-instant"


def test_a_missing_api_key_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="GROQ_API_KEY"):
        make_model(settings=settings(provider="groq"), policy=Policy())
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        make_model(settings=settings(provider="openai"), policy=Policy())


def test_a_local_openai_compatible_server_needs_no_key() -> None:
    local = settings(provider="openai", model="qwen", OPENAI_BASE_URL="http://127.0.0.1:8080/v1")
    model = make_model(settings=local, policy=Policy())
    assert isinstance(model, OpenAICompatModel) and model.base_url == "http://127.0.0.1:8080/v1"


def test_an_unknown_provider_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider 'olama'"):
        make_model(settings=settings(provider="olama"), policy=Policy())


def test_the_scripted_provider_reads_its_script_from_the_model_setting(tmp_path: Path) -> None:
    script = tmp_path / "demo.yaml"
    script.write_text("turns:\n  - hello\n")
    model = make_model(settings=settings(provider="scripted", model=str(script)), policy=Policy())
    assert isinstance(model, ScriptedModel) and model.turns[0].text == "hello"
    with pytest.raises(ConfigError, match="needs a model"):
        make_model(settings=settings(provider="scripted"), policy=Policy())


def test_the_fallback_chain_follows_the_primary_without_duplicates() -> None:
    chain = settings(
        provider="ollama",
        model="llama3.1",
        fallback="ollama:llama3.1,groq,openai:gpt-4o",
        GROQ_API_KEY="gsk",
        OPENAI_API_KEY="sk",
    )
    model = make_model(settings=chain, policy=Policy())
    assert isinstance(model, FallbackModel)
    assert [m.name for m in model.models] == [
        "ollama:llama3.1",
        "groq:llama-3.3-70b-versatile",
        "openai:gpt-4o",
    ]
    assert model.name == "ollama:llama3.1"


async def test_the_fallback_answers_and_records_who_failed_before() -> None:
    down = ScriptedModel([ScriptedTurn(unavailable="HTTP 503")], label="first")
    up = ScriptedModel(["hi"], label="second")
    reply = await FallbackModel([down, up]).reply(PROMPT)
    assert (reply.text, reply.model) == ("hi", "second")
    assert [(f.model, f.error) for f in reply.failures] == [("first", "HTTP 503")]


async def test_when_every_model_fails_the_error_lists_them_all() -> None:
    one = ScriptedModel([ScriptedTurn(unavailable="HTTP 503")], label="one")
    two = ScriptedModel([ScriptedTurn(unavailable="HTTP 401")], label="two")
    with pytest.raises(ModelUnavailable) as caught:
        await FallbackModel([one, two]).reply(PROMPT)
    assert [f.model for f in caught.value.failures] == ["one", "two"]
    assert str(caught.value) == (
        "no model answered: scripted:one failed after 1 attempt: HTTP 503; "
        "scripted:two failed after 1 attempt: HTTP 401"
    )


async def test_the_sdks_do_no_retries_of_their_own() -> None:
    ollama_model = make_model(settings=settings(), policy=Policy())
    openai_model = make_model(
        settings=settings(provider="openai", OPENAI_API_KEY="sk"), policy=Policy()
    )
    assert isinstance(ollama_model, OllamaModel) and isinstance(openai_model, OpenAICompatModel)
    assert openai_model._sdk().max_retries == 0
    # httpx retries only failed connects, and only when its transport is told to (default 0).
    assert ollama_model._sdk()._client._transport._pool._retries == 0
    await ollama_model.aclose()
    await openai_model.aclose()


@given(spec=st.text(alphabet="ollamgrqpenaiscd:.,- 0123456789", max_size=40))
def test_any_fallback_spec_parses_or_is_a_config_error(spec: str) -> None:
    try:
        chain = parse_fallback(spec)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert all(c.provider in ("ollama", "openai", "groq", "scripted") for c in chain)
    assert all(c.model is None or (c.model and c.model == c.model.strip()) for c in chain)
