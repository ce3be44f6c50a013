"""The application's own ports: the parts of ``bot.app.application.ConversationApp`` the
loop runner (``LoopApp``) and the chat service (``ServiceApp``) use (the other ports are in
bot/ports.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import date, datetime

    from bot.ports import ModelReply
    from bot.surface import Coordinates, Totals
    from domain.budgets import DailySpend
    from sandbox.result import RunResult


class LoopApp(Protocol):
    """The part of ``bot.app.application.ConversationApp`` the runner uses."""

    def get(self, conversation_id: UUID) -> Any: ...
    def timeline(self, conversation_id: UUID) -> list[dict[str, Any]]: ...
    def record_model_reply(
        self,
        conversation_id: UUID,
        *,
        reply: ModelReply,
        prompt_fingerprint: str,
        prompt_notes: str = "",
    ) -> None: ...
    def record_model_failure(
        self, conversation_id: UUID, *, provider: str, model: str, error: str, attempts: int
    ) -> None: ...
    def request_approval(
        self,
        conversation_id: UUID,
        *,
        block_id: str,
        request_id: str,
        tools: tuple[str, ...],
        requested_from: tuple[str, ...],
        expires_at: datetime,
    ) -> None: ...
    def expire_approval(self, conversation_id: UUID, *, request_id: str, now: float) -> None: ...
    def start_block(
        self, conversation_id: UUID, *, block_id: str, limits: dict[str, Any]
    ) -> None: ...
    def finish_block(self, conversation_id: UUID, *, block_id: str, result: RunResult) -> None: ...
    def skip_block(self, conversation_id: UUID, *, block_id: str, reason: str) -> None: ...
    def refuse_block(self, conversation_id: UUID, *, block_id: str, reason: str) -> None: ...
    def mark_block_unknown(self, conversation_id: UUID, *, block_id: str, detail: str) -> None: ...
    def record_tool_call(
        self,
        conversation_id: UUID,
        *,
        block_id: str,
        call_id: str,
        tool: str,
        arguments: dict[str, Any],
        redacted: tuple[str, ...] = (),
    ) -> None: ...
    def record_tool_result(
        self, conversation_id: UUID, *, call_id: str, **outcome: Any
    ) -> None: ...
    def refuse_tool(self, conversation_id: UUID, *, call_id: str, reason: str) -> None: ...
    def mark_tool_unknown(self, conversation_id: UUID, *, call_id: str, detail: str) -> None: ...
    def answer(self, conversation_id: UUID, *, text: str) -> None: ...
    def record_file_sent(
        self, conversation_id: UUID, *, name: str, size: int, sha256: str
    ) -> None: ...
    def stop(self, conversation_id: UUID, *, reason: str, detail: str = "") -> None: ...
    def claim_loop(
        self,
        conversation_id: UUID,
        *,
        holder: str,
        seconds: float,
        wanted: Callable[[Any], bool] | None = None,
    ) -> Any: ...
    def renew_loop(
        self, conversation_id: UUID, *, holder: str, token: int, seconds: float
    ) -> float | None: ...
    def release_loop(self, conversation_id: UUID, *, holder: str, token: int) -> None: ...
    def daily_spend(
        self, *, platform: str, day: date, user: str | None, channel: str | None
    ) -> DailySpend: ...


class ServiceApp(LoopApp, Protocol):
    """The part of ``bot.app.application.ConversationApp`` the service uses."""

    def receive_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str
    ) -> tuple[UUID, bool]: ...
    def refuse_message(
        self, *, coordinates: Coordinates, message_key: str, author: str, text: str, reason: str
    ) -> tuple[UUID, bool]: ...
    def renew(self, *, coordinates: Coordinates, by: str) -> UUID: ...
    def record_file_received(
        self, conversation_id: UUID, *, name: str, size: int, sha256: str, by: str
    ) -> None: ...
    def record_file_refused(
        self, conversation_id: UUID, *, name: str, reason: str, by: str
    ) -> None: ...
    def record_feedback(
        self, conversation_id: UUID, *, by: str, value: str, answer_sha256: str
    ) -> None: ...
    def decide_approval(
        self,
        conversation_id: UUID,
        *,
        request_id: str,
        approve: bool,
        by: str,
        reason: str = "",
        now: float,
    ) -> None: ...
    def current_id(self, coordinates: Coordinates) -> UUID: ...
    def resolve(self, id_or_prefix: str) -> UUID: ...
    def totals(self, conversation_id: UUID) -> Totals: ...
    def open_conversations(self) -> list[tuple[UUID, Coordinates]]: ...
    def held_loops(self) -> dict[UUID, str]: ...
    def request_stop(self, conversation_id: UUID, *, message_key: str, by: str) -> bool: ...


# -- what chat surfaces call ------------------------------------------------------------------
