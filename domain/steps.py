"""``next_step``: the loop's decision, a pure function of the recorded conversation and now.

The runner asks, performs exactly the step it gets (a model call, one block, or a record),
records the outcome, and asks again; so the event log alone says where a loop stands.

A turn's blocks always get their outcomes before the next model turn, also when a newer
message arrived meanwhile (the model then sees their results and the message). A stop asked
for (``StopRequested``) ends the loop once no block is running; the rest are skipped.

A block with ``BlockStarted`` but no outcome was started by a process that died, or by
another process (a replica) still running it. It cannot outlive its wall limit (the
sandbox kills it), so only once that limit and a grace have passed since ``BlockStarted``
is it recorded as *outcome unknown*; until then the decision is to ``Wait``. This keeps one
replica from declaring another's running block lost, and after a crash it lets an orphaned
jail finish before the model is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, assert_never

from domain.approvals import ApprovalRules, needs_approval
from domain.helpers import parse_helpers
from domain.limits import LoopLimits
from domain.runaway import CUT_BY
from domain.state import BlockState, LoopState

# The runner adds "model_unavailable".
StopReason = Literal["turn_limit", "budget", "cancelled", "truncated"]
NO_APPROVALS = ApprovalRules()
CUT_RETRIES = 1  # after a reply cut before any block: one "be brief" turn, then Stop
GRACE_SECONDS = 5.0  # nsjail's own clock and the process-group kill land within this


@dataclass(frozen=True)
class CallModel:
    """Ask the model: a new user message, or every block of its last turn has an outcome."""


@dataclass(frozen=True)
class RunBlock:
    """Run this block of the last turn in the sandbox (record BlockStarted first)."""

    block: BlockState
    approved: tuple[str, ...] = ()  # the tools an approver let it call


@dataclass(frozen=True)
class RequestApproval:
    """This block needs an approver's yes first; the request names the tools it may call."""

    block: BlockState
    tools: tuple[str, ...]


@dataclass(frozen=True)
class AwaitApproval:
    """An approval is pending: nothing to do until a decision, or ``until`` (its expiry)."""

    block: BlockState
    request_id: str
    until: float  # epoch seconds


@dataclass(frozen=True)
class ExpireApproval:
    """Nobody decided in time: record the request expired."""

    block: BlockState
    request_id: str


@dataclass(frozen=True)
class RefuseBlock:
    """Record this block refused (its approval was denied or expired); the model is told."""

    block: BlockState
    reason: str


@dataclass(frozen=True)
class SkipBlock:
    """Record this block as skipped: an earlier block of the same turn did not succeed."""

    block: BlockState
    reason: str


@dataclass(frozen=True)
class ResolveUnknown:
    """This block started but has no outcome (the process died): record it unknown, never re-run."""

    block: BlockState


@dataclass(frozen=True)
class Wait:
    """This block started elsewhere and may still be running: decide again at ``until``."""

    block: BlockState
    until: float  # epoch seconds


@dataclass(frozen=True)
class Answer:
    """The last reply has no blocks: its prose is the answer."""

    text: str


@dataclass(frozen=True)
class Stop:
    """The loop must stop without an answer."""

    reason: StopReason
    detail: str


@dataclass(frozen=True)
class Idle:
    """Nothing to do until the next user message."""


Step = (
    CallModel
    | RunBlock
    | RequestApproval
    | AwaitApproval
    | ExpireApproval
    | RefuseBlock
    | SkipBlock
    | ResolveUnknown
    | Wait
    | Answer
    | Stop
    | Idle
)

_NOT_RUN = {
    "failed": "failed",
    "refused": "was refused",
    "unknown": "has an unknown outcome",
    "skipped": "was skipped",
}


def next_step(
    state: LoopState,
    limits: LoopLimits,
    *,
    now: float,
    approvals: ApprovalRules = NO_APPROVALS,
) -> Step:
    """Decide what the loop does next, from recorded facts, ``now`` (epoch seconds) and the
    conversation's approval rules."""
    if state.status != "open":
        return Idle()
    blocks = state.last_turn_blocks
    stop = state.stop_requested_by
    for position, block in enumerate(blocks):  # outcomes for all, even after a newer message
        if block.status == "started":
            return _resolve_or_wait(block, limits=limits, now=now)
        if block.status == "pending" and stop is None:
            return _run_or_skip(block, earlier=blocks[:position], approvals=approvals, now=now)
    if stop is not None:  # the stop skips what is left of the turn
        return Stop(reason="cancelled", detail=f"stopped by {stop}")
    if state.last_reply_text is None:  # a new message: the model's turn
        return _call_model(state, limits)
    if not blocks and state.last_reply_truncated is not None:
        return _after_cut(state, limits)
    if not blocks:
        parsed = parse_helpers(state.last_reply_text)
        # An unclosed tag means the model meant to run code, and an empty reply answers
        # nothing: ask again so it hears about the problem (the turn limit bounds this).
        if parsed.text and not parsed.unclosed:
            return Answer(text=parsed.text)
    return _call_model(state, limits)


def _resolve_or_wait(block: BlockState, *, limits: LoopLimits, now: float) -> Step:
    if block.started_at is None:  # no time recorded: nothing to wait for
        return ResolveUnknown(block=block)
    wall = block.wall_seconds if block.wall_seconds is not None else limits.block_wall_seconds
    over = block.started_at + wall + GRACE_SECONDS
    return Wait(block=block, until=over) if now < over else ResolveUnknown(block=block)


def _run_or_skip(
    block: BlockState, *, earlier: tuple[BlockState, ...], approvals: ApprovalRules, now: float
) -> Step:
    for previous in earlier:
        if previous.status != "succeeded":
            how = _NOT_RUN.get(previous.status, f"ended as {previous.status}")
            return SkipBlock(
                block=block, reason=f"an earlier block of this turn ({previous.block_id}) {how}"
            )
    approval = block.approval
    if approval is None:
        tools = needs_approval(block.code, block.language, approvals)
        return RunBlock(block=block) if tools is None else RequestApproval(block=block, tools=tools)
    match approval.status:
        case "granted":
            return RunBlock(block=block, approved=approval.tools)
        case "requested" if now >= approval.expires_at:
            return ExpireApproval(block=block, request_id=approval.request_id)
        case "requested":
            return AwaitApproval(
                block=block, request_id=approval.request_id, until=approval.expires_at
            )
        case "denied":
            why = f": {approval.reason}" if approval.reason else ""
            return RefuseBlock(block=block, reason=f"{approval.by} denied running it{why}")
        case "expired":
            minutes = approvals.timeout_seconds / 60
            return RefuseBlock(block=block, reason=f"nobody approved it within {minutes:g} minutes")
        case _:
            assert_never(approval.status)


def _after_cut(state: LoopState, limits: LoopLimits) -> Step:
    """A reply cut by a cap before it held a block: one short retry (the prompt tells the
    model its reply was cut; be brief), then stop, rather than offer a fragment as an answer."""
    if state.cut_replies_in_a_row >= CUT_RETRIES + 1:
        why = CUT_BY.get(state.last_reply_truncated or "", "a limit")
        return Stop(
            reason="truncated",
            detail=f"the model's replies were cut by {why} {state.cut_replies_in_a_row} times "
            "in a row without a block to run or an answer",
        )
    return _call_model(state, limits)


def _call_model(state: LoopState, limits: LoopLimits) -> Step:
    if state.turns_since_message >= limits.turns_per_message:
        return Stop(
            reason="turn_limit",
            detail=(
                f"the model used all {limits.turns_per_message} turns allowed for one message "
                "without giving an answer"
            ),
        )
    exhausted = limits.budget_exhausted(tokens_used=state.tokens_used, cost_used=state.cost_used)
    if exhausted is not None:
        return Stop(reason="budget", detail=exhausted)
    return CallModel()
