"""The aggregate refuses incoherent histories (issue 13): pure domain rules, no store.

Two processes that both thought they ran a loop once recorded a model reply while a block of
the previous turn was running, threw that block's result away and left announced blocks
unrun. These rules make such a record impossible, whoever sends the commands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.coherence import incoherence
from domain.conversation import Conversation
from domain.errors import DomainError, InvalidTransition, LoopTakenOver, UnknownBlock
from domain.limits import LoopLimits
from domain.steps import Stop, Wait, next_step
from tests.unit.test_conversation import finish, reply, working

TWO = 'checking <helpers>print(1)</helpers> and <helpers lang="bash">ls</helpers>'
LEASE = datetime(2030, 1, 1, tzinfo=UTC)


def kinds(conv: Conversation) -> list[str]:
    return [type(e).__name__ for e in conv.collect_events()]


def story(conv: Conversation) -> list[tuple[str, dict[str, Any]]]:
    return [(type(e).__name__, dict(vars(e))) for e in conv.collect_events()]


def test_a_model_reply_is_refused_while_a_block_of_the_last_turn_is_running() -> None:
    conv = working()
    reply(conv, TWO)
    conv.start_block(block_id="t1b1", limits={})
    with pytest.raises(InvalidTransition, match="t1b1 of the last model turn is still started"):
        reply(conv, "the answer")


def test_a_model_reply_or_answer_is_refused_while_an_announced_block_is_pending() -> None:
    conv = working()
    reply(conv, TWO)
    conv.start_block(block_id="t1b1", limits={})
    finish(conv, "t1b1")
    with pytest.raises(InvalidTransition, match="t1b2"):
        reply(conv, "the answer")
    with pytest.raises(InvalidTransition, match="t1b2"):
        conv.answer(text="done")
    with pytest.raises(InvalidTransition, match="t1b2"):
        conv.record_model_failure(provider="p", model="m", error="down", attempts=1)


def test_a_message_during_a_turn_keeps_its_blocks_and_their_results_count() -> None:
    conv = working()
    reply(conv, TWO)
    conv.start_block(block_id="t1b1", limits={})
    conv.receive_message(message_key="m2", author="bob", text="and the memory?")
    finish(conv, "t1b1")  # the block really ran: its result is recorded, not thrown away
    assert [b.status for b in conv.last_turn_blocks] == ["succeeded", "pending"]
    step = next_step(conv, LoopLimits(), now=0.0)
    assert type(step).__name__ == "RunBlock" and step.block.block_id == "t1b2"  # type: ignore[union-attr]
    conv.start_block(block_id="t1b2", limits={})
    finish(conv, "t1b2")
    assert type(next_step(conv, LoopLimits(), now=0.0)).__name__ == "CallModel"
    reply(conv, "both checked")
    assert incoherence(story(conv)) is None


def test_a_result_after_its_block_was_recorded_unknown_is_recorded_late_not_dropped() -> None:
    conv = working()
    reply(conv, "<helpers>print(1)</helpers>")
    conv.start_block(block_id="t1b1", limits={})
    conv.mark_block_unknown(block_id="t1b1", detail="the process that ran it lost the loop")
    reply(conv, "I could not see the result.")
    finish(conv, "t1b1", stdout="it did run\n")
    assert not conv.is_late("t1b1")
    with pytest.raises(UnknownBlock):  # a block never gets two results
        finish(conv, "t1b1")
    events = conv.collect_events()
    assert type(events[-1]).__name__ == "BlockFinishedLate"
    assert events[-1].stdout == "it did run\n"  # type: ignore[attr-defined]
    assert incoherence((type(e).__name__, dict(vars(e))) for e in events) is None


def test_a_late_result_is_recorded_even_after_the_conversation_stopped() -> None:
    conv = working()
    reply(conv, "<helpers>print(1)</helpers>")
    conv.start_block(block_id="t1b1", limits={})
    conv.mark_block_unknown(block_id="t1b1", detail="lost")
    conv.stop(reason="cancelled", detail="stopped by alice")
    finish(conv, "t1b1")
    assert kinds(conv)[-2:] == ["Stopped", "BlockFinishedLate"]


def test_a_stop_skips_the_blocks_not_started_and_never_passes_a_running_one() -> None:
    conv = working()
    reply(conv, TWO)
    conv.start_block(block_id="t1b1", limits={})
    with pytest.raises(UnknownBlock, match="t1b1 is still running"):
        conv.stop(reason="cancelled", detail="by alice")
    conv.mark_block_unknown(block_id="t1b1", detail="cancelled while it ran")
    conv.stop(reason="cancelled", detail="by alice")
    assert kinds(conv)[-2:] == ["BlockSkipped", "Stopped"]
    assert [b.status for b in conv.last_turn_blocks] == ["unknown", "skipped"]
    assert incoherence(story(conv)) is None


def test_a_stop_request_is_recorded_once_and_the_loop_decides_to_stop() -> None:
    conv = working()
    reply(conv, TWO)
    assert conv.request_stop(message_key="s1", by="alice")
    assert not conv.request_stop(message_key="s1", by="alice")  # a redelivery
    assert conv.stop_requested_by == "alice"
    step = next_step(conv, LoopLimits(), now=0.0)
    assert step == Stop(reason="cancelled", detail="stopped by alice")


def test_a_stop_request_waits_for_a_block_another_process_is_running() -> None:
    conv = working()
    reply(conv, TWO)
    conv.start_block(block_id="t1b1", limits={"wall_seconds": 10})
    conv.request_stop(message_key="s1", by="alice")
    started = conv.last_turn_blocks[0].started_at
    assert started is not None
    assert isinstance(next_step(conv, LoopLimits(), now=started + 1), Wait)


def test_a_new_message_withdraws_a_stop_request_that_was_not_carried_out() -> None:
    conv = working()
    reply(conv, TWO)
    conv.request_stop(message_key="s1", by="alice")
    conv.receive_message(message_key="m2", author="alice", text="actually, go on")
    assert conv.stop_requested_by is None
    assert type(next_step(conv, LoopLimits(), now=0.0)).__name__ == "RunBlock"


def test_a_stop_request_is_not_recorded_when_nothing_is_being_worked_on() -> None:
    conv = working()
    reply(conv, "done")
    conv.answer(text="done")
    assert not conv.request_stop(message_key="s1", by="alice")


def test_a_step_under_an_old_lease_token_is_refused_once_another_process_claimed() -> None:
    conv = working()
    conv.claim_loop(by="replica-a", token=1, lease_until=LEASE)
    conv.check_holder(1)
    conv.claim_loop(by="replica-b", token=2, lease_until=LEASE, taken_over_from="replica-a")
    with pytest.raises(LoopTakenOver, match="held by replica-b"):
        conv.check_holder(1)
    with pytest.raises(LoopTakenOver):  # tokens only grow
        conv.claim_loop(by="replica-a", token=2, lease_until=LEASE)
    assert conv.loop_holder == ("replica-b", 2)


def test_the_coherence_check_names_a_reply_recorded_over_a_running_block() -> None:
    broken = [
        ("MessageReceived", {"message_key": "m1"}),
        ("ModelReplied", {"turn": 1, "text": "<helpers>print(1)</helpers>"}),
        ("BlockStarted", {"block_id": "t1b1"}),
        ("ModelReplied", {"turn": 2, "text": "NO RESULT SEEN"}),
        ("BlockFinished", {"block_id": "t1b1"}),
    ]
    assert incoherence(broken) == "event 4 (ModelReplied) comes while block t1b1 has no outcome"
    unrun = [
        ("ModelReplied", {"turn": 1, "text": TWO}),
        ("BlockStarted", {"block_id": "t1b1"}),
        ("BlockFinished", {"block_id": "t1b1"}),
        ("Answered", {"text": "done"}),
    ]
    assert incoherence(unrun) == "event 4 (Answered) comes while block t1b2 has no outcome"


COMMANDS = st.lists(
    st.sampled_from(
        [
            "reply2",
            "reply0",
            "start",
            "finish",
            "unknown",
            "skip",
            "message",
            "stop",
            "request_stop",
            "answer",
            "late",
        ]
    ),
    max_size=30,
)


@settings(deadline=None, max_examples=150)
@given(COMMANDS)
def test_no_order_of_commands_from_any_process_records_an_incoherent_history(
    commands: list[str],
) -> None:
    conv = working()
    for n, name in enumerate(commands):
        blocks = conv.last_turn_blocks
        first = {
            s: next((b.block_id for b in blocks if b.status == s), "t9b9")
            for s in ("pending", "started", "unknown")
        }
        try:
            match name:
                case "reply2" | "reply0":
                    reply(conv, TWO if name == "reply2" else "plain words")
                case "start":
                    conv.start_block(block_id=first["pending"], limits={})
                case "finish":
                    finish(conv, first["started"])
                case "late":
                    finish(conv, first["unknown"])
                case "unknown":
                    conv.mark_block_unknown(block_id=first["started"], detail="lost")
                case "skip":
                    conv.skip_block(block_id=first["pending"], reason="earlier failed")
                case "message":
                    conv.receive_message(message_key=f"m{n}", author="bob", text="more")
                case "stop":
                    conv.stop(reason="cancelled")
                case "request_stop":
                    conv.request_stop(message_key=f"s{n}", by="bob")
                case _:
                    conv.answer(text="done")
        except DomainError:
            continue  # refused: nothing was recorded
    assert incoherence(story(conv)) is None
