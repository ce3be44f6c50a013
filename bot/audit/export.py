"""``opsloop audit export --format jsonl``: one line per event, with its chain fields, for a SIEM.

Each line: ``position`` (in the notification log), ``conversation_id``, ``version``, ``type``,
``timestamp``, ``class_version``, ``prev_hash`` (the content chain), ``seal`` (``KID:MAC``, or
null for an event written before the audit key), ``digest`` and ``global_head`` (the global
chain a checkpoint signs, ``domain.seal``), and ``payload``: the event's fields as stored,
personal text decrypted (``[erased]`` once its owner was erased).
A SIEM holding the lines can recompute the global chain and compare it with a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from bot.app.personal import decrypt_fields
from bot.audit.scan import Item, Scan
from bot.visible import visible_json
from domain.chain import NOT_PAYLOAD


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def line_of(item: Item, key_for: Callable[[str], bytes | None] | None = None) -> dict[str, Any]:
    """One event as its JSONL record (personal text decrypted, or ``[erased]``)."""
    state = dict(item.state or {})
    decrypt_fields(state, key_for or (lambda _owner: None))
    timestamp = state.get("timestamp")
    return {
        "position": item.position,
        "conversation_id": str(item.conversation_id),
        "version": item.version,
        "type": item.type_name,
        "timestamp": timestamp.isoformat() if isinstance(timestamp, datetime) else None,
        "class_version": int(state.get("class_version", 1)),
        "prev_hash": state.get("prev_hash"),
        "seal": item.seal,
        "digest": item.digest,
        "global_head": item.global_head,
        "payload": {k: v for k, v in state.items() if k not in NOT_PAYLOAD},
    }


def jsonl(
    scan: Scan,
    *,
    since: datetime | None = None,
    key_for: Callable[[str], bytes | None] | None = None,
) -> Iterator[str]:
    """The lines, in log order (events before ``since`` left out)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_plain).encode
    for item in scan.items:
        at = (item.state or {}).get("timestamp")
        if since is not None and isinstance(at, datetime) and at < since:
            continue
        yield visible_json(dumps(line_of(item, key_for)))
