"""The state of a ``Conversation`` and how each event changes it (pure).

``_evolve`` is the only place state changes, so replaying the log rebuilds exactly the same
state. It is tolerant where the commands are strict: the log is the truth, and an old log
must keep loading even if the helper parser later reads a reply differently.

State is kept in plain values (dicts, lists, numbers, strings) so the library can snapshot
it; the properties satisfy ``domain.state.LoopState``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never
from uuid import UUID

from domain import events as ev
from domain.chain import hash_of
from domain.conversation_files import text_sha256
from domain.conversation_loop import LoopControl
from domain.errors import UnknownBlock
from domain.helpers import parse_helpers
from domain.state import Approval, BlockState, ConversationStatus, approval_from, block_failed


class ConversationState(LoopControl):
    """Read side of the aggregate: queries over its state, and its evolution by events."""

    _status: str
    _successor_id: UUID | None
    _last_hash: str
    _blocks: list[dict[str, Any]]
    _tool_calls: dict[str, dict[str, Any]]
    _approvals: dict[str, dict[str, Any]]  # block id -> its approval (plain values)
    _answer: str | None
    _last_truncated: str | None
    _turn: int
    created_on: datetime

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A copy for one command (the library copies cached aggregates).

        Every value in the state is immutable except the message-key dict, the block list
        (of dicts of immutables) and the pending events list, so copying just those is a
        full deep copy -- and much faster than ``copy.deepcopy`` on a long conversation.
        """
        clone = object.__new__(type(self))
        state = dict(self.__dict__)
        state["_message_keys"] = dict(state["_message_keys"])
        state["_blocks"] = [dict(b) for b in state["_blocks"]]
        state["_tool_calls"] = {k: dict(v) for k, v in state.get("_tool_calls", {}).items()}
        state["_approvals"] = {k: dict(v) for k, v in state.get("_approvals", {}).items()}
        state["_pending_events"] = list(state.get("_pending_events", ()))
        state["_unknown_blocks"] = list(state.get("_unknown_blocks", ()))
        if "_answers" in state:
            state["_answers"] = list(state["_answers"])
        object.__setattr__(clone, "__dict__", state)
        memo[id(self)] = clone
        return clone

    # -- queries (LoopState and accounting) -----------------------------------------------
    @property
    def status(self) -> ConversationStatus:
        """idle | open | answered | stopped."""
        return self._status  # type: ignore[return-value]

    @property
    def turns_since_message(self) -> int:
        """Model turns since the latest MessageReceived."""
        return int(self._turns_since_message)

    @property
    def last_reply_text(self) -> str | None:
        """Text of the latest model reply since the latest message."""
        return self._last_reply_text

    @property
    def last_reply_truncated(self) -> str | None:
        """Why the latest reply was cut (``tokens``, ``time``, ``repetition``), or None."""
        return self.__dict__.get("_last_truncated")  # snapshots from before caps: None

    @property
    def cut_replies_in_a_row(self) -> int:
        """Replies since the latest message, in a row up to the latest, that were cut and
        held no block."""
        return int(self.__dict__.get("_cut_in_a_row", 0))

    @property
    def last_turn_blocks(self) -> tuple[BlockState, ...]:
        """Blocks of the latest reply, in order."""
        approvals = self.__dict__.get("_approvals", {})
        return tuple(
            BlockState(**b, approval=approval_from(approvals.get(b["block_id"])))
            for b in self._blocks
        )

    def approval_of(self, request_id: str) -> tuple[str, Approval] | None:
        """The block and the approval of request ``request_id`` in the last turn, if any."""
        for block_id, entry in self.__dict__.get("_approvals", {}).items():
            if entry["request_id"] == request_id:
                approval = approval_from(entry)
                assert approval is not None
                return block_id, approval
        return None

    @property
    def tokens_used(self) -> int:
        """Input plus output tokens of the whole conversation."""
        return int(self._input_tokens + self._output_tokens)

    @property
    def cost_used(self) -> float:
        """USD spent on the whole conversation."""
        return float(self._cost)

    @property
    def coordinates(self) -> tuple[str, str, str, str]:
        """(platform, workspace, channel, thread)."""
        return (self._platform, self._workspace, self._channel, self._thread)

    @property
    def generation(self) -> int:
        """0 for a thread's first conversation, +1 for each ``new``."""
        return int(self._generation)

    @property
    def last_author(self) -> str:
        """Who wrote the message being worked on (a snapshot from before this knew: "")."""
        return str(self.__dict__.get("_last_author", ""))

    @property
    def started_by(self) -> str:
        """Who started it."""
        return str(self._started_by)

    @property
    def successor_id(self) -> UUID | None:
        """The conversation that replaced this one (``new``), if any."""
        return self._successor_id

    @property
    def last_hash(self) -> str:
        """Chain hash of the latest event: the next event's ``prev_hash``."""
        return str(self._last_hash)

    @property
    def counts(self) -> dict[str, int]:
        """messages, refused, model_turns, model_failures, blocks, input/output tokens."""
        return {
            "messages": self._messages,
            "refused": self._refused,
            "model_turns": self._turn,
            "model_failures": self._model_failures,
            "blocks": self._blocks_run,
            "input_tokens": self._input_tokens,
            "output_tokens": self._output_tokens,
            # snapshots from before turn caps have none of these: 0
            "truncated_turns": self.__dict__.get("_truncated_turns", 0),
            "discarded_chars": self.__dict__.get("_discarded_chars", 0),
            "estimated_turns": self.__dict__.get("_estimated_turns", 0),
        }

    @property
    def answer_text(self) -> str | None:
        """The latest answer, if any."""
        return self._answer

    def answered_with(self, answer_sha256: str) -> bool:
        """Whether this conversation gave an answer whose text has this sha256."""
        return answer_sha256 in self._answer_hashes()

    def _answer_hashes(self) -> list[str]:
        if "_answers" not in self.__dict__:  # a snapshot from before feedback existed
            self._answers: list[str] = []
        return self._answers

    def has_message(self, message_key: str) -> bool:
        """Whether this platform message was recorded already (received or refused)."""
        return message_key in self._message_keys

    def block(self, block_id: str) -> dict[str, Any]:
        """The block of the last turn with this id (plain values)."""
        for b in self._blocks:
            if b["block_id"] == block_id:
                return dict(b)
        raise UnknownBlock(f"block {block_id} is not part of the last model turn")

    # -- evolution (the only place state changes) ---------------------------------------------
    def _evolve(self, event: ev.AnyEvent) -> None:
        match event:
            case ev.Started():
                self._when_Started(event)
            case ev.MessageReceived():
                self._when_MessageReceived(event)
            case ev.MessageRefused():
                self._when_MessageRefused(event)
            case ev.ModelReplied():
                self._when_ModelReplied(event)
            case ev.ModelFailed():
                self._model_failures += 1
            case ev.BlockStarted():
                self._when_BlockStarted(event)
            case ev.BlockFinished():
                self._when_BlockFinished(event)
            case ev.BlockSkipped():
                self._set_block(event.block_id, "skipped")
            case ev.BlockRefused():
                self._set_block(event.block_id, "refused")
            case ev.BlockOutcomeUnknown():
                self._set_block(event.block_id, "unknown")
                self._unknowns().append(event.block_id)
            case ev.ApprovalRequested():
                self._when_ApprovalRequested(event)
            case ev.ApprovalGranted():
                self._decide(event.request_id, "granted", by=event.by)
            case ev.ApprovalDenied():
                self._decide(event.request_id, "denied", by=event.by, reason=event.reason)
            case ev.ApprovalExpired():
                self._decide(event.request_id, "expired")
            case ev.ToolCalled():
                self._set_call(event.call_id, "called", block_id=event.block_id, tool=event.tool)
            case ev.ToolReturned():
                self._set_call(event.call_id, "returned")
            case ev.ToolRefused():
                self._set_call(event.call_id, "refused", block_id=event.block_id, tool=event.tool)
            case ev.ToolOutcomeUnknown():
                self._set_call(event.call_id, "unknown")
            case ev.Answered():
                self._when_Answered(event)
            case ev.Stopped():
                self._status = "stopped"
                self._stop_requested_by = None
            case ev.Renewed():
                self._successor_id = event.successor_id
            case ev.LoopClaimed() | ev.StopRequested() | ev.BlockFinishedLate():
                self._evolve_loop(event)
            case ev.AuditKeyed():
                self._audit_key_id = event.key_id
            case ev.FileReceived() | ev.FileRefused() | ev.FileSent() | ev.FeedbackGiven():
                pass  # facts for the audit and the prompt: the loop's state is unchanged
            case ev.UserErased():
                pass  # the text is erased in the store; state keeps nothing of it to drop
            case _:
                assert_never(event)
        self._last_hash = hash_of(event)

    def _when_ApprovalRequested(self, e: ev.ApprovalRequested) -> None:
        self._approvals_now()[e.block_id] = {
            "request_id": e.request_id,
            "status": "requested",
            "tools": list(e.tools),
            "requested_from": list(e.requested_from),
            "expires_at": datetime.fromisoformat(e.expires_at).timestamp(),
            "by": "",
            "reason": "",
        }

    def _when_Started(self, e: ev.Started) -> None:
        self._platform, self._workspace = e.platform, e.workspace
        self._channel, self._thread = e.channel, e.thread
        self._generation, self._started_by = e.generation, e.started_by
        self._status: str = "idle"
        self._message_keys: dict[str, int] = {}
        self._messages = self._refused = self._turn = self._turns_since_message = 0
        self._model_failures = self._blocks_run = 0
        self._input_tokens = self._output_tokens = 0
        self._cost = 0.0
        self._last_reply_text: str | None = None
        self._blocks: list[dict[str, Any]] = []
        self._answer = None
        self._successor_id: UUID | None = None
        self._last_hash = ""
        self._tool_calls = {}
        self._approvals = {}
        self._answers = []

    def _when_MessageReceived(self, e: ev.MessageReceived) -> None:
        self._last_author = e.author
        self._message_keys[e.message_key] = e.originator_version
        self._messages += 1
        self._status = "open"
        self._turns_since_message = 0
        self._last_reply_text = None
        self._stop_requested_by = None
        self._last_truncated = None
        self._cut_in_a_row = 0
        if not self.open_blocks:  # blocks of a turn in flight keep going: they get outcomes
            self._blocks = []

    def _when_Answered(self, e: ev.Answered) -> None:
        self._status = "answered"
        self._answer = e.text
        self._answer_hashes().append(text_sha256(e.text))

    def _when_MessageRefused(self, e: ev.MessageRefused) -> None:
        self._message_keys[e.message_key] = e.originator_version
        self._refused += 1

    def _when_ModelReplied(self, e: ev.ModelReplied) -> None:
        self._tool_calls = {}  # a turn's calls and approvals belong to its blocks
        self._approvals = {}
        self._turn = max(self._turn, e.turn)
        self._turns_since_message += 1
        self._last_reply_text = e.text
        self._last_truncated = e.truncated
        self._truncated_turns = self.__dict__.get("_truncated_turns", 0) + (e.truncated is not None)
        self._discarded_chars = self.__dict__.get("_discarded_chars", 0) + e.discarded_chars
        self._estimated_turns = self.__dict__.get("_estimated_turns", 0) + e.tokens_estimated
        self._input_tokens += e.input_tokens
        self._output_tokens += e.output_tokens
        self._cost += e.cost
        self._blocks = [
            {
                "block_id": f"t{e.turn}b{b.index}",
                "turn": e.turn,
                "index": b.index,
                "language": b.language,
                "code": b.code,
                "status": "pending",
            }
            for b in parse_helpers(e.text).blocks
        ]
        cut = e.truncated is not None and not self._blocks
        self._cut_in_a_row = self.cut_replies_in_a_row + 1 if cut else 0

    def _approvals_now(self) -> dict[str, dict[str, Any]]:
        if "_approvals" not in self.__dict__:  # a snapshot from before approvals existed
            self._approvals = {}
        return self._approvals

    def _decide(self, request_id: str, status: str, **fields: str) -> None:
        for entry in self._approvals_now().values():
            if entry["request_id"] == request_id:
                entry.update(fields, status=status)

    def _calls(self) -> dict[str, dict[str, Any]]:
        # Snapshots taken before tools existed have no calls: they start empty.
        if "_tool_calls" not in self.__dict__:
            self._tool_calls = {}
        return self._tool_calls

    def _set_call(self, call_id: str, status: str, **fields: Any) -> None:
        call = self._calls().setdefault(call_id, {"block_id": "", "tool": ""})
        call.update(fields, status=status)

    def tool_call(self, call_id: str) -> dict[str, Any] | None:
        """A recorded tool call of the last turn (block_id, tool, status), if there is one."""
        call = self._calls().get(call_id)
        return dict(call) if call is not None else None

    def open_tool_calls(self, block_id: str) -> list[str]:
        """Calls of ``block_id`` recorded as called and not yet given an outcome."""
        return [
            call_id
            for call_id, call in self._calls().items()
            if call["block_id"] == block_id and call["status"] == "called"
        ]

    def _set_block(self, block_id: str, status: str, **fields: Any) -> None:
        for b in self._blocks:
            if b["block_id"] == block_id:
                b.update(fields, status=status)
                return
        if fields:  # tolerant replay: the event itself says what the block was
            self._blocks.append({"block_id": block_id, **fields, "status": status})

    def _when_BlockStarted(self, e: ev.BlockStarted) -> None:
        self._blocks_run += 1
        wall = e.limits.get("wall_seconds") if isinstance(e.limits, dict) else None
        if isinstance(wall, bool) or not isinstance(wall, int | float) or wall <= 0:
            wall = None
        self._set_block(
            e.block_id,
            "started",
            turn=e.turn,
            index=e.index,
            language=e.language,
            code=e.code,
            started_at=e.timestamp.timestamp(),
            wall_seconds=None if wall is None else float(wall),
        )

    def _when_BlockFinished(self, e: ev.BlockFinished) -> None:
        failed = block_failed(
            exit_code=e.exit_code,
            signal=e.signal,
            timed_out=e.timed_out,
            memory_exceeded=e.memory_exceeded,
        )
        self._set_block(e.block_id, "failed" if failed else "succeeded")

    @property
    def started_at(self) -> datetime:
        """When Started was recorded."""
        return self.created_on
