"""``next_step`` and ``LoopLimits``: every branch of the loop's decision, on plain values."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.limits import InvalidLimits, LoopLimits
from domain.state import BlockState, BlockStatus, ConversationStatus, LoopState
from domain.steps import (
    GRACE_SECONDS,
    Answer,
    CallModel,
    Idle,
    ResolveUnknown,
    RunBlock,
    SkipBlock,
    Stop,
    Wait,
    next_step,
)


@dataclass(frozen=True)
class State:
    """A hand-written LoopState: only the facts next_step reads."""

    status: ConversationStatus = "open"
    turns_since_message: int = 0
    last_reply_text: str | None = None
    last_turn_blocks: tuple[BlockState, ...] = field(default=())
    tokens_used: int = 0
    cost_used: float = 0.0
    stop_requested_by: str | None = None
    last_reply_truncated: str | None = None
    cut_replies_in_a_row: int = 0


def as_loop_state(state: State) -> LoopState:
    return state  # mypy checks that the fake satisfies the protocol


def block(index: int, status: BlockStatus, *, turn: int = 1) -> BlockState:
    return BlockState(
        block_id=f"t{turn}b{index}",
        turn=turn,
        index=index,
        language="python",
        code=f"print({index})",
        status=status,
    )


def replied(*statuses: BlockStatus, text: str = "Let me check.") -> State:
    blocks = tuple(block(i, s) for i, s in enumerate(statuses, start=1))
    return State(turns_since_message=1, last_reply_text=text, last_turn_blocks=blocks)


LIMITS = LoopLimits()
NOW = 1_800_000_000.0  # epoch seconds; started blocks below carry no time unless they say so


# -- idle --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["idle", "answered", "stopped"])
def test_a_conversation_that_is_not_open_has_nothing_to_do(status: ConversationStatus) -> None:
    assert next_step(as_loop_state(State(status=status)), LIMITS, now=NOW) == Idle()


# -- calling the model -------------------------------------------------------------------


def test_a_new_message_calls_the_model() -> None:
    assert next_step(State(), LIMITS, now=NOW) == CallModel()


def test_when_every_block_has_an_outcome_the_model_is_called_again() -> None:
    state = replied("succeeded", "failed", "skipped")
    assert next_step(state, LIMITS, now=NOW) == CallModel()


def test_refused_and_unknown_blocks_also_count_as_done() -> None:
    assert next_step(replied("refused"), LIMITS, now=NOW) == CallModel()
    assert next_step(replied("unknown"), LIMITS, now=NOW) == CallModel()


# -- blocks ------------------------------------------------------------------------------


def test_the_first_pending_block_runs() -> None:
    state = replied("pending", "pending")
    assert next_step(state, LIMITS, now=NOW) == RunBlock(block=state.last_turn_blocks[0])


def test_blocks_run_in_order_after_earlier_ones_succeeded() -> None:
    state = replied("succeeded", "succeeded", "pending")
    assert next_step(state, LIMITS, now=NOW) == RunBlock(block=state.last_turn_blocks[2])


def test_after_a_failed_block_the_rest_of_the_turn_is_skipped() -> None:
    state = replied("succeeded", "failed", "pending", "pending")
    step = next_step(state, LIMITS, now=NOW)
    assert step == SkipBlock(
        block=state.last_turn_blocks[2], reason="an earlier block of this turn (t1b2) failed"
    )
    later = replace(
        state,
        last_turn_blocks=(*state.last_turn_blocks[:2], block(3, "skipped"), block(4, "pending")),
    )
    skip = next_step(later, LIMITS, now=NOW)
    assert isinstance(skip, SkipBlock) and skip.block.block_id == "t1b4"
    assert "t1b2" in skip.reason  # the cause, not the skipped block in between


@pytest.mark.parametrize(
    ("status", "words"), [("refused", "was refused"), ("unknown", "has an unknown outcome")]
)
def test_a_refused_or_unknown_block_also_skips_the_rest(status: BlockStatus, words: str) -> None:
    step = next_step(replied(status, "pending"), LIMITS, now=NOW)
    assert isinstance(step, SkipBlock) and words in step.reason


def test_a_started_block_without_outcome_is_resolved_as_unknown_never_rerun() -> None:
    state = replied("succeeded", "started", "pending")
    assert next_step(state, LIMITS, now=NOW) == ResolveUnknown(block=state.last_turn_blocks[1])


def started_at(when: float, *, wall: float | None) -> State:
    begun = replace(block(1, "started"), started_at=when, wall_seconds=wall)
    return State(turns_since_message=1, last_reply_text="x", last_turn_blocks=(begun,))


def test_a_block_that_may_still_be_running_elsewhere_is_waited_for_until_its_limit_passes() -> None:
    state = started_at(NOW - 3, wall=30)
    over = NOW - 3 + 30 + GRACE_SECONDS
    assert next_step(state, LIMITS, now=NOW) == Wait(block=state.last_turn_blocks[0], until=over)
    assert isinstance(next_step(state, LIMITS, now=over - 0.001), Wait)
    assert next_step(state, LIMITS, now=over) == ResolveUnknown(block=state.last_turn_blocks[0])


def test_a_started_block_without_a_recorded_wall_limit_waits_out_the_configured_one() -> None:
    state = started_at(NOW, wall=None)
    step = next_step(state, LoopLimits(block_wall_seconds=20), now=NOW)
    assert step == Wait(block=state.last_turn_blocks[0], until=NOW + 20 + GRACE_SECONDS)


@given(
    age=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    wall=st.floats(min_value=0.1, max_value=3600, allow_nan=False),
)
def test_a_started_block_is_waited_for_exactly_while_it_could_still_run(
    age: float, wall: float
) -> None:
    step = next_step(started_at(NOW - age, wall=wall), LIMITS, now=NOW)
    assert isinstance(step, Wait) == (age < wall + GRACE_SECONDS)
    assert isinstance(step, Wait | ResolveUnknown)


def test_pending_blocks_run_even_past_the_turn_limit_and_budget() -> None:
    # the model already spent the turn; running its blocks costs no tokens
    state = replace(replied("pending"), turns_since_message=10, tokens_used=500)
    step = next_step(state, LoopLimits(turns_per_message=10, token_budget=100), now=NOW)
    assert isinstance(step, RunBlock)


# -- answers -----------------------------------------------------------------------------


def test_a_reply_without_blocks_is_the_answer_without_its_surroundings() -> None:
    state = replied(text="  The disk is full: /var/log holds 40 GB.\n")
    assert next_step(state, LIMITS, now=NOW) == Answer(
        text="The disk is full: /var/log holds 40 GB."
    )


def test_a_reply_with_only_empty_blocks_answers_with_its_prose() -> None:
    state = replied(text="All done. <helpers>\n</helpers>")
    assert next_step(state, LIMITS, now=NOW) == Answer(text="All done.")


def test_a_reply_with_an_unclosed_block_is_not_an_answer_the_model_is_asked_again() -> None:
    state = replied(text="Let me check.\n<helpers>\nprint(1)\n")
    assert next_step(state, LIMITS, now=NOW) == CallModel()


def test_an_empty_reply_is_not_an_answer() -> None:
    assert next_step(replied(text="   "), LIMITS, now=NOW) == CallModel()


# -- limits ------------------------------------------------------------------------------


def test_the_turn_limit_stops_a_model_that_never_answers() -> None:
    state = replace(replied("succeeded"), turns_since_message=3)
    step = next_step(state, LoopLimits(turns_per_message=3), now=NOW)
    assert isinstance(step, Stop) and step.reason == "turn_limit"
    assert "3 turns" in step.detail
    assert next_step(
        replace(state, turns_since_message=2), LoopLimits(turns_per_message=3), now=NOW
    ) == (CallModel())


def test_an_answer_is_still_given_on_the_last_allowed_turn() -> None:
    state = replace(replied(text="Here it is."), turns_since_message=10)
    assert next_step(state, LIMITS, now=NOW) == Answer(text="Here it is.")


def test_the_token_budget_stops_before_the_next_model_call() -> None:
    limits = LoopLimits(token_budget=1000)
    assert next_step(State(tokens_used=999), limits, now=NOW) == CallModel()
    step = next_step(State(tokens_used=1000), limits, now=NOW)
    assert isinstance(step, Stop) and step.reason == "budget" and "1000" in step.detail


def test_the_cost_budget_stops_before_the_next_model_call() -> None:
    limits = LoopLimits(cost_budget=0.5)
    assert next_step(State(cost_used=0.49), limits, now=NOW) == CallModel()
    step = next_step(replace(replied("failed"), cost_used=0.5), limits, now=NOW)
    assert isinstance(step, Stop) and step.reason == "budget" and "$0.5000" in step.detail


def test_no_budget_means_unlimited() -> None:
    assert next_step(State(tokens_used=10**12, cost_used=1e9), LIMITS, now=NOW) == CallModel()


# -- LoopLimits --------------------------------------------------------------------------


def test_limits_default_to_ten_turns_and_no_budget() -> None:
    assert LoopLimits() == LoopLimits(turns_per_message=10, token_budget=None, cost_budget=None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"turns_per_message": 0},
        {"turns_per_message": True},
        {"turns_per_message": 2.5},
        {"token_budget": 0},
        {"token_budget": -5},
        {"token_budget": 10.0},
        {"cost_budget": 0},
        {"cost_budget": -1.0},
        {"cost_budget": float("nan")},
        {"cost_budget": float("inf")},
        {"cost_budget": "1"},
    ],
)
def test_nonsense_limits_are_refused_with_a_clear_message(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidLimits, match="must be"):
        LoopLimits(**kwargs)  # type: ignore[arg-type]


def test_limits_are_immutable_values() -> None:
    limits = LoopLimits(turns_per_message=3, token_budget=100, cost_budget=1)
    with pytest.raises(AttributeError):
        limits.turns_per_message = 4  # type: ignore[misc]
    assert limits == LoopLimits(turns_per_message=3, token_budget=100, cost_budget=1)


STATUSES = st.sampled_from(
    ["pending", "started", "succeeded", "failed", "skipped", "refused", "unknown"]
)


@settings(deadline=None)  # no timing in unit tests: the machine is shared
@given(
    st.lists(STATUSES, max_size=5),
    st.integers(min_value=0, max_value=12),
    st.text(max_size=40),
)
def test_a_block_step_always_names_the_first_unfinished_block(
    statuses: list[BlockStatus], turns: int, text: str
) -> None:
    state = replace(replied(*statuses, text=text), turns_since_message=turns)
    step = next_step(state, LIMITS, now=NOW)
    unfinished = [b for b in state.last_turn_blocks if b.status in ("pending", "started")]
    if unfinished:
        assert isinstance(step, RunBlock | SkipBlock | ResolveUnknown)
        assert step.block == unfinished[0]
    else:
        assert isinstance(step, CallModel | Answer | Stop)


# -- replies cut by a cap (issue 15) ---------------------------------------------------------


def test_a_cut_reply_that_holds_a_complete_block_still_runs_it() -> None:
    state = replace(replied("pending"), last_reply_truncated="time")
    assert isinstance(next_step(state, LIMITS, now=NOW), RunBlock)


def test_a_cut_reply_without_a_block_gets_one_more_turn_not_an_answer() -> None:
    state = replace(
        replied(text="The answer is 2 to the hundredth, which is 1267650600228229401"),
        last_reply_truncated="tokens",
        cut_replies_in_a_row=1,
    )
    assert next_step(state, LIMITS, now=NOW) == CallModel()


def test_a_second_cut_in_a_row_stops_the_loop_saying_why() -> None:
    state = replace(
        replied(text="[INST] [INST] [INST]"),
        last_reply_truncated="repetition",
        cut_replies_in_a_row=2,
    )
    step = next_step(state, LIMITS, now=NOW)
    assert isinstance(step, Stop) and step.reason == "truncated"
    assert "repetition detector" in step.detail and "2 times" in step.detail


def test_the_retry_after_a_cut_stays_within_the_turn_limit() -> None:
    state = replace(
        replied(text="cut"),
        turns_since_message=LIMITS.turns_per_message,
        last_reply_truncated="time",
        cut_replies_in_a_row=1,
    )
    step = next_step(state, LIMITS, now=NOW)
    assert isinstance(step, Stop) and step.reason == "turn_limit"
