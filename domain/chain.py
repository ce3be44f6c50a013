"""The hash chain that makes a conversation's log tamper-evident (pure).

Every event carries ``prev_hash``: the sha256 of the canonical encoding of the previous
event of its conversation, where the canonical encoding is compact JSON with sorted keys of
``{"type", "version", "timestamp", "payload"}``. The payload is every field of the event
except the library's bookkeeping (ids, version, timestamp, topic, class version), and it
includes the event's own ``prev_hash`` -- which is what links the chain. The first event's
``prev_hash`` is derived from the conversation id.

Hashes are always taken over the event *as it was stored*: an event loaded through an
upcast carries the hash of its stored form in ``STORED_HASH`` (set by the application's
mapper), so upcasting never breaks a chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.seal import CONTENT_HASH, PII, SEAL

STORED_HASH = "_stored_hash"
NOT_PAYLOAD = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
        "class_version",
        STORED_HASH,
        SEAL,  # the keyed seal covers the stored record; this hash is the unkeyed content
        PII,  # (personal text: whose each encrypted field is)
        CONTENT_HASH,  # (and the hash from before its encryption)
    }
)


def _plain(value: object) -> object:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot hash a value of type {type(value).__name__}")


def payload_of(state: Mapping[str, Any]) -> dict[str, Any]:
    """The payload fields of an event's state (its ``__dict__`` or its stored state)."""
    return {k: v for k, v in state.items() if k not in NOT_PAYLOAD}


def canonical(
    *, type_name: str, version: int, timestamp: datetime, payload: Mapping[str, Any]
) -> bytes:
    """The canonical encoding of one event."""
    doc = {
        "type": type_name,
        "version": version,
        "timestamp": timestamp.isoformat(),
        "payload": payload_of(payload),
    }
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    ).encode("utf-8")


def event_hash(
    *, type_name: str, version: int, timestamp: datetime, payload: Mapping[str, Any]
) -> str:
    """sha256 (hex) of the canonical encoding of one event."""
    return hashlib.sha256(
        canonical(type_name=type_name, version=version, timestamp=timestamp, payload=payload)
    ).hexdigest()


def hash_of(event: object) -> str:
    """The chain hash of an event object (its stored form's hash when it was upcast)."""
    state = vars(event)
    stored = state.get(STORED_HASH)
    if stored:
        return str(stored)
    return event_hash(
        type_name=type(event).__name__,
        version=state["originator_version"],
        timestamp=state["timestamp"],
        payload=state,
    )


def genesis_hash(conversation_id: UUID) -> str:
    """The ``prev_hash`` of a conversation's first event."""
    return hashlib.sha256(f"opsloop-conversation:{conversation_id}".encode()).hexdigest()
