"""The runner's approval steps, as values a surface shows (pure).

``domain.steps.next_step`` decides when a block needs an approval and when a request
expired; this module turns the recorded request into the ``ApprovalRequest`` a surface shows
(with its buttons, or ``run this block? [y/N]``), and says who a block's tool calls are made
for: its author and their roles, limited to the tools its code names, plus those an approver
granted.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from bot.policy.approvals import ApprovalPolicy
from bot.surface import ApprovalRequest, Coordinates
from bot.tools.values import Caller
from domain.approvals import tools_named
from domain.state import BlockState, LoopState
from domain.steps import RequestApproval


def new_request(
    cid: str, state: LoopState, step: RequestApproval, policy: ApprovalPolicy, *, now: float
) -> ApprovalRequest:
    """A new request for ``step``'s block, made ``now``: a fresh, unguessable id (so a forged
    click cannot name a request it never saw), the approvers of the block's channel, and
    the channel's timeout."""
    where = coordinates_of(state)
    block = step.block
    return ApprovalRequest(
        conversation_id=cid,
        coordinates=where,
        request_id=uuid.uuid4().hex,
        block_id=block.block_id,
        index=block.index,
        total=len(state.last_turn_blocks),
        language=block.language,
        code=block.code,
        tools=step.tools,
        requested_from=policy.approvers_for(where),
        expires_at=now + policy.rules_for(where).timeout_seconds,
        requested_by=author_of(state),
    )


def coordinates_of(state: LoopState) -> Coordinates:
    """The conversation's coordinates (the aggregate keeps them as a tuple)."""
    conversation: Any = state
    return Coordinates(*conversation.coordinates)


def author_of(state: LoopState) -> str:
    """The author of the message being worked on."""
    conversation: Any = state
    return str(conversation.last_author)


def approval_request(cid: str, state: LoopState, block: BlockState) -> ApprovalRequest:
    """What to show of a block's recorded approval request."""
    approval = block.approval
    assert approval is not None, "a block with a request"
    return ApprovalRequest(
        conversation_id=cid,
        coordinates=coordinates_of(state),
        request_id=approval.request_id,
        block_id=block.block_id,
        index=block.index,
        total=len(state.last_turn_blocks),
        language=block.language,
        code=block.code,
        tools=approval.tools,
        requested_from=approval.requested_from,
        expires_at=approval.expires_at,
        requested_by=author_of(state),
    )


def conversation_caller(state: LoopState, policy: ApprovalPolicy) -> Caller:
    """Who the conversation works for now: the surface, channel and author, with their roles."""
    where = coordinates_of(state)
    author = author_of(state)
    return Caller(
        platform=where.platform,
        user=author,
        channel=where.channel,
        roles=policy.roles_of(where.platform, author),
    )


def block_caller(
    state: LoopState, block: BlockState, policy: ApprovalPolicy, approved: tuple[str, ...]
) -> Caller:
    """Who a block's calls are made for, and what it may call: what its code names."""
    return dataclasses.replace(
        conversation_caller(state, policy),
        approved=frozenset(approved),
        allowed=frozenset(tools_named(block.code, block.language)),
    )
