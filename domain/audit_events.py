"""The events of the audit trail itself (part of domain/events.py, which lists them in
``AnyEvent``). Stored under this module's topic.
"""

from __future__ import annotations

from domain.event_base import ConversationEvent


class AuditKeyed(ConversationEvent):
    """From this event on, the conversation is sealed with the audit key ``key_id``
    (``domain.seal``); the ``unsealed`` events before it were written before the store had
    one, and this event's ``prev_hash`` vouches for them. Recorded once, as the first sealed
    event of a conversation that began unsealed (docs/audit.md, "Upgrading")."""

    key_id: str  # the public name of the audit key (domain.seal.key_id), never the key
    unsealed: int  # how many events came before it, written without a key
