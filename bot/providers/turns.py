"""What bounds one model turn on the provider's side, shared by every provider.

- ``max_output_tokens`` goes out as the provider's own limit (OpenAI ``max_tokens``, Ollama
  ``options.num_predict``); a reply that hit it is ``truncated="tokens"``.
- ``</helpers>`` goes out as a stop sequence (OpenAI ``stop``, Ollama ``options.stop``), so a
  model cannot go on to write the results of its own block. Servers drop the matched text, so
  a reply that stopped inside an open block gets its closing tag back (``close_stopped_block``).
  A reply that simply ended inside a block looks the same to us; it gets the tag too, and its
  block runs (and fails on its own terms) rather than being silently lost.
- ``domain.runaway.ReplyGuard`` cuts the stream on our side as well, for servers that ignore
  both: after the first closed block, or at a repetition.
- Models whose chat template has no system role get the system prompt folded into the first
  user message (``[models.NAME] system_role = false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.ports import ChatMessage
from domain.helpers import first_block_end, parse_helpers
from domain.runaway import ReplyGuard

STOP_SEQUENCE = "</helpers>"
DEFAULT_MAX_OUTPUT_TOKENS = 2048


@dataclass(frozen=True)
class TurnCaps:
    """One model's bounds on a turn (``[models]`` and its ``[models.NAME]`` overrides)."""

    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    stop: tuple[str, ...] = (STOP_SEQUENCE,)
    system_role: bool = True


def wire_messages(messages: Sequence[ChatMessage], *, system_role: bool) -> list[dict[str, str]]:
    """The messages as the wire sends them; without a system role, the system prompt opens
    the first user message instead."""
    payload = [{"role": m.role, "content": m.content} for m in messages]
    if system_role:
        return payload
    system = "\n\n".join(m["content"] for m in payload if m["role"] == "system")
    rest = [m for m in payload if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def close_stopped_block(text: str) -> str:
    """``text`` with the closing tag a stop sequence took, when it ends inside a block."""
    if first_block_end(text) is not None or not parse_helpers(text).unclosed:
        return text
    return text.rstrip(" \t") + ("" if text.endswith("\n") else "\n") + STOP_SEQUENCE


def finish_text(guard: ReplyGuard, *, stopped: bool) -> str:
    """The reply's text once its stream ended: as kept by ``guard``, with the closing tag
    back when the provider stopped (``stopped``: its finish reason was ``stop``)."""
    if stopped and not guard.done:
        return close_stopped_block(guard.text)
    return guard.text


def truncation(guard: ReplyGuard, *, length: bool) -> str | None:
    """Why the reply was cut: ``tokens`` when the provider hit its limit (``length``),
    ``repetition`` when the guard cut it, None otherwise (a block cut is not truncation)."""
    if guard.truncated is not None:
        return guard.truncated
    return "tokens" if length and not guard.block_closed else None


def openai_limits(caps: TurnCaps) -> dict[str, Any]:
    """The request fields of an OpenAI-compatible chat completion that bound the turn."""
    fields: dict[str, Any] = {"max_tokens": caps.max_output_tokens}
    if caps.stop:
        fields["stop"] = list(caps.stop)
    return fields


def ollama_options(caps: TurnCaps, base: dict[str, Any] | None) -> dict[str, Any]:
    """Ollama's ``options`` with the turn's bounds added."""
    options = dict(base or {})
    options["num_predict"] = caps.max_output_tokens
    if caps.stop:
        options["stop"] = list(caps.stop)
    return options
