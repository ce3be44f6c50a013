"""Token estimates, for every place that counts without the model's tokenizer.

One rule: a token per three UTF-8 bytes, rounded up. English and code run about a token per
four characters, so this over-counts them by a third; CJK text runs about a token per
character, which is three bytes. Over-counting is the safe side for both users: fitting a
prompt into a context window, and charging a reply against a budget when the provider
reported no usage (such replies are marked ``tokens_estimated``).
"""

from __future__ import annotations

from collections.abc import Sequence

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4  # role and separators that chat templates add around each message
PROMPT_OVERHEAD = 3  # the assistant header that primes the reply


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens ``text`` takes (UTF-8 bytes / 3, rounded up)."""
    return -(-len(text.encode("utf-8", errors="surrogatepass")) // BYTES_PER_TOKEN)


def estimate_prompt_tokens(contents: Sequence[str]) -> int:
    """Roughly how many tokens a chat prompt of messages with these contents takes."""
    if not contents:
        return 0
    return sum(estimate_tokens(c) + MESSAGE_OVERHEAD for c in contents) + PROMPT_OVERHEAD
