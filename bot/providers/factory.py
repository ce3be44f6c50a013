"""Builds the configured model: the chosen provider, then the ``OPSLOOP_FALLBACK`` chain."""

from __future__ import annotations

from pathlib import Path

from bot.config import Policy
from bot.errors import ConfigError
from bot.ports import ChatModel
from bot.prompt.context import context_tokens_for
from bot.providers.base import ProviderModel
from bot.providers.fallback import (
    PROVIDERS,
    FallbackModel,
    ModelChoice,
    parse_choice,
    parse_fallback,
)
from bot.providers.pricing import price_table
from bot.providers.retry import RetryPolicy
from bot.providers.turns import TurnCaps
from bot.settings import Settings

DEFAULT_MODELS = {"ollama": "llama3.1", "openai": "gpt-4o-mini", "groq": "llama-3.3-70b-versatile"}


def default_model(provider: str) -> str:
    """The model used when none is named; the scripted provider has none (it needs a file)."""
    if provider not in DEFAULT_MODELS:
        raise ConfigError(
            f"the {provider} provider needs a model: "
            "set OPSLOOP_MODEL (or --model) to a script file, or to demo for the built-in one"
        )
    return DEFAULT_MODELS[provider]


def build_one(choice: ModelChoice, *, settings: Settings, policy: Policy) -> ProviderModel:
    """One provider's model, configured from ``settings`` and ``policy``."""
    model = choice.model or default_model(choice.provider)
    retry = RetryPolicy.from_policy(policy.models)
    prices = price_table(policy)
    stream = policy.models.stream
    caps = turn_caps(policy, provider=choice.provider, model=model)
    if choice.provider == "ollama":
        from bot.providers.ollama import OllamaModel  # the SDKs load only when used

        window = context_tokens_for(policy.prompt.context_tokens, provider="ollama", model=model)
        return OllamaModel(
            model=model,
            host=settings.ollama_host,
            retry=retry,
            prices=prices,
            stream=stream,
            context_tokens=window,
            caps=caps,
        )
    if choice.provider in ("openai", "groq"):
        from bot.providers.openai_compat import GROQ_BASE_URL, OpenAICompatModel

        base_url: str | None
        if choice.provider == "groq":
            key, base_url, variable = settings.groq_api_key, GROQ_BASE_URL, "GROQ_API_KEY"
        else:
            key, base_url, variable = (
                settings.openai_api_key,
                settings.openai_base_url,
                "OPENAI_API_KEY",
            )
        if not key and choice.provider == "openai" and base_url:
            key = "no-key"  # local servers (vLLM, llama.cpp, LM Studio) accept any key
        if not key:
            extra = (
                " (or OPENAI_BASE_URL for a local server)" if choice.provider == "openai" else ""
            )
            raise ConfigError(f"the {choice.provider} provider needs {variable}{extra}")
        return OpenAICompatModel(
            provider=choice.provider,
            model=model,
            api_key=key,
            base_url=base_url,
            retry=retry,
            prices=prices,
            stream=stream,
            key_variable=variable,
            caps=caps,
        )
    if choice.provider == "scripted":
        from bot.providers.scripted import ScriptedModel

        if model == "demo" and not Path(model).is_file():  # the built-in one (bot/cli/demo.py)
            from bot.cli.demo import chat_demo_model

            return chat_demo_model(prices=prices)

        return ScriptedModel.from_file(Path(model), prices=prices)
    raise ConfigError(f"unknown provider {choice.provider!r} (known: {', '.join(PROVIDERS)})")


def turn_caps(policy: Policy, *, provider: str, model: str) -> TurnCaps:
    """The bounds of one model's turns, from ``[models]`` and its ``[models.NAME]``."""
    models = policy.models
    return TurnCaps(
        max_output_tokens=models.max_output_tokens_for(provider=provider, model=model),
        system_role=models.override_for(provider=provider, model=model).system_role,
    )


def primary_choice(*, settings: Settings, provider: str | None, model: str | None) -> ModelChoice:
    """The first model: explicit arguments, else ``OPSLOOP_PROVIDER``/``OPSLOOP_MODEL``."""
    chosen = provider or settings.provider
    source = "--provider" if provider else "OPSLOOP_PROVIDER"
    if model is None and chosen == settings.provider:
        model = settings.model  # OPSLOOP_MODEL belongs to OPSLOOP_PROVIDER, not to another
    choice = parse_choice(chosen, source=source)
    if choice.model is not None:  # OPSLOOP_PROVIDER=groq:llama-3.1-8b-instant also works
        return ModelChoice(choice.provider, model or choice.model)
    return ModelChoice(choice.provider, model or None)


def make_model(
    *, settings: Settings, policy: Policy, provider: str | None = None, model: str | None = None
) -> ChatModel:
    """The configured model, with the ``OPSLOOP_FALLBACK`` chain behind it when one is set."""
    first = primary_choice(settings=settings, provider=provider, model=model)
    chain = [first]
    for choice in parse_fallback(settings.fallback):
        if _resolved(choice) not in {_resolved(c) for c in chain}:
            chain.append(choice)
    models = [build_one(choice, settings=settings, policy=policy) for choice in chain]
    return models[0] if len(models) == 1 else FallbackModel(models)


def _resolved(choice: ModelChoice) -> tuple[str, str | None]:
    return (choice.provider, choice.model or DEFAULT_MODELS.get(choice.provider))
