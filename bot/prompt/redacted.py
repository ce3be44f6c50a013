"""What the model is sent passes the process's one redactor, twice (pure).

Each history item is redacted before the prompt is fitted, so the window is measured on the
text that is sent; the joined messages are redacted once more, because a secret split
between two messages (half in one output, half in the next) is only whole once they are
joined. Already redacted text does not change (redaction is idempotent), so the second pass
costs a scan and nothing else; the fingerprint is taken of what is finally sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import assert_never

from bot.ports import ChatMessage
from bot.prompt.context import Prompt, fingerprint
from bot.prompt.system import BlockOutcome, HistoryItem, ModelTurn, UserMessage
from domain.redaction import Redactor


def redacted_history(items: Sequence[HistoryItem], redactor: Redactor) -> list[HistoryItem]:
    """``items`` with every text in them redacted."""

    def text(value: str) -> str:
        return redactor.redact(value).text

    out: list[HistoryItem] = []
    for item in items:
        match item:
            case UserMessage():
                out.append(
                    dataclasses.replace(item, text=text(item.text), author=text(item.author))
                )
            case ModelTurn():
                out.append(ModelTurn(text(item.text)))
            case BlockOutcome():
                out.append(
                    dataclasses.replace(
                        item,
                        code=text(item.code),
                        stdout=text(item.stdout),
                        stderr=text(item.stderr),
                        detail=text(item.detail),
                    )
                )
            case _:
                assert_never(item)
    return out


def redacted_prompt(prompt: Prompt, redactor: Redactor) -> Prompt:
    """``prompt`` with its joined messages redacted, and the fingerprint of what is sent."""
    messages = tuple(
        ChatMessage(role=m.role, content=redactor.redact(m.content).text) for m in prompt.messages
    )
    if messages == prompt.messages:
        return prompt
    return dataclasses.replace(prompt, messages=messages, fingerprint=fingerprint(messages))
