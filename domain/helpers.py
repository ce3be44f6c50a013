"""Parsing ``<helpers>`` blocks out of a model's reply (pure).

Provisional implementation; the loop issue replaces it with the full parser (fenced code,
quoted closing tags, unclosed tags reported) keeping this signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(r'<helpers(?:\s+lang="(?P<lang>[a-z0-9_+-]+)")?\s*>(?P<code>.*?)</helpers>', re.S)


@dataclass(frozen=True)
class HelperBlock:
    """One block of code the model asked to run."""

    index: int  # 1-based
    language: str
    code: str


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its blocks and the prose around them."""

    blocks: tuple[HelperBlock, ...]
    text: str  # the reply without its blocks: what the user sees as progress or answer
    problems: tuple[str, ...] = ()  # e.g. an unclosed tag, told to the model next turn


def parse_helpers(reply: str) -> ParsedReply:
    """Split ``reply`` into helper blocks and outside text."""
    blocks = tuple(
        HelperBlock(index=i, language=m.group("lang") or "python", code=m.group("code").strip("\n"))
        for i, m in enumerate(_BLOCK.finditer(reply), start=1)
    )
    return ParsedReply(blocks=blocks, text=_BLOCK.sub("", reply).strip())
