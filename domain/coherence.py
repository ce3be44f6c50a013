"""Does a conversation's record read as one story? (pure; docs/events.md, "coherent record")

The aggregate refuses commands that would break these rules; this function checks a whole
recorded log against them, for tests and for audits of logs written by other versions:

- every block a model turn announced is started or skipped, and every started block gets
  exactly one outcome, before the next model turn, answer or stop;
- no outcome names a block that was not started (a late result names one recorded unknown).

``events`` are (type name, payload) pairs in order, as ``replay --format json`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from domain.helpers import parse_helpers

OUTCOMES = ("BlockFinished", "BlockRefused", "BlockOutcomeUnknown")
TURN_ENDS = ("ModelReplied", "ModelFailed", "Answered", "Stopped")


def incoherence(events: Iterable[tuple[str, Mapping[str, Any]]]) -> str | None:
    """The first way the record breaks the rules, as a sentence; None when it reads well."""
    announced: list[str] = []  # block ids of the latest model turn
    status: dict[str, str] = {}  # block id -> started | settled | skipped
    unknown: set[str] = set()
    for n, (kind, e) in enumerate(events, start=1):
        block = str(e.get("block_id", ""))
        if kind in TURN_ENDS:
            open_ = [b for b in announced if status.get(b) not in ("settled", "skipped")]
            if open_:
                return f"event {n} ({kind}) comes while block {open_[0]} has no outcome"
        if kind == "ModelReplied":
            turn = int(e["turn"])
            announced = [f"t{turn}b{b.index}" for b in parse_helpers(str(e["text"])).blocks]
        elif kind == "BlockStarted":
            if status.get(block) is not None:
                return f"event {n} starts block {block} a second time"
            status[block] = "started"
        elif kind in OUTCOMES:
            if kind == "BlockRefused" and status.get(block) is None:
                status[block] = "settled"  # refused before it started (policy, approval)
                continue
            if status.get(block) != "started":
                return f"event {n} ({kind}) is an outcome of block {block}, which is not running"
            status[block] = "settled"
            if kind == "BlockOutcomeUnknown":
                unknown.add(block)
        elif kind == "BlockSkipped":
            if status.get(block) is not None:
                return f"event {n} skips block {block}, which was started"
            status[block] = "skipped"
        elif kind == "BlockFinishedLate":
            if block not in unknown:
                return f"event {n} is a late result of block {block}, not recorded unknown"
            unknown.discard(block)
    return None
