"""Model providers behind the ``ChatModel`` port: ollama, openai, groq and scripted.

``make_model`` is the one entry point of the composition root; the SDK-backed providers
are imported only when chosen. See ``docs/providers.md``.
"""

from __future__ import annotations

from bot.providers.base import ProviderModel
from bot.providers.factory import DEFAULT_MODELS, make_model
from bot.providers.fallback import FallbackModel, ModelChoice, parse_fallback
from bot.providers.pricing import PriceTable, Rate, default_rates, price_table
from bot.providers.retry import RetryPolicy
from bot.providers.scripted import (
    SCRIPT_EXHAUSTED,
    ScriptedModel,
    ScriptedTurn,
    load_script,
    parse_script,
)

__all__ = [
    "DEFAULT_MODELS",
    "SCRIPT_EXHAUSTED",
    "FallbackModel",
    "ModelChoice",
    "PriceTable",
    "ProviderModel",
    "Rate",
    "RetryPolicy",
    "ScriptedModel",
    "ScriptedTurn",
    "default_rates",
    "load_script",
    "make_model",
    "parse_fallback",
    "parse_script",
    "price_table",
]
