"""What the loop records: model turns, blocks, tool calls, answers and stops, redacted first.

A mixin of ``bot.app.application.ConversationApp``, kept apart so each module holds one
concept. Every text a command is given (a model's reply, a block's output, a tool's result,
an error, a reason) passes the application's one ``Redactor`` before the aggregate sees it,
so the original value of a secret is never stored; events that carry free text also say in
``redacted`` which field holds which markers (docs/events.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from bot.ports import ModelReply
    from domain.conversation import Conversation
    from domain.redaction import Redactor
    from sandbox.result import RunResult


class LoopRecords:
    """The loop's record commands (mixed into ``ConversationApp``)."""

    if TYPE_CHECKING:
        redactor: Redactor

        def _update(
            self, conversation_id: UUID, command: Callable[[Conversation], None]
        ) -> None: ...

    def _text(self, text: str) -> str:
        """``text`` as it may be stored."""
        return self.redactor.redact(text).text

    def record_model_reply(
        self,
        conversation_id: UUID,
        *,
        reply: ModelReply,
        prompt_fingerprint: str,
        prompt_notes: str = "",
    ) -> None:
        """Record the fallback chain's failures, then the reply."""
        texts, where = self.redactor.clean(text=reply.text)

        def command(conv: Conversation) -> None:
            for f in reply.failures:
                conv.record_model_failure(
                    provider=f.provider,
                    model=f.model,
                    error=self._text(f.error),
                    attempts=f.attempts,
                )
            conv.record_model_reply(
                provider=reply.provider,
                model=reply.model,
                text=texts["text"],
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                tokens_estimated=reply.tokens_estimated,
                cost=reply.cost,
                priced=reply.priced,
                latency_ms=reply.latency_ms,
                attempts=reply.attempts,
                prompt_fingerprint=prompt_fingerprint,
                prompt_notes=prompt_notes,
                redacted=where,
            )

        self._update(conversation_id, command)

    def record_model_failure(
        self, conversation_id: UUID, *, provider: str, model: str, error: str, attempts: int
    ) -> None:
        """Record a provider that failed for good."""
        error = self._text(error)
        self._update(
            conversation_id,
            lambda c: c.record_model_failure(
                provider=provider, model=model, error=error, attempts=attempts
            ),
        )

    def start_block(self, conversation_id: UUID, *, block_id: str, limits: dict[str, Any]) -> None:
        """Record that a pending block is about to run (its code is the recorded reply's)."""
        self._update(conversation_id, lambda c: c.start_block(block_id=block_id, limits=limits))

    def finish_block(self, conversation_id: UUID, *, block_id: str, result: RunResult) -> None:
        """Record a block's result, its output redacted."""
        r = result
        texts, where = self.redactor.clean(stdout=r.stdout, stderr=r.stderr)
        self._update(
            conversation_id,
            lambda c: c.finish_block(
                block_id=block_id,
                exit_code=r.exit_code,
                signal=r.signal,
                stdout=texts["stdout"],
                stderr=texts["stderr"],
                duration_ms=r.duration_ms,
                cpu_ms=r.cpu_ms,
                timed_out=r.timed_out,
                memory_exceeded=r.memory_exceeded,
                output_truncated=r.output_truncated,
                unsafe_local=r.unsafe_local,
                redacted=where,
            ),
        )

    def skip_block(self, conversation_id: UUID, *, block_id: str, reason: str) -> None:
        """Record that a pending block will not run."""
        reason = self._text(reason)
        self._update(conversation_id, lambda c: c.skip_block(block_id=block_id, reason=reason))

    def refuse_block(self, conversation_id: UUID, *, block_id: str, reason: str) -> None:
        """Record that a block was refused."""
        reason = self._text(reason)
        self._update(conversation_id, lambda c: c.refuse_block(block_id=block_id, reason=reason))

    def mark_block_unknown(self, conversation_id: UUID, *, block_id: str, detail: str) -> None:
        """Record that a started block's outcome is unknown."""
        detail = self._text(detail)
        self._update(
            conversation_id, lambda c: c.mark_block_unknown(block_id=block_id, detail=detail)
        )

    def record_tool_call(
        self,
        conversation_id: UUID,
        *,
        block_id: str,
        call_id: str,
        tool: str,
        arguments: dict[str, Any],
        redacted: tuple[str, ...] = (),
    ) -> None:
        """Record that a running block asked for a tool call (before it runs)."""
        shown, names = self.redactor.redact_value(arguments)
        taken = tuple(sorted({*redacted, *names}))
        self._update(
            conversation_id,
            lambda c: c.call_tool(
                block_id=block_id,
                call_id=call_id,
                tool=self._text(tool),
                arguments=shown if isinstance(shown, dict) else {},
                redacted=taken,
            ),
        )

    def record_tool_result(self, conversation_id: UUID, *, call_id: str, **outcome: Any) -> None:
        """Record what a tool call gave (``Conversation.return_tool``'s fields)."""
        names = set(outcome.pop("redacted", ()))
        for key in ("result", "error"):
            outcome[key], more = self.redactor.redact_value(outcome.get(key))
            names.update(more)
        taken = tuple(sorted(names))
        self._update(
            conversation_id, lambda c: c.return_tool(call_id=call_id, redacted=taken, **outcome)
        )

    def refuse_tool(self, conversation_id: UUID, *, call_id: str, reason: str) -> None:
        """Record that a tool call was not run."""
        reason = self._text(reason)
        self._update(conversation_id, lambda c: c.refuse_tool(call_id=call_id, reason=reason))

    def mark_tool_unknown(self, conversation_id: UUID, *, call_id: str, detail: str) -> None:
        """Record that a tool call's outcome was lost."""
        detail = self._text(detail)
        self._update(conversation_id, lambda c: c.mark_tool_unknown(call_id=call_id, detail=detail))

    def answer(self, conversation_id: UUID, *, text: str) -> None:
        """Record the final answer."""
        texts, where = self.redactor.clean(text=text)
        self._update(conversation_id, lambda c: c.answer(text=texts["text"], redacted=where))

    def stop(self, conversation_id: UUID, *, reason: str, detail: str = "") -> None:
        """Record that the loop stopped without an answer."""
        detail = self._text(detail)
        self._update(conversation_id, lambda c: c.stop(reason=reason, detail=detail))
