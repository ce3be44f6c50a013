"""``OPSLOOP_FALLBACK``: when a provider gives up, the next one in the chain answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.errors import ConfigError, ModelUnavailable
from bot.ports import ChatMessage, ModelReply, ProviderFailure, TextSink
from bot.providers.base import ProviderModel, describe

PROVIDERS = ("ollama", "openai", "groq", "scripted")


@dataclass(frozen=True)
class ModelChoice:
    """A provider and a model; ``model`` None means the provider's default model."""

    provider: str
    model: str | None = None


def parse_choice(entry: str, *, source: str = "OPSLOOP_FALLBACK") -> ModelChoice:
    """``provider`` or ``provider:model``; the model may itself hold colons (``llama3.1:8b``)."""
    provider, colon, model = entry.strip().partition(":")
    provider, model = provider.strip(), model.strip()
    if not provider:
        raise ConfigError(f"{source} entry {entry.strip()!r} has no provider before the colon")
    if provider not in PROVIDERS:
        known = ", ".join(PROVIDERS)
        raise ConfigError(f"{source} names an unknown provider {provider!r} (known: {known})")
    if colon and not model:
        raise ConfigError(f"{source} entry {entry.strip()!r} has no model after the colon")
    return ModelChoice(provider, model or None)


def parse_fallback(spec: str) -> tuple[ModelChoice, ...]:
    """The chain in ``OPSLOOP_FALLBACK``, e.g. ``ollama:llama3.1,groq:llama-3.3-70b-versatile``."""
    if not spec.strip():
        return ()
    entries = spec.split(",")
    for position, entry in enumerate(entries, 1):
        if not entry.strip():
            raise ConfigError(
                f"OPSLOOP_FALLBACK has an empty entry at position {position} "
                "(expected provider:model pairs separated by commas)"
            )
    return tuple(parse_choice(entry) for entry in entries)


class FallbackModel:
    """Asks each model of a chain in turn until one answers; the reply lists who failed."""

    def __init__(self, models: Sequence[ProviderModel]) -> None:
        if not models:
            raise ValueError("a fallback chain needs at least one model")
        self.models = tuple(models)

    @property
    def name(self) -> str:
        """The first model's name: the one expected to answer."""
        return self.models[0].name

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """The first answer of the chain; ``ModelUnavailable`` with every failure if none."""
        failures: list[ProviderFailure] = []
        for model in self.models:
            try:
                answered = await model.reply(messages, on_text=on_text)
            except ModelUnavailable as exc:
                failures.extend(_failures_of(exc, model))
                continue
            return replace(answered, failures=(*failures, *answered.failures))
        summary = "; ".join(describe(f) for f in failures)
        raise ModelUnavailable(f"no model answered: {summary}", failures=tuple(failures))

    async def ping(self) -> float:
        """The first model's heartbeat (``opsloop doctor`` may ping each of ``models``)."""
        return await self.models[0].ping()

    async def aclose(self) -> None:
        """Close every model's client."""
        for model in self.models:
            await model.aclose()


def _failures_of(exc: ModelUnavailable, model: ProviderModel) -> list[ProviderFailure]:
    found = [f for f in exc.failures if isinstance(f, ProviderFailure)]
    if found:
        return found
    provider, _, name = model.name.partition(":")
    return [ProviderFailure(provider, name, str(exc), attempts=1)]
