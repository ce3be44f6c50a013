"""The history items of a conversation's timeline: the plain values of bot/prompt/system.py
that recorded events map to, so a replay renders exactly the prompt that was sent."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.prompt.system import BlockOutcome, HistoryItem, ModelTurn, OutcomeStatus, UserMessage
from bot.prompt.untrusted import result_nonce
from domain.helpers import parse_helpers
from domain.state import block_failed


def history_from_timeline(timeline: Sequence[Mapping[str, Any]]) -> list[HistoryItem]:
    """The history items of a conversation's timeline (``ConversationApp.timeline`` dicts)."""
    items: list[HistoryItem] = []
    blocks: dict[str, tuple[str, str]] = {}  # block_id -> (language, code)
    limits: dict[str, Mapping[str, Any]] = {}  # block_id -> BlockStarted.limits
    called: dict[str, list[str]] = {}  # block_id -> the tools it called
    nonce = result_nonce(timeline[0]) if timeline else ""
    for event in timeline:
        kind = str(event.get("type", "")).rsplit(".", 1)[-1].rsplit(":", 1)[-1]
        if kind in ("MessageReceived", "MessageRefused"):
            trusted = kind == "MessageReceived"
            items.append(
                UserMessage(event["text"], author=event.get("author", ""), trusted=trusted)
            )
        elif kind in ("FileReceived", "FileRefused"):
            items.append(UserMessage(file_note(event), author=event.get("by", "")))
        elif kind == "ModelReplied":
            cut, dropped = event.get("truncated"), int(event.get("discarded_chars") or 0)
            items.append(ModelTurn(text=event["text"], truncated=cut, discarded_chars=dropped))
            for block in parse_helpers(event["text"]).blocks:
                blocks[f"t{event['turn']}b{block.index}"] = (block.language, block.code)
        elif kind == "BlockStarted":
            blocks[event["block_id"]] = (event["language"], event["code"])
            limits[event["block_id"]] = event.get("limits") or {}
        elif kind == "ToolCalled":
            called.setdefault(event["block_id"], []).append(str(event["tool"]))
        elif kind == "BlockFinished" or kind in _NOT_RUN:
            outcome = _outcome(kind, event, blocks, limits.get(event["block_id"], {}))
            tools = tuple(dict.fromkeys(called.get(event["block_id"], ())))
            items.append(dataclasses.replace(outcome, tools=tools, nonce=nonce))
    return items


def file_note(event: Mapping[str, Any]) -> str:
    """What the model is told of a file attached to the message (its name is the user's data)."""
    name = json.dumps(str(event.get("name", "")), ensure_ascii=False)
    if str(event.get("type", "")).endswith("FileRefused"):
        return f"[attached file {name} was not saved: {event.get('reason', '')}]"
    return f"[attached file saved as /workspace/inbox/{name[1:-1]} ({event.get('bytes', 0)} bytes)]"


_NOT_RUN: dict[str, OutcomeStatus] = {
    "BlockSkipped": "skipped",
    "BlockRefused": "refused",
    "BlockOutcomeUnknown": "unknown",
}


def _outcome(
    kind: str,
    event: Mapping[str, Any],
    blocks: Mapping[str, tuple[str, str]],
    limits: Mapping[str, Any],
) -> BlockOutcome:
    block_id = event["block_id"]
    language, code = blocks.get(block_id, ("?", ""))
    if kind in _NOT_RUN:
        detail = event.get("reason") or event.get("detail") or ""
        return BlockOutcome(
            block_id=block_id, language=language, code=code, status=_NOT_RUN[kind], detail=detail
        )
    failed = block_failed(
        exit_code=event.get("exit_code"),
        signal=event.get("signal"),
        timed_out=bool(event.get("timed_out")),
        memory_exceeded=bool(event.get("memory_exceeded")),
    )
    return BlockOutcome(
        block_id=block_id,
        language=language,
        code=code,
        status="failed" if failed else "succeeded",
        exit_code=event.get("exit_code"),
        signal=event.get("signal"),
        stdout=event.get("stdout") or "",
        stderr=event.get("stderr") or "",
        timed_out=bool(event.get("timed_out")),
        memory_exceeded=bool(event.get("memory_exceeded")),
        output_truncated=bool(event.get("output_truncated")),
        unsafe_local=bool(event.get("unsafe_local")),
        wall_seconds=limits.get("wall_seconds"),
        memory_mb=limits.get("memory_mb"),
        kernel=str(event.get("kernel") or "new"),
    )
