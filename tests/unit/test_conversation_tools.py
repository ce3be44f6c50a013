"""Tool calls in the ``Conversation`` aggregate: recorded while their block runs, each with
exactly one outcome, always before the block's own outcome."""

from __future__ import annotations

from typing import Any

import pytest

from domain.conversation import Conversation
from domain.conversation_tools import UNSETTLED_CALL
from domain.errors import DomainError, InvalidTransition

RESULT: dict[str, Any] = {
    "exit_code": 0,
    "signal": None,
    "stdout": "ok\n",
    "stderr": "",
    "duration_ms": 5,
    "cpu_ms": 2,
    "timed_out": False,
    "memory_exceeded": False,
    "output_truncated": False,
    "unsafe_local": False,
}


def running_block() -> Conversation:
    conv = Conversation.start(
        platform="slack", workspace="T1", channel="C1", thread="1.1", started_by="alice"
    )
    conv.receive_message(message_key="m1", author="alice", text="disks?")
    conv.record_model_reply(
        provider="scripted",
        model="test",
        text="<helpers>\nimport tools\nprint(tools.disk())\n</helpers>",
        input_tokens=1,
        output_tokens=1,
        tokens_estimated=False,
        cost=0.0,
        priced=True,
        latency_ms=1,
        attempts=1,
        prompt_fingerprint="fp",
    )
    conv.start_block(block_id="t1b1", limits={"wall_seconds": 10})
    return conv


def kinds(conv: Conversation) -> list[str]:
    return [type(e).__name__ for e in conv.collect_events()][-4:]


def call(conv: Conversation, call_id: str = "t1b1c1", **changes: Any) -> None:
    fields = {"block_id": "t1b1", "call_id": call_id, "tool": "disk", "arguments": {"path": "/"}}
    conv.call_tool(**{**fields, **changes})


def test_a_call_and_its_result_are_recorded_while_the_block_runs() -> None:
    conv = running_block()
    call(conv, redacted=("TOKEN",))
    conv.return_tool(
        call_id="t1b1c1",
        ok=True,
        result={"used": "40%"},
        result_bytes=16,
        truncated=False,
        duration_ms=3,
        error=None,
    )
    conv.finish_block(block_id="t1b1", **RESULT)
    events = conv.collect_events()
    called, returned, finished = events[-3:]
    assert (type(called).__name__, called.tool, called.arguments) == (
        "ToolCalled",
        "disk",
        {"path": "/"},
    )
    assert called.redacted == ["TOKEN"]
    assert (type(returned).__name__, returned.result) == ("ToolReturned", {"used": "40%"})
    assert type(finished).__name__ == "BlockFinished"
    assert conv.tool_call("t1b1c1") == {"block_id": "t1b1", "tool": "disk", "status": "returned"}


def test_a_refusal_is_the_outcome_of_a_recorded_call_and_names_its_tool() -> None:
    conv = running_block()
    call(conv, tool="deploy")
    conv.refuse_tool(call_id="t1b1c1", reason="deploy is not a tool here")
    refused = conv.collect_events()[-1]
    assert (refused.block_id, refused.tool, refused.reason) == (
        "t1b1",
        "deploy",
        "deploy is not a tool here",
    )


def test_a_call_is_refused_for_a_block_that_is_not_running() -> None:
    conv = running_block()
    conv.finish_block(block_id="t1b1", **RESULT)
    with pytest.raises(DomainError):
        call(conv)
    with pytest.raises(DomainError):
        call(conv, block_id="t1b2")


def test_each_call_id_is_recorded_once_and_has_exactly_one_outcome() -> None:
    conv = running_block()
    call(conv)
    with pytest.raises(InvalidTransition):
        call(conv)
    conv.mark_tool_unknown(call_id="t1b1c1", detail="lost")
    with pytest.raises(InvalidTransition):
        conv.refuse_tool(call_id="t1b1c1", reason="too late")
    with pytest.raises(InvalidTransition, match="never recorded"):
        conv.return_tool(
            call_id="t1b1c9",
            ok=True,
            result="x",
            result_bytes=1,
            truncated=False,
            duration_ms=1,
            error=None,
        )


@pytest.mark.parametrize("outcome", ["finish", "unknown", "refuse"])
def test_a_block_that_ends_with_a_call_open_records_the_call_unknown_first(outcome: str) -> None:
    conv = running_block()
    call(conv)
    if outcome == "finish":
        conv.finish_block(block_id="t1b1", **RESULT)
    elif outcome == "unknown":
        conv.mark_block_unknown(block_id="t1b1", detail="the process died")
    else:
        conv.refuse_block(block_id="t1b1", reason="the sandbox went away")
    unknown, ended = conv.collect_events()[-2:]
    assert (type(unknown).__name__, unknown.call_id, unknown.detail) == (
        "ToolOutcomeUnknown",
        "t1b1c1",
        UNSETTLED_CALL,
    )
    assert type(ended).__name__ in {"BlockFinished", "BlockOutcomeUnknown", "BlockRefused"}
    assert conv.open_tool_calls("t1b1") == []


def test_the_state_rebuilt_from_the_events_knows_the_calls() -> None:
    conv = running_block()
    call(conv)
    events = conv.collect_events()
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt is not None
    assert rebuilt.open_tool_calls("t1b1") == ["t1b1c1"]
    assert rebuilt.last_hash == conv.last_hash
