"""File names that cross into or out of a workspace, made safe (pure).

A name comes from a person (an attachment's name on Slack or Discord) or from a block (an
entry of ``/workspace/outbox``): either may hold a path, ``..``, NUL, newlines, terminal
escapes, bidi overrides that show ``exe.txt`` as ``txt.exe``, bytes that are not UTF-8, or
more than a filesystem takes. ``safe_name`` keeps what reads as the name and replaces the
rest, so the result is always one plain directory entry of at most 255 bytes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

MAX_NAME_BYTES = 255  # ext4's limit on one directory entry
MAX_SUFFIX_CHARS = 16  # an extension longer than this is not kept apart when cutting
FALLBACK = "file"
COPIES = 1000  # "name (2).ext" … "name (1000).ext", then the name is refused


def _allowed(char: str) -> bool:
    """A character that shows as itself: no control, format (bidi), surrogate or separator."""
    return unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def safe_name(name: str) -> str:
    """One safe directory entry for ``name``: its last path part, without control characters,
    never ``.``/``..`` or hidden or option-like, at most ``MAX_NAME_BYTES`` bytes of UTF-8."""
    last = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    cleaned = "".join(c if _allowed(c) else "_" for c in last).strip()
    cleaned = cleaned.lstrip(".-") if cleaned.strip(".") else ""
    stem = cleaned[: len(cleaned) - len(_suffix(cleaned))]
    if not stem.strip("_ "):  # nothing of the name was left to read
        cleaned = FALLBACK + (_suffix(last) if _allowed_suffix(last) else "")
    return _cut(cleaned, MAX_NAME_BYTES)


def _suffix(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return f".{ext}" if dot and stem and 0 < len(ext) <= MAX_SUFFIX_CHARS else ""


def _allowed_suffix(name: str) -> bool:
    suffix = _suffix(name)
    return bool(suffix) and all(_allowed(c) and c not in "/\\" for c in suffix)


def _cut(name: str, limit: int) -> str:
    """``name`` within ``limit`` bytes of UTF-8, its extension kept, no character split."""
    if len(name.encode("utf-8")) <= limit:
        return name
    suffix = _suffix(name)
    stem = name[: len(name) - len(suffix)]
    room = limit - len(suffix.encode("utf-8"))
    while len(stem.encode("utf-8")) > room:
        stem = stem[:-1]
    return (stem.rstrip() or FALLBACK) + suffix


def numbered(name: str) -> Iterator[str]:
    """``name``, then ``name (2)``, ``name (3)`` … (before the extension), each within
    ``MAX_NAME_BYTES``: the candidates for a name not yet taken."""
    yield name
    suffix = _suffix(name)
    stem = name[: len(name) - len(suffix)]
    for n in range(2, COPIES + 1):
        tag = f" ({n})"
        room = MAX_NAME_BYTES - len((tag + suffix).encode("utf-8"))
        yield _cut(stem, room) + tag + suffix
