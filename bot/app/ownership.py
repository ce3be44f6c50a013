"""Who runs which loop, as the application records it: leases, fences and stop requests.

A mixin of ``bot.app.application.ConversationApp``. Claiming a loop takes the lease row
(``bot.app.lease``) and, when the token is new, records ``LoopClaimed``; from then on this
application *fences* the conversation: every loop command checks, inside its optimistic
transaction, that the latest ``LoopClaimed`` still carries this process's token, so after a
takeover a process that was paused cannot record one more step (``LoopTakenOver``). Block
results are not fenced: a result that comes after a takeover is recorded, as late if the new
holder already gave up on it. The fence is per application object, which the surfaces,
``ask`` and ``chat`` own one of per process, and which runs one loop per conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from bot.app.lease import Lease, LeaseTable
from bot.app.store import boundary

if TYPE_CHECKING:
    from domain.conversation import Conversation

T = TypeVar("T")


class _NothingToDo(Exception):
    """Raised inside a claim's transaction to leave it without recording anything."""


class LoopOwnership:
    """Claim, renew and release a loop's lease; fence its commands; record stop requests."""

    if TYPE_CHECKING:
        database_url: str
        leases: LeaseTable

        def _load_for_change(self, conversation_id: UUID) -> Conversation: ...
        def _update(
            self,
            conversation_id: UUID,
            command: Callable[[Conversation], None],
            *,
            fenced: bool = True,
        ) -> None: ...
        def _retrying(self, attempt: Callable[[], T]) -> T: ...
        def save(self, *objs: Any, **kwargs: Any) -> Any: ...

    _fences: dict[UUID, int]

    @boundary
    def claim_loop(
        self,
        conversation_id: UUID,
        *,
        holder: str,
        seconds: float,
        wanted: Callable[[Conversation], bool] | None = None,
    ) -> Lease | None:
        """Take this conversation's loop for ``holder`` (None while another holds it),
        recording ``LoopClaimed`` for a new token; this application is fenced by it.

        ``wanted`` looks at the conversation once the lease is held: when it says there is
        nothing to do (another process answered while this one was deciding to claim), the
        lease is let go, nothing is recorded and the result is None."""
        lease = self.leases.claim(conversation_id, holder=holder, seconds=seconds)
        if lease is None:
            return None
        until = datetime.fromtimestamp(lease.until, UTC)

        def claim(conv: Conversation) -> None:
            if wanted is not None and not wanted(conv):
                raise _NothingToDo
            if conv.loop_holder != (holder, lease.token):
                conv.claim_loop(
                    by=holder,
                    token=lease.token,
                    lease_until=until,
                    taken_over_from=lease.taken_from,
                )

        try:
            self._update(conversation_id, claim, fenced=False)
        except BaseException as exc:
            self.leases.release(conversation_id, holder=holder, token=lease.token)
            if isinstance(exc, _NothingToDo):
                return None
            raise
        self._fences[conversation_id] = lease.token
        return lease

    @boundary
    def renew_loop(
        self, conversation_id: UUID, *, holder: str, token: int, seconds: float
    ) -> float | None:
        """Extend a held lease; its new expiry (epoch seconds), or None if it was lost."""
        return self.leases.renew(conversation_id, holder=holder, token=token, seconds=seconds)

    @boundary
    def release_loop(self, conversation_id: UUID, *, holder: str, token: int) -> None:
        """Give the loop up; its commands are no longer fenced here."""
        if self._fences.get(conversation_id) == token:
            del self._fences[conversation_id]
        self.leases.release(conversation_id, holder=holder, token=token)

    @boundary
    def held_loops(self) -> dict[UUID, str]:
        """Conversations whose loop some process holds a running lease on, and who."""
        return self.leases.holders()

    @boundary
    def request_stop(self, conversation_id: UUID, *, message_key: str, by: str) -> bool:
        """Record ``StopRequested`` (False: a redelivery, or nothing is being worked on)."""

        def attempt() -> bool:
            conv = self._load_for_change(conversation_id)
            recorded = conv.request_stop(message_key=message_key, by=by)
            if recorded:
                self.save(conv)
            return recorded

        return self._retrying(attempt)

    def _check_fence(self, conv: Conversation) -> None:
        """Inside a command's transaction: refuse it once another process claimed the loop."""
        token = self._fences.get(conv.id)
        if token is not None:
            conv.check_holder(token)
