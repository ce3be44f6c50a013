"""``make_model`` end to end: settings and opsloop.toml to a fallback chain of real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config import ModelsPolicy, Policy, PromptPolicy
from bot.errors import ModelUnavailable
from bot.ports import ChatMessage
from bot.providers import FallbackModel, make_model
from bot.settings import Settings
from tests.integration.llm_wire import COMPLETION_TOKENS, Step, WireServer

PROMPT = [ChatMessage("user", "Is ci-3's disk full?")]
QUICK = Policy(models=ModelsPolicy(attempts=2, backoff_seconds=0.01, backoff_max_seconds=0.02))


@pytest.fixture
async def servers() -> AsyncIterator[tuple[WireServer, WireServer]]:
    ollama_server, openai_server = WireServer(), WireServer()
    await ollama_server.start()
    await openai_server.start()
    yield ollama_server, openai_server
    await ollama_server.close()
    await openai_server.close()


def settings_for(ollama_url: str, openai_url: str) -> Settings:
    values: dict[str, object] = {
        "provider": "ollama",
        "model": "llama3.1",
        "fallback": "openai:gpt-4o-mini",
        "OLLAMA_HOST": ollama_url,
        "OPENAI_BASE_URL": f"{openai_url}/v1",
        "OPENAI_API_KEY": "sk-test",
        "GROQ_API_KEY": None,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


async def test_a_failing_provider_falls_back_to_the_next_and_says_so(
    servers: tuple[WireServer, WireServer],
) -> None:
    ollama_server, openai_server = servers
    ollama_server.plan = [Step(status=500), Step(status=500)]
    openai_server.plan = [Step(text="Yes, 98% used.")]
    model = make_model(settings=settings_for(ollama_server.url, openai_server.url), policy=QUICK)
    assert isinstance(model, FallbackModel)
    reply = await model.reply(PROMPT)
    await model.aclose()
    assert (reply.provider, reply.model, reply.text) == ("openai", "gpt-4o-mini", "Yes, 98% used.")
    assert reply.output_tokens == COMPLETION_TOKENS and reply.attempts == 1
    [failure] = reply.failures
    assert (failure.provider, failure.model, failure.attempts) == ("ollama", "llama3.1", 2)
    assert failure.error.startswith("HTTP 500")
    assert len(ollama_server.seen) == 2 and len(openai_server.seen) == 1


async def test_when_the_whole_chain_fails_every_failure_is_reported(
    servers: tuple[WireServer, WireServer],
) -> None:
    ollama_server, openai_server = servers
    ollama_server.plan = [Step(status=503), Step(status=503)]
    openai_server.plan = [Step(status=401)]
    model = make_model(settings=settings_for(ollama_server.url, openai_server.url), policy=QUICK)
    with pytest.raises(ModelUnavailable) as caught:
        await model.reply(PROMPT)
    await model.aclose()
    assert [(f.provider, f.attempts) for f in caught.value.failures] == [
        ("ollama", 2),
        ("openai", 1),
    ]
    assert str(caught.value).startswith(
        "no model answered: ollama:llama3.1 failed after 2 attempts"
    )
    assert "check OPENAI_API_KEY" in str(caught.value)


async def test_a_healthy_primary_answers_without_touching_the_fallback(
    servers: tuple[WireServer, WireServer],
) -> None:
    ollama_server, openai_server = servers
    model = make_model(settings=settings_for(ollama_server.url, openai_server.url), policy=QUICK)
    reply = await model.reply(PROMPT)
    await model.aclose()
    assert reply.provider == "ollama" and reply.failures == ()
    assert openai_server.seen == []


async def test_ollama_is_asked_for_the_context_window_the_prompt_is_fitted_to(
    servers: tuple[WireServer, WireServer],
) -> None:
    ollama_server, openai_server = servers
    policy = QUICK.model_copy(
        update={"prompt": PromptPolicy(context_tokens={"ollama:llama3.1": 32768})}
    )
    model = make_model(settings=settings_for(ollama_server.url, openai_server.url), policy=policy)
    await model.reply(PROMPT)
    await model.aclose()
    assert ollama_server.seen[0].body["options"]["num_ctx"] == 32768
