"""The ``scripted`` provider: replies read from a list of turns, for tests and the demo.

Turn N answers the prompt that already holds N-1 assistant messages, so the model keeps
no state: two conversations sharing one model each get the script from the start, and a
conversation resumed after a crash gets the turn it was waiting for. (A prompt builder
that dropped earlier assistant messages would therefore rewind the script.)

A script file (``OPSLOOP_MODEL=path``) is TOML or YAML::

    [[turns]]                          turns:
    text = '''                           - text: |
    Let me look.                             Let me look.
    <helpers>                                <helpers>
    print(6 * 7)                             print(6 * 7)
    </helpers>                               </helpers>
    '''                                  - The answer is 42.
    [[turns]]
    text = "The answer is 42."

A turn may be ``{unavailable = "why"}`` instead, to play a model that is down.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError, ModelUnavailable
from bot.ports import ChatMessage, ModelReply, ProviderFailure, TextSink
from bot.providers.base import Streamed, build_reply, describe
from bot.providers.pricing import PriceTable

PROVIDER = "scripted"
SCRIPT_EXHAUSTED = "The script has no more turns, so this scripted conversation ends here."


@dataclass(frozen=True)
class ScriptedTurn:
    """One scripted model turn: its text, or the error of a model that is down."""

    text: str = ""
    unavailable: str | None = None


def _turn(item: Any, *, where: str) -> ScriptedTurn:
    if isinstance(item, str):
        return ScriptedTurn(text=item)
    if isinstance(item, dict) and set(item) <= {"text", "unavailable"}:
        text, down = item.get("text", ""), item.get("unavailable")
        if isinstance(text, str) and (down is None or isinstance(down, str)) and (text or down):
            return ScriptedTurn(text=text, unavailable=down)
    raise ConfigError(f"{where} must be a string or a table with a text (or unavailable) string")


def parse_script(data: Any, *, source: str) -> tuple[ScriptedTurn, ...]:
    """The turns of a parsed script: ``{"turns": [...]}`` or a bare list."""
    items = data.get("turns") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise ConfigError(f"script {source} has no turns (expected a non-empty list `turns`)")
    return tuple(
        _turn(item, where=f"turn {n} of script {source}") for n, item in enumerate(items, 1)
    )


def load_script(path: Path) -> tuple[ScriptedTurn, ...]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) script of turns."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the script {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"the script {path} is not valid {path.suffix[1:].upper()}: {first}"
        ) from None
    return parse_script(data, source=str(path))


def chunks(text: str, *, size: int) -> list[str]:
    """``text`` cut into pieces of about ``size`` characters, at spaces where possible."""
    pieces: list[str] = []
    while text:
        cut = len(text) if len(text) <= size else text.rfind(" ", 0, size) + 1 or size
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces


class ScriptedModel:
    """A model that answers from a fixed list of turns, streamed in small chunks."""

    provider = PROVIDER

    def __init__(
        self,
        turns: Sequence[ScriptedTurn | str],
        *,
        label: str = "inline",
        prices: PriceTable | None = None,
        chunk_chars: int = 16,
        chunk_delay: float = 0.0,
    ) -> None:
        self.turns = tuple(
            t if isinstance(t, ScriptedTurn) else ScriptedTurn(text=t) for t in turns
        )
        self.model = label
        self._prices = prices or PriceTable()
        self._chunk_chars = max(1, chunk_chars)
        self._chunk_delay = chunk_delay  # the demo slows down so streaming can be seen

    @classmethod
    def from_file(cls, path: Path, *, prices: PriceTable | None = None) -> ScriptedModel:
        """A scripted model playing the turns of a TOML or YAML file."""
        return cls(load_script(path), label=str(path), prices=prices)

    @property
    def name(self) -> str:
        """``scripted:label`` (the script's path, or ``inline``)."""
        return f"{PROVIDER}:{self.model}"

    def turn_for(self, messages: Sequence[ChatMessage]) -> ScriptedTurn:
        """The turn that answers ``messages``; a fixed closing message once they run out."""
        index = sum(1 for m in messages if m.role == "assistant")
        return self.turns[index] if index < len(self.turns) else ScriptedTurn(text=SCRIPT_EXHAUSTED)

    async def reply(
        self, messages: Sequence[ChatMessage], *, on_text: TextSink | None = None
    ) -> ModelReply:
        """Stream the next scripted turn; raises ``ModelUnavailable`` for an unavailable turn."""
        started = time.perf_counter()
        turn = self.turn_for(messages)
        if turn.unavailable is not None:
            failure = ProviderFailure(PROVIDER, self.model, turn.unavailable, attempts=1)
            raise ModelUnavailable(describe(failure), failures=(failure,))
        for piece in chunks(turn.text, size=self._chunk_chars):
            if on_text:
                await on_text(piece)
            if self._chunk_delay:
                await asyncio.sleep(self._chunk_delay)
        return build_reply(
            provider=PROVIDER,
            model=self.model,
            messages=messages,
            streamed=Streamed(turn.text),
            prices=self._prices,
            latency_ms=round((time.perf_counter() - started) * 1000),
            attempts=1,
        )

    async def ping(self) -> float:
        """Always up; no latency."""
        return 0.0

    async def aclose(self) -> None:
        """Nothing to close."""
