"""What the application records about files and feedback: a file a person attached (saved or
refused), a file sent with an answer, a rating of an answer.

A mixin of ``bot.app.application.ConversationApp``, kept apart so each module holds one
concept. Like every command of the application: load, one aggregate command, save, retried
on a concurrent write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from domain.conversation import Conversation
    from domain.redaction import Redactor


class FileRecords:
    """Record commands about files and feedback (mixed into ``ConversationApp``)."""

    if TYPE_CHECKING:
        redactor: Redactor

        def _update(
            self, conversation_id: UUID, command: Callable[[Conversation], None]
        ) -> None: ...

    def record_file_received(
        self, conversation_id: UUID, *, name: str, size: int, sha256: str, by: str
    ) -> None:
        """A file ``by`` attached is in the workspace's inbox as ``name``."""
        self._update(
            conversation_id, lambda c: c.receive_file(name=name, size=size, sha256=sha256, by=by)
        )

    def record_file_refused(
        self, conversation_id: UUID, *, name: str, reason: str, by: str
    ) -> None:
        """A file ``by`` attached was not saved, for ``reason`` (redacted, as every reason)."""
        reason = self.redactor.redact(reason).text
        self._update(conversation_id, lambda c: c.refuse_file(name=name, reason=reason, by=by))

    def record_file_sent(self, conversation_id: UUID, *, name: str, size: int, sha256: str) -> None:
        """A file of the outbox goes out with the answer being given."""
        self._update(conversation_id, lambda c: c.send_file(name=name, size=size, sha256=sha256))

    def record_feedback(
        self, conversation_id: UUID, *, by: str, value: str, answer_sha256: str
    ) -> None:
        """``by`` rated the answer whose text has ``answer_sha256``."""
        self._update(
            conversation_id,
            lambda c: c.give_feedback(by=by, value=value, answer_sha256=answer_sha256),
        )
