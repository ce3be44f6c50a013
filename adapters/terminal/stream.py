"""Hide ``<helpers>`` blocks from a streamed model reply (pure).

The terminal streams the model's prose as it comes, but shows each block's code later, with
syntax highlighting, when it runs. Chunks may split a tag anywhere, so the filter holds back
any tail that could still become ``<helpers`` or ``</helpers>``.
"""

from __future__ import annotations

_OPEN = "<helpers"
_CLOSE = "</helpers>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class BlockFilter:
    """Feed chunks in, get back the text outside blocks that is safe to show now."""

    def __init__(self) -> None:
        self._pending = ""
        self._inside = False
        self._after_close = False  # drop the newline that ends a closing tag's line

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the newly visible prose."""
        self._pending += chunk
        shown: list[str] = []
        while True:
            if self._inside:
                end = self._pending.find(_CLOSE)
                if end < 0:
                    keep = _partial_suffix(self._pending, _CLOSE)
                    self._pending = self._pending[len(self._pending) - keep :] if keep else ""
                    break
                self._pending = self._pending[end + len(_CLOSE) :]
                self._inside = False
                self._after_close = True
                continue
            if self._after_close and self._pending:
                self._after_close = False
                if self._pending.startswith("\n"):
                    self._pending = self._pending[1:]
            start = self._pending.find(_OPEN)
            if start >= 0:
                close = self._pending.find(">", start)
                if close < 0:  # the opening tag itself is not complete yet
                    shown.append(self._pending[:start])
                    self._pending = self._pending[start:]
                    break
                shown.append(self._pending[:start])
                self._pending = self._pending[close + 1 :]
                self._inside = True
                continue
            keep = _partial_suffix(self._pending, _OPEN)
            cut = len(self._pending) - keep
            shown.append(self._pending[:cut])
            self._pending = self._pending[cut:]
            break
        return "".join(shown)

    def flush(self) -> str:
        """The end of the reply: whatever was held back and is prose after all."""
        rest, self._pending = ("" if self._inside else self._pending), ""
        self._inside = False
        return rest
