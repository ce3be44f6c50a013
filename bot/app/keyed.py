"""The switch to the audit key, recorded: ``AuditKeyed`` as a conversation's first sealed event.

A store written before ``OPSLOOP_AUDIT_KEY`` was set holds unsealed conversations. The first
time a keyed application changes one, it records ``AuditKeyed`` (domain/audit_events.py) ahead
of the change, in the same save: the switch becomes a sealed fact of the log, at the version
where it happened. The replay shows it, and ``audit verify`` checks that every conversation
that began unsealed has it, right after its last unsealed event (bot/audit/verify.py).

Whether a conversation began unsealed is read from the store: its first record, and, when
that one is unsealed, how many of its records are (once per conversation, at its switch).
Conversations sealed from their start are remembered in a bounded set, so their later
commands read nothing more; forgetting one costs a one-row read, never a wrong answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from uuid import UUID

from domain.seal import key_id

if TYPE_CHECKING:
    from eventsourcing.persistence import ApplicationRecorder, Mapper

    from bot.app.mapper import CheckedMapper
    from domain.conversation import Conversation

REMEMBERED = 100_000  # conversations known to be sealed from their start


class KeySwitch:
    """``_load_for_change``: load a conversation to change it, with ``AuditKeyed`` pending
    first when this change is the first one sealed after unsealed history."""

    if TYPE_CHECKING:
        audit_key: bytes | None
        recorder: ApplicationRecorder
        mapper: Mapper[UUID]

        def _load(self, conversation_id: UUID) -> Conversation: ...

    _sealed_from_start: set[UUID] | None = None

    def _load_for_change(self, conversation_id: UUID) -> Conversation:
        """The conversation, ready for a command and a save."""
        conv = self._load(conversation_id)
        if not self.audit_key or conv.audit_key_id is not None or not conv.version:
            return conv
        known = self._sealed_from_start
        if known is None:
            known = self._sealed_from_start = set()
        if conversation_id in known:
            return conv
        unsealed = self._unsealed_records(conversation_id, upto=conv.version)
        if unsealed:
            conv.record_key_switch(key_id=key_id(self.audit_key), unsealed=unsealed)
        else:
            if len(known) >= REMEMBERED:
                known.clear()
            known.add(conversation_id)
        return conv

    def _unsealed_records(self, conversation_id: UUID, *, upto: int) -> int:
        """How many of the conversation's first ``upto`` records carry no seal (0 at once
        when its first record is sealed)."""
        first = self.recorder.select_events(conversation_id, limit=1)
        mapper = cast("CheckedMapper", self.mapper)  # ConversationApp.construct_mapper's
        if not first or mapper.record_of(first[0])[2] is not None:
            return 0
        records = self.recorder.select_events(conversation_id, lte=upto)
        return sum(1 for stored in records if mapper.record_of(stored)[2] is None)
