"""``opsloop doctor``'s questions about a model server's bounds, asked on the heartbeat.

Two tiny completions of one prompt with one sampling seed (another seed while the model says
too little to pick a stop word from): one capped at ``PROBE_TOKENS``
(does the server honour ``max_tokens`` / ``num_predict``?), then the same with a word of that
first reply as its stop sequence (does it honour ``stop``?), plus the context window where the
server reports one (vLLM's
``max_model_len``, Groq's ``context_window``, Ollama's ``*.context_length``). opsloop cuts
runaway replies itself too (``domain.runaway``), so a server that ignores these is slower and
costlier, not unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBE_PROMPT = "Once upon a time, there was a cat who"
PROBE_TOKENS = 12
PROBE_SEEDS = (1, 2, 3, 4)  # one seed for both probes: the second repeats the first up to the stop
_CONTEXT_KEYS = ("max_model_len", "context_window", "context_length", "n_ctx")


@dataclass(frozen=True)
class Bounds:
    """What the server did with the bounds; None where it could not be told."""

    context_tokens: int | None
    max_tokens: bool | None
    stop: bool | None


def stop_word(capped_text: str) -> str | None:
    """A stop sequence the second (same seed, so identical) probe must meet: a word from the
    second half of the first probe's reply; None when it wrote too little to pick one."""
    words = capped_text.split()
    later = [w for w in words[len(words) // 2 :] if w not in words[: len(words) // 2]]
    return later[0] if later and len(words) >= 2 else None


def judge(
    *,
    capped_tokens: int | None,
    capped_finish: str | None,
    capped_text: str,
    stop: str | None,
    stopped_text: str,
) -> tuple[bool | None, bool | None]:
    """(honours max_tokens, honours stop) from the two probe replies."""
    if capped_tokens is not None:
        max_tokens: bool | None = capped_tokens <= PROBE_TOKENS
    else:
        max_tokens = True if capped_finish == "length" else None
    honours_stop = None if stop is None else stop not in stopped_text
    return max_tokens, honours_stop


def context_from(info: Any) -> int | None:
    """A context window in a model listing or ``show`` answer, if it holds one."""
    if not isinstance(info, dict):
        return None
    for key, value in info.items():
        if isinstance(value, int) and any(str(key).endswith(k) for k in _CONTEXT_KEYS):
            return value
    return None


def describe_bounds(bounds: Bounds, *, configured_context: int) -> str:
    """One line for ``opsloop doctor``."""
    said = {True: "yes", False: "NO", None: "could not tell"}
    window = (
        f"{bounds.context_tokens} tokens (server)"
        if bounds.context_tokens
        else f"not reported by the server; opsloop assumes {configured_context}"
    )
    return (
        f"context window {window}; honours max_tokens: {said[bounds.max_tokens]}; "
        f"honours stop sequences: {said[bounds.stop]}"
    )
