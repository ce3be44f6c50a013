# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""A log written before warm kernels existed still loads, upcasts and verifies, on every store.

``BlockFinished`` gained ``kernel`` (class version 3). Version-1 rows (before redaction too)
and version-2 rows, as older opsloops stored them, are inserted with a correct hash chain;
both upcast to ``kernel == "new"`` (every block then ran in a fresh interpreter), the chain
verifies over the stored forms, and a new version-3 event chains on top.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.app.application import ConversationApp
from sandbox.result import RunResult
from tests.integration.test_event_store import HERE, database_url, opened, run_cli  # noqa: F401
from tests.integration.test_events_before_redaction import (
    BLOCK_RESULT,
    MODEL_TURN,
    insert_chained,
)


def _started(block_id: str, turn: int) -> tuple[str, dict[str, object]]:
    return (
        "BlockStarted",
        {
            "block_id": block_id,
            "turn": turn,
            "index": 1,
            "language": "python",
            "code": "print(1)",
            "limits": {},
        },
    )


def test_block_results_written_before_warm_kernels_upcast_to_a_new_kernel_and_verify(
    opened: Callable[..., ConversationApp], database_url: str
) -> None:
    app = opened()
    cid = app.start_conversation(coordinates=HERE, by="alice")
    older = [
        ("MessageReceived", {"message_key": "m1", "author": "alice", "text": "one?"}),
        ("ModelReplied", {**MODEL_TURN, "turn": 1, "text": "<helpers>\nprint(1)\n</helpers>"}),
        _started("t1b1", 1),
        ("BlockFinished", {**BLOCK_RESULT, "block_id": "t1b1", "stdout": "1\n"}),  # version 1
        ("ModelReplied", {**MODEL_TURN, "turn": 2, "text": "<helpers>\nprint(1)\n</helpers>"}),
        _started("t2b1", 2),
        (
            "BlockFinished",  # version 2: with redacted, without kernel
            {
                **BLOCK_RESULT,
                "block_id": "t2b1",
                "stdout": "1\n",
                "redacted": {},
                "class_version": 2,
            },
        ),
        ("ModelReplied", {**MODEL_TURN, "turn": 3, "text": "<helpers>\nprint(1)\n</helpers>"}),
    ]
    insert_chained(app, cid, older, prev=app.get(cid).last_hash)
    finished = [e for e in app.timeline(cid) if e["type"].endswith("BlockFinished")]
    assert [e["kernel"] for e in finished] == ["new", "new"]
    assert app.verify(cid).intact
    app.start_block(cid, block_id="t3b1", limits={})
    result = RunResult(exit_code=0, signal=None, stdout="1\n", stderr="", duration_ms=1)
    app.finish_block(
        cid, block_id="t3b1", result=RunResult(**{**result.__dict__, "kernel": "warm"})
    )
    assert app.timeline(cid)[-1]["kernel"] == "warm"  # written as version 3
    assert app.verify(cid).intact
    verified = run_cli(database_url, "audit", "verify", str(cid))
    assert verified.returncode == 0, verified.stderr
