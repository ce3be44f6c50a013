"""The ``Conversation`` aggregate: one thread's messages, model turns, blocks and answers.

Imperative commands check their guards (raising before any change), then trigger a
past-tense event (domain/events.py) carrying the hash of its predecessor. The state, its
queries and its evolution by events live in domain/conversation_state.py, the tool-call
commands in domain/conversation_tools.py. The aggregate satisfies ``domain.state.LoopState``.

Text reaches these commands already redacted (``bot.app`` passes it through the process's
one ``domain.redaction.Redactor``); ``redacted`` says which field holds which markers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain import events as ev
from domain.approvals import code_sha256
from domain.chain import genesis_hash
from domain.conversation_files import FilesAndFeedback
from domain.conversation_state import ConversationState
from domain.conversation_tools import ToolCalls
from domain.errors import (
    ConversationRenewed,
    ConversationStopped,
    InvalidTransition,
    UnknownApproval,
    UnknownBlock,
)
from domain.ids import conversation_id
from domain.runaway import TRUNCATIONS
from domain.state import Approval, BlockStatus


class Conversation(FilesAndFeedback, ToolCalls, ConversationState, Aggregate):
    """An event-sourced conversation, identified by its platform coordinates."""

    # -- creation ------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        *,
        platform: str,
        workspace: str,
        channel: str,
        thread: str,
        started_by: str,
        generation: int = 0,
    ) -> Conversation:
        """Start the conversation of these coordinates (and generation)."""
        cid = conversation_id(
            platform=platform,
            workspace=workspace,
            channel=channel,
            thread=thread,
            generation=generation,
        )
        return cls._create(
            ev.Started,
            id=cid,
            prev_hash=genesis_hash(cid),
            platform=platform,
            workspace=workspace,
            channel=channel,
            thread=thread,
            started_by=started_by,
            generation=generation,
        )

    # -- commands ------------------------------------------------------------------------
    def receive_message(
        self,
        *,
        message_key: str,
        author: str,
        text: str,
        redacted: Mapping[str, list[str]] | None = None,
    ) -> bool:
        """Record a user's message (reopens a stopped conversation); False if a redelivery."""
        self._check_not_renewed()
        if self.has_message(message_key):
            return False
        self._trigger(
            ev.MessageReceived,
            message_key=message_key,
            author=author,
            text=text,
            redacted=_r(redacted),
        )
        return True

    def refuse_message(
        self,
        *,
        message_key: str,
        author: str,
        text: str,
        reason: str,
        redacted: Mapping[str, list[str]] | None = None,
    ) -> bool:
        """Record a refused message (status unchanged); False if a redelivery."""
        self._check_not_renewed()
        if self.has_message(message_key):
            return False
        self._trigger(
            ev.MessageRefused,
            message_key=message_key,
            author=author,
            text=text,
            reason=reason,
            redacted=_r(redacted),
        )
        return True

    def record_model_reply(
        self,
        *,
        provider: str,
        model: str,
        text: str,
        input_tokens: int,
        output_tokens: int,
        tokens_estimated: bool,
        cost: float,
        priced: bool,
        latency_ms: int,
        attempts: int,
        prompt_fingerprint: str,
        prompt_notes: str = "",
        redacted: Mapping[str, list[str]] | None = None,
        truncated: str | None = None,
        discarded_chars: int = 0,
    ) -> None:
        """Record one model turn; its helper blocks become pending."""
        if truncated is not None and truncated not in TRUNCATIONS:
            raise InvalidTransition(f"unknown truncation {truncated!r}")
        self._check_working()
        self._check_turn_settled()
        self._trigger(
            ev.ModelReplied,
            turn=self._turn + 1,
            provider=provider,
            model=model,
            text=text,
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            tokens_estimated=bool(tokens_estimated),
            cost=float(cost),
            priced=bool(priced),
            latency_ms=int(latency_ms),
            attempts=int(attempts),
            prompt_fingerprint=prompt_fingerprint,
            prompt_notes=prompt_notes,
            redacted=_r(redacted),
            truncated=truncated,
            discarded_chars=int(discarded_chars),
        )

    def record_model_failure(self, *, provider: str, model: str, error: str, attempts: int) -> None:
        """Record a provider that failed for good."""
        self._check_working()
        self._check_turn_settled()
        self._trigger(
            ev.ModelFailed, provider=provider, model=model, error=error, attempts=int(attempts)
        )

    def request_approval(
        self,
        *,
        block_id: str,
        request_id: str,
        tools: tuple[str, ...],
        requested_from: tuple[str, ...],
        expires_at: datetime,
    ) -> None:
        """Ask for a pending block to be approved before it runs."""
        self._check_working()
        b = self._block_in(block_id, ("pending",))
        if self._approvals_now().get(block_id) is not None or self.approval_of(request_id):
            raise InvalidTransition(f"an approval of block {block_id} was requested already")
        self._trigger(
            ev.ApprovalRequested,
            block_id=block_id,
            request_id=request_id,
            code_sha256=code_sha256(b["code"]),
            tools=list(tools),
            requested_from=list(requested_from),
            expires_at=expires_at.astimezone(UTC).isoformat(),
        )

    def grant_approval(self, *, request_id: str, by: str, now: float) -> None:
        """An approver said yes, in time."""
        self._open_request(request_id, now=now)
        self._trigger(ev.ApprovalGranted, request_id=request_id, by=by)

    def deny_approval(self, *, request_id: str, by: str, reason: str, now: float) -> None:
        """An approver said no, in time."""
        self._open_request(request_id, now=now)
        self._trigger(ev.ApprovalDenied, request_id=request_id, by=by, reason=reason)

    def expire_approval(self, *, request_id: str, now: float) -> None:
        """Nobody decided in time."""
        self._check_working()
        _, approval = self._request(request_id)
        if approval.status != "requested" or now < approval.expires_at:
            raise InvalidTransition(f"approval {request_id} has not expired")
        self._trigger(ev.ApprovalExpired, request_id=request_id)

    def start_block(self, *, block_id: str, limits: dict[str, Any]) -> None:
        """Record that a pending block of the last turn is about to run."""
        self._check_working()
        b = self._block_in(block_id, ("pending",))
        approval = self._approvals_now().get(block_id)
        if approval is not None and approval["status"] != "granted":
            raise InvalidTransition(f"block {block_id} is {approval['status']}, not approved")
        self._trigger(
            ev.BlockStarted,
            block_id=block_id,
            turn=b["turn"],
            index=b["index"],
            language=b["language"],
            code=b["code"],
            limits=dict(limits),
        )

    def finish_block(
        self,
        *,
        block_id: str,
        exit_code: int | None,
        signal: int | None,
        stdout: str,
        stderr: str,
        duration_ms: int,
        cpu_ms: int | None,
        timed_out: bool,
        memory_exceeded: bool,
        output_truncated: bool,
        unsafe_local: bool,
        redacted: Mapping[str, list[str]] | None = None,
        kernel: str = "new",
    ) -> None:
        """Record the result of a started block (``kernel``: the interpreter it ran in); one
        whose outcome was recorded unknown in the meantime is recorded as late
        (``BlockFinishedLate``), never dropped."""
        late = self.is_late(block_id)
        if not late:
            self._check_working()
            self._block_in(block_id, ("started",))
            self._settle_calls(block_id)
        self._trigger(
            ev.BlockFinishedLate if late else ev.BlockFinished,
            block_id=block_id,
            exit_code=exit_code,
            signal=signal,
            stdout=stdout,
            stderr=stderr,
            duration_ms=int(duration_ms),
            cpu_ms=cpu_ms,
            timed_out=bool(timed_out),
            memory_exceeded=bool(memory_exceeded),
            output_truncated=bool(output_truncated),
            unsafe_local=bool(unsafe_local),
            redacted=_r(redacted),
            kernel=kernel if kernel in ev.KERNELS else "new",
        )

    def skip_block(self, *, block_id: str, reason: str) -> None:
        """Record that a pending block will not run."""
        self._check_working()
        self._block_in(block_id, ("pending",))
        self._trigger(ev.BlockSkipped, block_id=block_id, reason=reason)

    def refuse_block(self, *, block_id: str, reason: str) -> None:
        """Record that policy or the sandbox refused a block."""
        self._check_working()
        self._block_in(block_id, ("pending", "started"))
        self._settle_calls(block_id)
        self._trigger(ev.BlockRefused, block_id=block_id, reason=reason)

    def mark_block_unknown(self, *, block_id: str, detail: str) -> None:
        """Record that a started block's outcome is unknown (it is never re-run)."""
        self._check_working()
        self._block_in(block_id, ("started",))
        self._settle_calls(block_id)
        self._trigger(ev.BlockOutcomeUnknown, block_id=block_id, detail=detail)

    def answer(self, *, text: str, redacted: Mapping[str, list[str]] | None = None) -> None:
        """Record the final answer to the latest message."""
        self._check_working()
        self._check_turn_settled()
        self._trigger(ev.Answered, text=text, redacted=_r(redacted))

    def stop(self, *, reason: str, detail: str = "") -> None:
        """Stop the loop without an answer; the blocks announced and not started are skipped
        (a started block must get its outcome first)."""
        self._check_not_renewed()
        if self._status == "stopped":
            raise ConversationStopped("the conversation is already stopped")
        self._skip_unstarted(reason)
        self._trigger(ev.Stopped, reason=reason, detail=detail)

    def renew(self, *, successor_id: UUID, by: str) -> None:
        """Close this conversation in favour of ``successor_id`` (the ``new`` command).

        Allowed after Stopped too: ``new`` is how a stopped thread starts over.
        """
        self._check_not_renewed()
        self._trigger(ev.Renewed, successor_id=successor_id, by=by)

    def record_erasure(self, *, user: str) -> None:
        """Record that ``user``'s key was destroyed (allowed in any state: it is a fact about
        the log, not a step of the conversation)."""
        self._trigger(ev.UserErased, user=user)

    @property
    def audit_key_id(self) -> str | None:
        """The audit key this conversation was switched to (``AuditKeyed``); None when it
        never was: sealed from its start, or not sealed at all."""
        return self.__dict__.get("_audit_key_id")  # snapshots from before the event: None

    def record_key_switch(self, *, key_id: str, unsealed: int) -> None:
        """Record that from now on this conversation is sealed with audit key ``key_id``,
        after ``unsealed`` events written without one (allowed in any state, once)."""
        if self.audit_key_id is not None:
            raise InvalidTransition(f"the conversation is already sealed with {self.audit_key_id}")
        self._trigger(ev.AuditKeyed, key_id=key_id, unsealed=unsealed)

    # -- guards --------------------------------------------------------------------------
    def _check_not_renewed(self) -> None:
        if self._successor_id is not None:
            raise ConversationRenewed(
                f"conversation {self.id} was replaced by {self._successor_id} (new)"
            )

    def _check_working(self) -> None:
        self._check_not_renewed()
        if self._status == "stopped":
            raise ConversationStopped(
                "the conversation is stopped; only a new message can reopen it"
            )
        if self._status != "open":
            raise InvalidTransition(f"no message is being worked on (status {self._status})")

    def _block_in(self, block_id: str, statuses: tuple[BlockStatus, ...]) -> dict[str, Any]:
        b = self.block(block_id)
        if b["status"] not in statuses:
            raise UnknownBlock(
                f"block {block_id} is {b['status']}, expected {' or '.join(statuses)}"
            )
        return b

    def _request(self, request_id: str) -> tuple[str, Approval]:
        found = self.approval_of(request_id)
        if found is None:
            raise UnknownApproval(f"there is no approval request {request_id} in this conversation")
        return found

    def _open_request(self, request_id: str, *, now: float) -> None:
        """A request still waiting for a decision, before its expiry."""
        self._check_working()
        _, approval = self._request(request_id)
        if approval.status != "requested":
            raise InvalidTransition(f"approval {request_id} was {approval.status} already")
        if now >= approval.expires_at:
            raise InvalidTransition(f"approval {request_id} expired")

    def _trigger(self, event_class: type[ev.ConversationEvent], **payload: Any) -> None:
        self.trigger_event(event_class, prev_hash=self._last_hash, **payload)


def _r(redacted: Mapping[str, list[str]] | None) -> dict[str, list[str]]:
    """A record's ``redacted`` as plain values."""
    return {field: list(names) for field, names in (redacted or {}).items()}
