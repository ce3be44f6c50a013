"""The ``Conversation`` aggregate's commands about files and feedback: a file a person attached
(saved or refused), a file sent with an answer, and a rating of an answer (a mixin of
``domain.conversation.Conversation``, kept apart so each module holds one concept).

The files themselves never enter the log: a ``FileReceived`` or ``FileSent`` records the
name, the size and the SHA-256 of what was saved or sent, so an auditor can match a copy.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from domain import events as ev
from domain.errors import InvalidTransition, UnknownAnswer

FEEDBACK_VALUES = ("good", "bad")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def text_sha256(text: str) -> str:
    """sha256 of a text as UTF-8 (hex): how an answer is named by feedback on it."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _check_file(name: str, size: int, sha256: str) -> None:
    if not name or size < 0 or not _SHA256.fullmatch(sha256):
        raise InvalidTransition(f"not a file record: {name!r}, {size} bytes, sha256 {sha256!r}")


class FilesAndFeedback:
    """Commands about files and feedback (mixed into ``Conversation``)."""

    if TYPE_CHECKING:

        def _check_not_renewed(self) -> None: ...
        def _check_working(self) -> None: ...
        def _trigger(self, event_class: type[ev.ConversationEvent], **payload: Any) -> None: ...
        def answered_with(self, answer_sha256: str) -> bool: ...

    def receive_file(self, *, name: str, size: int, sha256: str, by: str) -> None:
        """Record a file a person attached, saved in the inbox as ``name``."""
        self._check_not_renewed()
        _check_file(name, size, sha256)
        self._trigger(ev.FileReceived, name=name, bytes=int(size), sha256=sha256, by=by)

    def refuse_file(self, *, name: str, reason: str, by: str) -> None:
        """Record a file a person attached that was not saved, and why."""
        self._check_not_renewed()
        self._trigger(ev.FileRefused, name=name, reason=reason, by=by)

    def send_file(self, *, name: str, size: int, sha256: str) -> None:
        """Record a file of the outbox that goes out with the answer being given."""
        self._check_working()
        _check_file(name, size, sha256)
        self._trigger(ev.FileSent, name=name, bytes=int(size), sha256=sha256)

    def give_feedback(self, *, by: str, value: str, answer_sha256: str) -> None:
        """Record a rating of one of this conversation's answers."""
        self._check_not_renewed()
        if value not in FEEDBACK_VALUES:
            raise InvalidTransition(f"feedback is {' or '.join(FEEDBACK_VALUES)}, not {value!r}")
        if not self.answered_with(answer_sha256):
            raise UnknownAnswer("this conversation gave no answer with that sha256")
        self._trigger(ev.FeedbackGiven, by=by, value=value, answer_sha256=answer_sha256)
