"""Split text into Discord messages without breaking code fences or characters.

Discord rejects a message longer than 2,000 characters, counted in Unicode code points
(what Python's ``len`` counts; discord-api-docs#1315). A cut inside a fenced code block
closes the fence at the cut and reopens it, with the same language, in the next message,
so every message renders on its own. Cuts prefer a line end, then a space, and never fall
inside a grapheme cluster (an emoji with a skin tone or ZWJ, a flag, a combining accent).
"""

from __future__ import annotations

import re
import unicodedata

DISCORD_LIMIT = 2000

_FENCE = re.compile(r"^\s*```+\s*([\w+#.-]{0,20})")  # keep at most 20 characters of language
_CLOSE = "\n```"


def _glues_to_previous(char: str) -> bool:
    """True when ``char`` belongs to the grapheme cluster of the character before it."""
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in {"Mn", "Me", "Mc"}
        or code == 0x200D  # zero-width joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
    )


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def safe_cut(text: str, limit: int) -> int:
    """The largest index ``<= limit`` to cut ``text`` at: a cluster boundary, ideally a space."""
    if len(text) <= limit:
        return len(text)
    cut = limit
    while cut > 0 and (
        _glues_to_previous(text[cut])
        or text[cut - 1] == "\u200d"
        or (_is_regional(text[cut]) and _odd_regional_run(text, cut))
    ):
        cut -= 1
    if cut == 0:  # one enormous cluster: cut it anyway rather than loop forever
        return limit
    space = text.rfind(" ", max(0, cut - 200), cut)
    return space + 1 if space > 0 else cut


def _odd_regional_run(text: str, cut: int) -> bool:
    """True when the regional indicators before ``cut`` end half-way through a flag."""
    run = 0
    index = cut - 1
    while index >= 0 and _is_regional(text[index]):
        run += 1
        index -= 1
    return run % 2 == 1


def _fence_after(line: str, fence: str | None) -> str | None:
    """The open fence's language ("" for none) after ``line``, or None when outside a fence.

    As in CommonMark, any line starting with ``` opens a fence, and only a line of nothing
    but backticks closes it (```` ```python ```` inside a fence is content).
    """
    stripped = line.strip()
    if fence is None:
        match = _FENCE.match(line)
        return None if match is None else match.group(1)
    if len(stripped) >= 3 and set(stripped) == {"`"}:
        return None
    return fence


def split_message(text: str, *, limit: int = DISCORD_LIMIT) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, each with balanced fences."""
    if limit < 40:
        raise ValueError("limit must leave room for a reopened fence")
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None  # language of the fence open at the end of ``current``
    opened_at: int | None = None  # index in ``current`` of the line that opened ``fence``

    def flush() -> None:
        nonlocal current, size, opened_at
        body = "\n".join(current) + (_CLOSE if fence is not None else "")
        if body.strip():
            pieces.append(body)
        current = [f"```{fence}"] if fence is not None else []
        size = len(current[0]) if current else 0
        opened_at = 0 if fence is not None else None

    pending = list(reversed(text.split("\n")))
    while pending:
        line = pending.pop()
        after = _fence_after(line, fence)
        grown = size + (1 if current else 0) + len(line)
        if grown + (len(_CLOSE) if after is not None else 0) <= limit:
            if fence is None and after is not None:
                opened_at = len(current)
            current.append(line)
            size = grown
            fence = after
            continue
        only_header = fence is not None and current == [f"```{fence}"]
        if current and not only_header:
            if fence is not None and opened_at == len(current) - 1 and opened_at > 0:
                # Never end a message on an opening fence: move that line to the next one.
                pending.append(line)
                line = current.pop()
                size -= len(line) + 1
                fence = opened_at = None
            pending.append(line)
            flush()
            continue
        # The line alone does not fit in an (almost) empty message: cut it.
        closing = fence is not None or _FENCE.match(line) is not None
        room = limit - size - (1 if current else 0) - (len(_CLOSE) if closing else 0)
        cut = safe_cut(line, room)
        current.append(line[:cut])
        size += (1 if len(current) > 1 else 0) + cut
        fence = _fence_after(line[:cut], fence)  # a cut opening line still opens its fence
        pending.append(line[cut:])
        flush()
    if current:
        flush()
    return pieces
