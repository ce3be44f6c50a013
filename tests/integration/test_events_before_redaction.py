# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""A log written before redaction existed still loads, upcasts and verifies, on every store.

Five events gained ``redacted`` (class version 2). Their version-1 rows, as an older opsloop
stored them, are inserted with a correct hash chain; the application must upcast them to
``redacted == {}``, evolve the conversation from them, verify the chain over the stored
forms, and chain new version-2 events on top.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from bot.app.application import ConversationApp
from domain.chain import event_hash
from tests.integration.test_event_store import HERE, database_url, opened, run_cli  # noqa: F401

MODEL_TURN: dict[str, Any] = {
    "provider": "ollama",
    "model": "llama3.1",
    "input_tokens": 1,
    "output_tokens": 1,
    "tokens_estimated": False,
    "cost": 0.0,
    "priced": False,
    "latency_ms": 1,
    "attempts": 1,
    "prompt_fingerprint": "f",
    "prompt_notes": "",
}
BLOCK_RESULT: dict[str, Any] = {
    "exit_code": 0,
    "signal": None,
    "stderr": "",
    "duration_ms": 1,
    "cpu_ms": 1,
    "timed_out": False,
    "memory_exceeded": False,
    "output_truncated": False,
    "unsafe_local": False,
}


def insert_chained(
    app: ConversationApp, cid: UUID, events: list[tuple[str, dict[str, Any]]], *, prev: str
) -> None:
    """Append events as an older opsloop stored them (no class_version), hash-chained."""
    version = len(app.recorder.select_events(cid))
    for type_name, payload in events:
        version += 1
        state = {"timestamp": datetime.now(UTC), "prev_hash": prev, **payload}
        app.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=cid,
                    originator_version=version,
                    topic=f"domain.events:{type_name}",
                    state=app.mapper.transcoder.encode(state),
                )
            ]
        )
        prev = event_hash(
            type_name=type_name, version=version, timestamp=state["timestamp"], payload=state
        )


def test_events_written_before_redaction_existed_load_upcast_and_still_verify(
    opened: Callable[..., ConversationApp], database_url: str
) -> None:
    app = opened()
    cid = app.start_conversation(coordinates=HERE, by="alice")
    # The five events that gained ``redacted``, as the first schema wrote them.
    v1 = [
        (
            "MessageRefused",
            {"message_key": "m0", "author": "eve", "text": "hi", "reason": "no"},
        ),
        ("MessageReceived", {"message_key": "m1", "author": "alice", "text": "disk?"}),
        ("ModelReplied", {**MODEL_TURN, "turn": 1, "text": "<helpers>\ndf\n</helpers>"}),
        (
            "BlockStarted",
            {
                "block_id": "t1b1",
                "turn": 1,
                "index": 1,
                "language": "python",
                "code": "df",
                "limits": {},
            },
        ),
        ("BlockFinished", {**BLOCK_RESULT, "block_id": "t1b1", "stdout": "90% used\n"}),
        ("ModelReplied", {**MODEL_TURN, "turn": 2, "text": "90% full"}),
        ("Answered", {"text": "90% full"}),
    ]
    insert_chained(app, cid, v1, prev=app.get(cid).last_hash)
    timeline = app.timeline(cid)
    assert [e["redacted"] for e in timeline if "redacted" in e] == [{}] * 6
    assert app.get(cid).status == "answered"
    assert app.verify(cid).intact
    app.receive_message(coordinates=HERE, message_key="m2", author="alice", text="thanks")
    assert app.timeline(cid)[-1]["redacted"] == {}  # a new event, written as version 2
    assert app.verify(cid).intact
    result = run_cli(database_url, "audit", "verify", str(cid))
    assert result.returncode == 0, result.stderr
