"""Approvals in the domain: which tools a block names, when it needs a yes, what the loop
does next, and the aggregate's guards (pure, on plain values and the real aggregate)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.approvals import ApprovalRules, code_sha256, needs_approval, tools_named
from domain.conversation import Conversation
from domain.errors import InvalidTransition, UnknownApproval
from domain.limits import LoopLimits
from domain.state import Approval, BlockState
from domain.steps import (
    AwaitApproval,
    ExpireApproval,
    RefuseBlock,
    RequestApproval,
    RunBlock,
    SkipBlock,
    next_step,
)

NOW = 1_800_000_000.0
WITH_TOOLS = ApprovalRules(blocks="with_tools")


# -- which tools a block names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "named"),
    [
        ("import tools\nprint(tools.disk(path='/'))", ("disk",)),
        ("import tools as t\nt.restart(service='api')", ("restart",)),
        ("from tools import restart as r\nr(service='api')", ("restart",)),
        ("import tools\ntools.docs.search(q='x')\ntools.disk()", ("docs.search", "disk")),
        ("import tools\nprint(tools.list())", ()),
        ("print('tools.disk is only text')", ()),
        ("import tools\ntools.disk()\ntools.disk()", ("disk",)),
        ("import tools\nd = tools.docs\nd.search()", ("docs",)),
    ],
)
def test_a_python_block_names_the_tools_it_reaches_by_name(
    code: str, named: tuple[str, ...]
) -> None:
    assert tools_named(code, "python") == named


def test_a_python_block_that_does_not_parse_still_names_what_it_mentions() -> None:
    assert tools_named("import tools\ntools.restart(service=", "python") == ("restart",)


@pytest.mark.parametrize(
    ("code", "named"),
    [
        ("tool disk path=/", ("disk",)),
        ("df -h | grep x && tool restart service=api", ("restart",)),
        ('echo "$(tool status service=db)"', ("status",)),
        ("bash -c 'tool docs.search q=x'", ("docs.search",)),
        ("mytool disk", ()),
        ("echo tools are nice", ()),
    ],
)
def test_a_bash_block_names_the_word_after_each_tool(code: str, named: tuple[str, ...]) -> None:
    assert tools_named(code, "bash") == named


def test_a_block_calling_a_tool_by_a_computed_name_names_nothing_it_could_call() -> None:
    code = "import tools\nname = 'rest' + 'art'\ngetattr(tools, name)(service='api')"
    assert tools_named(code, "python") == ()  # so the broker refuses the call (Caller.allowed)


# -- when a block needs approval -------------------------------------------------------------


def test_never_asks_unless_a_named_tool_is_approval_only() -> None:
    rules = ApprovalRules(approval_tools=frozenset({"restart", "docs"}))
    assert needs_approval("import tools\ntools.disk()", "python", rules) is None
    assert needs_approval("import tools\ntools.restart()", "python", rules) == ("restart",)
    assert needs_approval("tool docs.write_file", "bash", rules) == ("docs.write_file",)


def test_with_tools_asks_for_blocks_that_name_a_tool_and_only_those() -> None:
    assert needs_approval("print(1)", "python", WITH_TOOLS) is None
    assert needs_approval("tool disk", "bash", WITH_TOOLS) == ("disk",)


def test_always_asks_for_every_block_even_without_tools() -> None:
    assert needs_approval("print(1)", "python", ApprovalRules(blocks="always")) == ()


@given(st.text(), st.text())
def test_the_fingerprint_changes_with_any_change_of_the_code(a: str, b: str) -> None:
    assert (code_sha256(a) == code_sha256(b)) == (a == b)


# -- what the loop does next -----------------------------------------------------------------


class State:
    """A hand-written LoopState with one turn of blocks."""

    def __init__(self, *blocks: BlockState) -> None:
        self.status = "open"
        self.turns_since_message = 1
        self.last_reply_text = "Let me check."
        self.last_turn_blocks = blocks
        self.tokens_used = 0
        self.cost_used = 0.0
        self.stop_requested_by = None


def pending(code: str = "tool disk", **approval: object) -> BlockState:
    block = BlockState(
        block_id="t1b1", turn=1, index=1, language="bash", code=code, status="pending"
    )
    if not approval:
        return block
    values = {"request_id": "r1", "status": "requested", "tools": ("disk",), "expires_at": NOW + 60}
    return replace(block, approval=Approval(**{**values, **approval}))  # type: ignore[arg-type]


def step_of(block: BlockState, rules: ApprovalRules = WITH_TOOLS, now: float = NOW) -> object:
    return next_step(State(block), LoopLimits(), now=now, approvals=rules)  # type: ignore[arg-type]


def test_a_block_that_needs_approval_is_asked_for_not_run() -> None:
    assert step_of(pending()) == RequestApproval(block=pending(), tools=("disk",))


def test_a_block_that_needs_none_runs_with_nothing_approved() -> None:
    assert step_of(pending("echo hi")) == RunBlock(block=pending("echo hi"))


def test_a_pending_request_is_awaited_until_it_expires_then_expired() -> None:
    waiting = pending(status="requested")
    assert step_of(waiting) == AwaitApproval(block=waiting, request_id="r1", until=NOW + 60)
    assert step_of(waiting, now=NOW + 60) == ExpireApproval(block=waiting, request_id="r1")


def test_a_granted_block_runs_with_the_tools_it_was_approved_for() -> None:
    granted = pending(status="granted", by="U2")
    assert step_of(granted, now=NOW + 3600) == RunBlock(block=granted, approved=("disk",))


def test_a_denied_or_expired_block_is_refused_with_who_and_why() -> None:
    denied = step_of(pending(status="denied", by="U2", reason="not during the freeze"))
    assert isinstance(denied, RefuseBlock)
    assert denied.reason == "U2 denied running it: not during the freeze"
    expired = step_of(pending(status="expired"), rules=ApprovalRules(blocks="always"))
    assert isinstance(expired, RefuseBlock)
    assert expired.reason == "nobody approved it within 15 minutes"


def test_a_block_after_a_refused_one_is_skipped_not_asked_for() -> None:
    first = replace(pending(), status="refused")
    second = replace(pending(), block_id="t1b2", index=2)
    state = State(first, second)
    step = next_step(state, LoopLimits(), now=NOW, approvals=WITH_TOOLS)  # type: ignore[arg-type]
    assert isinstance(step, SkipBlock)


# -- the aggregate's guards ------------------------------------------------------------------


def conversation_with_a_block(code: str = "tool disk") -> tuple[Conversation, str]:
    conv = Conversation.start(
        platform="slack", workspace="T1", channel="C1", thread="1.0", started_by="U1"
    )
    conv.receive_message(message_key="m1", author="U1", text="disk?")
    conv.record_model_reply(
        provider="scripted",
        model="m",
        text=f"Checking.\n<helpers>\n{code}\n</helpers>",
        input_tokens=1,
        output_tokens=1,
        tokens_estimated=True,
        cost=0.0,
        priced=False,
        latency_ms=1,
        attempts=1,
        prompt_fingerprint="f",
    )
    return conv, conv.last_turn_blocks[0].block_id


def request(conv: Conversation, block_id: str, *, request_id: str = "r1") -> None:
    conv.request_approval(
        block_id=block_id,
        request_id=request_id,
        tools=("disk",),
        requested_from=("role:oncall",),
        expires_at=datetime.fromtimestamp(NOW + 60, UTC),
    )


def test_the_request_is_bound_to_the_exact_code_and_the_block_waits() -> None:
    conv, block_id = conversation_with_a_block("tool disk")
    request(conv, block_id)
    event = conv.pending_events[-1]
    assert event.code_sha256 == code_sha256("tool disk")  # type: ignore[attr-defined]
    assert event.expires_at == "2027-01-15T08:01:00+00:00"  # type: ignore[attr-defined]
    with pytest.raises(InvalidTransition):
        conv.start_block(block_id=block_id, limits={})


def test_one_decision_only_and_only_before_expiry() -> None:
    conv, block_id = conversation_with_a_block()
    request(conv, block_id)
    with pytest.raises(InvalidTransition):
        conv.grant_approval(request_id="r1", by="U2", now=NOW + 60)
    conv.grant_approval(request_id="r1", by="U2", now=NOW)
    with pytest.raises(InvalidTransition):
        conv.deny_approval(request_id="r1", by="U3", reason="", now=NOW)
    with pytest.raises(InvalidTransition):
        conv.expire_approval(request_id="r1", now=NOW + 61)
    conv.start_block(block_id=block_id, limits={})


def test_a_request_expires_only_once_its_time_has_come() -> None:
    conv, block_id = conversation_with_a_block()
    request(conv, block_id)
    with pytest.raises(InvalidTransition):
        conv.expire_approval(request_id="r1", now=NOW + 59)
    conv.expire_approval(request_id="r1", now=NOW + 60)
    assert conv.last_turn_blocks[0].approval.status == "expired"  # type: ignore[union-attr]


def test_a_request_id_from_elsewhere_is_unknown_and_a_block_is_asked_for_once() -> None:
    conv, block_id = conversation_with_a_block()
    with pytest.raises(UnknownApproval):
        conv.grant_approval(request_id="nope", by="U2", now=NOW)
    request(conv, block_id)
    with pytest.raises(InvalidTransition):
        request(conv, block_id, request_id="r2")


def test_the_state_of_an_approval_is_rebuilt_from_its_events() -> None:
    conv, block_id = conversation_with_a_block()
    request(conv, block_id)
    conv.deny_approval(request_id="r1", by="U2", reason="no", now=NOW)
    approval = conv.last_turn_blocks[0].approval
    assert approval == Approval(
        request_id="r1",
        status="denied",
        tools=("disk",),
        expires_at=NOW + 60,
        requested_from=("role:oncall",),
        by="U2",
        reason="no",
    )
    assert conv.approval_of("r1") == (block_id, approval)
