"""The Conversation aggregate: guards, statuses, blocks and the hash chain (pure, no store)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain import events as ev
from domain.chain import genesis_hash, hash_of
from domain.conversation import Conversation
from domain.errors import (
    ConversationRenewed,
    ConversationStopped,
    InvalidTransition,
    UnknownBlock,
)
from domain.ids import conversation_id
from domain.state import LoopState

REPLY_TWO_BLOCKS = 'checking <helpers>print(1)</helpers> and <helpers lang="bash">ls</helpers>'


def started(**overrides: Any) -> Conversation:
    kwargs = {
        "platform": "slack",
        "workspace": "T1",
        "channel": "C1",
        "thread": "1.1",
        "started_by": "alice",
    }
    kwargs.update(overrides)
    return Conversation.start(**kwargs)


def reply(conv: Conversation, text: str = REPLY_TWO_BLOCKS, **overrides: Any) -> None:
    kwargs = {
        "provider": "ollama",
        "model": "llama3.1",
        "text": text,
        "input_tokens": 100,
        "output_tokens": 20,
        "tokens_estimated": False,
        "cost": 0.25,
        "priced": True,
        "latency_ms": 900,
        "attempts": 1,
        "prompt_fingerprint": "fp",
    }
    kwargs.update(overrides)
    conv.record_model_reply(**kwargs)


def finish(conv: Conversation, block_id: str, **overrides: Any) -> None:
    kwargs = {
        "exit_code": 0,
        "signal": None,
        "stdout": "1\n",
        "stderr": "",
        "duration_ms": 12,
        "cpu_ms": 3,
        "timed_out": False,
        "memory_exceeded": False,
        "output_truncated": False,
        "unsafe_local": False,
    }
    kwargs.update(overrides)
    conv.finish_block(block_id=block_id, **kwargs)


def working() -> Conversation:
    conv = started()
    conv.receive_message(message_key="m1", author="alice", text="why is disk full?")
    return conv


def test_the_id_is_the_uuid5_of_the_coordinates_and_is_stable() -> None:
    conv = started()
    assert conv.id == conversation_id(platform="slack", workspace="T1", channel="C1", thread="1.1")
    assert conv.id == started().id
    assert conv.id != started(thread="1.2").id
    assert conv.id.version == 5


def test_a_later_generation_has_a_different_id() -> None:
    g0 = conversation_id(platform="slack", workspace="T1", channel="C1", thread="1.1")
    g1 = conversation_id(platform="slack", workspace="T1", channel="C1", thread="1.1", generation=1)
    assert g0 != g1
    assert started(generation=1).id == g1


def test_a_new_conversation_is_idle_and_satisfies_loop_state() -> None:
    conv = started()
    assert conv.status == "idle"
    assert isinstance(conv, Conversation)
    state: LoopState = conv
    assert (state.turns_since_message, state.last_reply_text, state.last_turn_blocks) == (
        0,
        None,
        (),
    )
    assert (state.tokens_used, state.cost_used) == (0, 0.0)


def test_a_message_opens_the_conversation() -> None:
    conv = working()
    assert conv.status == "open"
    assert conv.has_message("m1")


def test_a_redelivered_message_records_nothing_and_says_so() -> None:
    conv = working()
    version = conv.version
    assert conv.receive_message(message_key="m1", author="alice", text="why is disk full?") is False
    assert conv.version == version


def test_a_refused_message_does_not_change_the_status() -> None:
    conv = started()
    assert conv.refuse_message(
        message_key="x", author="mallory", text="rm -rf", reason="not allowed"
    )
    assert conv.status == "idle"
    assert (
        conv.refuse_message(message_key="x", author="mallory", text="rm -rf", reason="again")
        is False
    )


def test_a_model_reply_makes_its_blocks_pending_in_order() -> None:
    conv = working()
    reply(conv)
    blocks = conv.last_turn_blocks
    assert [(b.block_id, b.language, b.code, b.status) for b in blocks] == [
        ("t1b1", "python", "print(1)", "pending"),
        ("t1b2", "bash", "ls", "pending"),
    ]
    assert conv.turns_since_message == 1
    assert conv.last_reply_text == REPLY_TWO_BLOCKS
    assert conv.tokens_used == 120
    assert conv.cost_used == pytest.approx(0.25)


def test_blocks_move_through_started_succeeded_failed_and_skipped() -> None:
    conv = working()
    reply(conv)
    conv.start_block(block_id="t1b1", limits={"wall_s": 10})
    assert conv.last_turn_blocks[0].status == "started"
    finish(conv, "t1b1")
    assert conv.last_turn_blocks[0].status == "succeeded"
    conv.skip_block(block_id="t1b2", reason="not needed")
    assert conv.last_turn_blocks[1].status == "skipped"


@pytest.mark.parametrize(
    "outcome",
    [
        {"exit_code": 2},
        {"exit_code": None, "signal": 9},
        {"timed_out": True},
        {"memory_exceeded": True},
    ],
)
def test_a_block_fails_on_non_zero_exit_signal_or_limit(outcome: dict[str, Any]) -> None:
    conv = working()
    reply(conv)
    conv.start_block(block_id="t1b1", limits={})
    finish(conv, "t1b1", **outcome)
    assert conv.last_turn_blocks[0].status == "failed"


def test_refused_and_unknown_blocks_get_their_statuses() -> None:
    conv = working()
    reply(conv)
    conv.refuse_block(block_id="t1b1", reason="policy")
    conv.start_block(block_id="t1b2", limits={})
    conv.mark_block_unknown(block_id="t1b2", detail="process restarted")
    assert [b.status for b in conv.last_turn_blocks] == ["refused", "unknown"]


def test_a_block_cannot_start_twice_or_finish_before_it_starts() -> None:
    conv = working()
    reply(conv)
    with pytest.raises(UnknownBlock):
        finish(conv, "t1b1")
    conv.start_block(block_id="t1b1", limits={})
    with pytest.raises(UnknownBlock):
        conv.start_block(block_id="t1b1", limits={})
    with pytest.raises(UnknownBlock):
        conv.start_block(block_id="t9b9", limits={})


def test_block_ids_count_turns_across_the_whole_conversation() -> None:
    conv = working()
    reply(conv, text="<helpers>a</helpers>")
    conv.start_block(block_id="t1b1", limits={})
    finish(conv, "t1b1")
    reply(conv, text="done")
    conv.answer(text="done")
    conv.receive_message(message_key="m2", author="bob", text="and now?")
    reply(conv, text="<helpers>b</helpers>")
    assert [b.block_id for b in conv.last_turn_blocks] == ["t3b1"]
    assert conv.turns_since_message == 1


def test_answered_then_a_new_message_reopens_and_resets_the_turn() -> None:
    conv = working()
    reply(conv, text="it is /var/log")
    conv.answer(text="it is /var/log")
    assert conv.status == "answered"
    conv.receive_message(message_key="m2", author="alice", text="thanks, and ci-4?")
    assert conv.status == "open"
    assert (conv.turns_since_message, conv.last_reply_text, conv.last_turn_blocks) == (0, None, ())


def test_nothing_but_a_message_can_follow_stopped() -> None:
    conv = working()
    conv.stop(reason="cancelled")
    assert conv.status == "stopped"
    version = conv.version
    with pytest.raises(ConversationStopped):
        reply(conv)
    with pytest.raises(ConversationStopped):
        conv.answer(text="late")
    with pytest.raises(ConversationStopped):
        conv.stop(reason="cancelled")
    with pytest.raises(ConversationStopped):
        conv.record_model_failure(provider="p", model="m", error="e", attempts=1)
    assert conv.version == version  # guards raise before any change
    conv.receive_message(message_key="m2", author="alice", text="try again")
    assert conv.status == "open"


def test_model_turns_need_a_message_being_worked_on() -> None:
    conv = started()
    with pytest.raises(InvalidTransition):
        reply(conv)
    with pytest.raises(InvalidTransition):
        conv.answer(text="unasked")


def test_after_renewal_nothing_more_can_be_recorded() -> None:
    conv = working()
    conv.stop(reason="cancelled")
    successor = conversation_id(
        platform="slack", workspace="T1", channel="C1", thread="1.1", generation=1
    )
    conv.renew(successor_id=successor, by="alice")
    assert conv.successor_id == successor
    with pytest.raises(ConversationRenewed):
        conv.receive_message(message_key="m9", author="alice", text="hello?")


def test_every_event_carries_the_hash_of_its_predecessor() -> None:
    conv = working()
    reply(conv)
    conv.start_block(block_id="t1b1", limits={"wall_s": 5})
    finish(conv, "t1b1")
    pending = list(conv.pending_events)
    assert isinstance(pending[0], ev.Started)
    assert pending[0].prev_hash == genesis_hash(conv.id)
    for before, after in zip(pending, pending[1:], strict=False):
        assert after.prev_hash == hash_of(before)
    assert conv.last_hash == hash_of(pending[-1])


def test_the_hash_covers_type_version_timestamp_and_payload() -> None:
    conv = working()
    event = conv.pending_events[-1]
    original = hash_of(event)
    for field, value in (("text", "changed"), ("originator_version", 7)):
        altered = object.__new__(type(event))
        object.__setattr__(altered, "__dict__", {**vars(event), field: value})
        assert hash_of(altered) != original
    genesis = genesis_hash(UUID(int=1))
    assert genesis != genesis_hash(UUID(int=2))


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    conv = working()
    reply(conv)
    conv.start_block(block_id="t1b1", limits={})
    finish(conv, "t1b1", exit_code=1)
    conv.skip_block(block_id="t1b2", reason="earlier block failed")
    events = conv.collect_events()
    rebuilt = None
    for e in events:
        rebuilt = e.mutate(rebuilt)
    assert isinstance(rebuilt, Conversation)
    assert rebuilt.last_turn_blocks == conv.last_turn_blocks
    assert (rebuilt.status, rebuilt.last_hash, rebuilt.version) == (
        conv.status,
        conv.last_hash,
        conv.version,
    )
