"""Whether a block failed: one rule, asked by the aggregate, the prompt and every surface."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.surface import failed
from domain.conversation import Conversation
from domain.state import block_failed
from sandbox.result import RunResult

exits = st.one_of(st.none(), st.integers(min_value=0, max_value=255))
signals = st.one_of(st.none(), st.sampled_from([9, 11, 15, 24]))


@given(exit_code=exits, signal=signals, timed_out=st.booleans(), memory=st.booleans())
def test_a_block_fails_on_a_non_zero_exit_a_signal_or_any_limit_hit(
    exit_code: int | None, signal: int | None, timed_out: bool, memory: bool
) -> None:
    expected = exit_code != 0 or signal is not None or timed_out or memory
    assert (
        block_failed(
            exit_code=exit_code, signal=signal, timed_out=timed_out, memory_exceeded=memory
        )
        == expected
    )


@given(exit_code=exits, signal=signals, timed_out=st.booleans(), memory=st.booleans())
def test_the_aggregate_and_the_surfaces_agree_on_what_failed(
    exit_code: int | None, signal: int | None, timed_out: bool, memory: bool
) -> None:
    result = RunResult(
        exit_code=exit_code,
        signal=signal,
        stdout="",
        stderr="",
        duration_ms=1,
        timed_out=timed_out,
        memory_exceeded=memory,
    )
    conv = Conversation.start(
        platform="slack", workspace="T1", channel="C1", thread="1.1", started_by="alice"
    )
    conv.receive_message(message_key="m1", author="alice", text="go")
    conv.record_model_reply(
        provider="scripted",
        model="test",
        text="<helpers>\nprint(1)\n</helpers>",
        input_tokens=1,
        output_tokens=1,
        tokens_estimated=False,
        cost=0.0,
        priced=True,
        latency_ms=1,
        attempts=1,
        prompt_fingerprint="fp",
    )
    conv.start_block(block_id="t1b1", limits={})
    conv.finish_block(
        block_id="t1b1",
        **{k: v for k, v in result.to_dict().items() if k != "unsafe_local"},
        unsafe_local=False,
    )
    (block,) = conv.last_turn_blocks
    assert (block.status == "failed") == failed(result)
