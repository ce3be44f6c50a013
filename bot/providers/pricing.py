"""What a model call costs: opsloop.toml's ``[prices]`` over the built-in defaults.

Prices are USD per million tokens. A key is ``provider:model`` (most specific),
``model`` (that model on any provider) or ``provider:*`` (every model of a provider, e.g.
local Ollama models are free). opsloop.toml wins over the defaults as a whole: its least
specific match beats the defaults' most specific one, so an operator's word is final.
A model found nowhere costs 0 and is reported as unpriced rather than guessed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bot.config import Policy, Price


@dataclass(frozen=True)
class Rate:
    """USD per million input and output tokens."""

    input: float
    output: float


@dataclass(frozen=True)
class Cost:
    """The cost of one call, and whether the model had a price at all."""

    usd: float
    priced: bool


@cache
def default_rates() -> Mapping[str, Rate]:
    """The built-in price table (``default_prices.toml`` next to this module)."""
    text = resources.files(__package__).joinpath("default_prices.toml").read_text("utf-8")
    return {
        key: Rate(float(v["input"]), float(v["output"])) for key, v in tomllib.loads(text).items()
    }


def _keys(provider: str, model: str) -> tuple[str, ...]:
    return (f"{provider}:{model}", model, f"{provider}:*")


class PriceTable:
    """Looks up a model's rate and prices a call."""

    def __init__(
        self,
        *,
        overrides: Mapping[str, Price | Rate] | None = None,
        defaults: Mapping[str, Rate] | None = None,
    ) -> None:
        self._overrides = {k: Rate(v.input, v.output) for k, v in (overrides or {}).items()}
        self._defaults = dict(default_rates() if defaults is None else defaults)

    def rate(self, *, provider: str, model: str) -> Rate | None:
        """The rate of ``provider:model``, or None when no table knows it."""
        for table in (self._overrides, self._defaults):
            for key in _keys(provider, model):
                if key in table:
                    return table[key]
        return None

    def cost(self, *, provider: str, model: str, input_tokens: int, output_tokens: int) -> Cost:
        """What ``input_tokens`` in and ``output_tokens`` out cost on ``provider:model``."""
        rate = self.rate(provider=provider, model=model)
        if rate is None:
            return Cost(0.0, priced=False)
        usd = (input_tokens * rate.input + output_tokens * rate.output) / 1_000_000
        return Cost(round(usd, 10), priced=True)


def price_table(policy: Policy) -> PriceTable:
    """The price table of ``policy`` (its ``[prices]`` over the defaults)."""
    return PriceTable(overrides=policy.prices)
