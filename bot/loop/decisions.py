"""Approvers' decisions and expiries: one place for every surface's buttons and commands.

A decision names a request (a button's value) or, from the ``approve``/``deny`` commands,
means the latest pending request of the thread. It counts only when the request belongs to
the conversation at the decision's coordinates (a click cannot reach another thread's
request), is still pending and unexpired, and comes from an approver there; then it is
recorded (``ApprovalGranted``/``ApprovalDenied``) and the loop may go on. A click by someone
who may not approve records nothing and is logged. A second click, or one after expiry,
changes nothing. The person at the host (``opsloop chat``, ``opsloop ask``) may always
decide: they run opsloop, its config and its database.

``pending`` lists the requests still waiting, from the log, for the expiry watcher and for a
restart: nothing about a pending approval lives only in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.errors import NotFound
from bot.loop.approval_steps import approval_request
from bot.surface import ApprovalRequest, Decision, DecisionReply
from domain.errors import DomainError

if TYPE_CHECKING:
    from uuid import UUID

    from bot.policy.approvals import ApprovalPolicy
    from bot.ports_app import ServiceApp
    from domain.state import Approval

log = logging.getLogger(__name__)
HOST_SURFACES = ("terminal", "cli")  # the local user: opsloop's operator
NOTHING_WAITING = "there is no approval request waiting here"


async def decide(
    app: ServiceApp, policy: ApprovalPolicy, decision: Decision, *, now: float
) -> DecisionReply:
    """Record ``decision`` if it counts; say what it did either way."""
    try:
        cid = await asyncio.to_thread(app.current_id, decision.coordinates)
        state = await asyncio.to_thread(app.get, cid)
    except NotFound:
        return DecisionReply(status="none", detail=NOTHING_WAITING)
    approval = _request(state, decision.request_id)
    if approval is None:
        return DecisionReply(status="none", detail=NOTHING_WAITING, conversation_id=str(cid))
    if (settled := _settled(approval, now=now, cid=cid)) is not None:
        return settled
    if (refused := _not_approver(policy, decision, approval, cid)) is not None:
        return refused
    try:
        await asyncio.to_thread(
            app.decide_approval,
            cid,
            request_id=approval.request_id,
            approve=decision.approve,
            by=decision.by,
            reason=decision.reason,
            now=now,
        )
    except DomainError:  # another click, replica or the expiry got there first
        state = await asyncio.to_thread(app.get, cid)
        again = _request(state, approval.request_id)
        settled = _settled(again, now=now, cid=cid) if again is not None else None
        return settled or DecisionReply(status="none", detail="that request is no longer waiting")
    verb = "approved" if decision.approve else "denied"
    return DecisionReply(
        status="granted" if decision.approve else "denied",
        detail=f"{verb} by {decision.by}",
        conversation_id=str(cid),
        request_id=approval.request_id,
        by=decision.by,
    )


def _not_approver(
    policy: ApprovalPolicy, decision: Decision, approval: Approval, cid: UUID
) -> DecisionReply | None:
    """Nothing is recorded for someone who may not decide here; the log says who tried."""
    if decision.coordinates.platform in HOST_SURFACES:
        return None
    why = policy.approver_refusal(decision.coordinates, decision.by)
    if why is None:
        return None
    log.warning("approval %s: ignored a decision: %s", approval.request_id, why)
    return DecisionReply(
        status="not_approver",
        detail="you are not an approver here",
        conversation_id=str(cid),
        request_id=approval.request_id,
    )


def _request(state: Any, request_id: str) -> Approval | None:
    """The named request of the last turn, or (no name) its latest one still waiting."""
    if request_id:
        found = state.approval_of(request_id)
        return None if found is None else found[1]
    waiting = [
        b.approval
        for b in state.last_turn_blocks
        if b.approval is not None and b.approval.status == "requested"
    ]
    return waiting[-1] if waiting else None


def _settled(approval: Approval, *, now: float, cid: UUID) -> DecisionReply | None:
    """The reply for a request that can no longer be decided, or None while it can."""
    if approval.status == "requested" and now < approval.expires_at:
        return None
    if approval.status in ("requested", "expired"):
        return DecisionReply(
            status="expired",
            detail="this request expired before anyone decided",
            conversation_id=str(cid),
            request_id=approval.request_id,
        )
    verb = "approved" if approval.status == "granted" else "denied"
    return DecisionReply(
        status="decided",
        detail=f"already {verb} by {approval.by}",
        conversation_id=str(cid),
        request_id=approval.request_id,
        by=approval.by,
    )


async def pending(app: ServiceApp, *, running: Callable[[UUID], bool]) -> list[ApprovalRequest]:
    """Requests still waiting in open conversations (a loop running here is its own watch)."""
    found = []
    for cid, _ in await asyncio.to_thread(app.open_conversations):
        if running(cid):
            continue
        state = await asyncio.to_thread(app.get, cid)
        for block in state.last_turn_blocks:
            approval = block.approval
            waiting = approval is not None and approval.status == "requested"
            if waiting and block.status == "pending":
                found.append(approval_request(str(cid), state, block))
    return found
