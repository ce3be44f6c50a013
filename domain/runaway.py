"""Runaway replies: where a streaming model turn must be cut, decided on its text alone (pure).

Small local models (and broken servers) do not stop: they write a block and then invent its
result, echo their prompt format, or repeat one paragraph until a limit stops them. Two rules
cut such a reply while it streams, so the loop neither waits for it nor pays for it:

- **Stop at the block.** Once the first block closes (``helpers.first_block_end``), the rest
  of the reply is discarded: the model must never write the results of its own blocks. Only
  the length of what was discarded is kept, never its text.
- **Repetition.** When the last ``span`` characters already occurred ``times`` times in the
  reply (overlaps counted), the model is looping: the reply is cut there (``repetition``).

``ReplyGuard`` applies both to a stream, chunk by chunk; ``repeats`` is the detector on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.helpers import first_block_end

Truncation = Literal["tokens", "time", "repetition"]
TRUNCATIONS: tuple[Truncation, ...] = ("tokens", "time", "repetition")
CUT_BY: dict[str, str] = {  # what cut a turn, in words (replay, surfaces, the loop's stop)
    "tokens": "the output token limit",
    "time": "the turn's time limit",
    "repetition": "the repetition detector",
}

REPEAT_SPAN = 200  # characters of the reply's tail that must recur
REPEAT_TIMES = 3  # ... this many times in all, the tail itself included
_CHECK_EVERY = 64  # characters between two repetition checks while streaming


def repeats(text: str, *, span: int = REPEAT_SPAN, times: int = REPEAT_TIMES) -> bool:
    """Whether the last ``span`` characters of ``text`` occur ``times`` times or more in it.

    Occurrences may overlap (a reply repeating a 50-character line repeats every 200-character
    window of it too), so a loop of any period up to ``span`` is found.
    """
    if span <= 0 or times <= 1 or len(text) < span + times - 1:
        return False
    tail = text[-span:]
    found, start = 0, 0
    while (at := text.find(tail, start)) >= 0:
        found += 1
        if found >= times:
            return True
        start = at + 1
    return False


@dataclass
class ReplyGuard:
    """Cuts a streaming reply at its first closed block or at a repetition.

    ``feed`` returns the part of each chunk that is kept (what the surfaces are shown); once
    ``done``, the caller stops reading the stream. ``discarded`` counts the characters that
    arrived after the cut and were dropped.
    """

    span: int = REPEAT_SPAN
    times: int = REPEAT_TIMES
    text: str = ""
    discarded: int = 0
    truncated: Truncation | None = None  # "repetition" when this guard cut the reply
    block_closed: bool = False
    _checked: int = 0

    spilled: bool = False  # non-blank text arrived after the cut

    @property
    def done(self) -> bool:
        """Whether the reply was cut: nothing more of it is wanted."""
        return self.block_closed or self.truncated is not None

    @property
    def close_now(self) -> bool:
        """Whether to stop reading: a repetition, or text after the block. Until then a
        stream that ends right after its block is read to its end, usage included."""
        return self.truncated is not None or self.spilled

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return what of it is kept."""
        if self.done:
            self.discarded += len(chunk)
            self.spilled = self.spilled or bool(chunk.strip())
            return ""
        before = len(self.text)
        self.text += chunk
        # A closing tag may straddle chunks: look again from a little before this one.
        if "<" in self.text[max(0, before - 16) :] and ">" in chunk:
            end = first_block_end(self.text)
            if end is not None:
                self.block_closed = True
                return self._keep(before, end)
        if len(self.text) - self._checked >= _CHECK_EVERY:
            self._checked = len(self.text)
            if repeats(self.text, span=self.span, times=self.times):
                self.truncated = "repetition"
        return chunk

    def _keep(self, before: int, end: int) -> str:
        kept = self.text[before:end]
        self.discarded += len(self.text) - end
        self.spilled = bool(self.text[end:].strip())
        self.text = self.text[:end]
        return kept
