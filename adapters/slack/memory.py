"""Bounded in-process memories of the Slack surface: redeliveries seen, threads in play,
assistant thread contexts. Oldest forgotten first, so a long-running process stays small."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

LIMIT = 10_000  # keys remembered per memory


def remember(
    memory: OrderedDict[Any, Any], key: Any, value: Any = None, *, refresh: bool = False
) -> bool:
    """Add ``key`` (with ``value``); False when it was there already, and then only with
    ``refresh`` is its value replaced and it made the newest."""
    known = key in memory
    if known and not refresh:
        return False
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > LIMIT:
        memory.popitem(last=False)
    return not known
