"""Token estimates for providers that report no usage.

About four characters per token is the usual rule of thumb for English text and code
with the BPE tokenizers of current models; it is only used when the provider is silent,
and the reply is then marked ``tokens_estimated``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.ports import ChatMessage

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4  # role and separators that chat templates add around each message
PROMPT_OVERHEAD = 3  # the assistant header that primes the reply


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens ``text`` takes (characters / 4, rounded up)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """Roughly how many tokens a chat prompt of ``messages`` takes."""
    if not messages:
        return 0
    body = sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD for m in messages)
    return body + PROMPT_OVERHEAD
