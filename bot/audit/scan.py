"""One pass over the notification log: every record decoded, its seal checked, its digest.

Key problems are told apart from tampering here, before anything is blamed: when no record at
all can be decoded, the cipher key is wrong or missing (``WrongCipherKey``); when records are
sealed and no audit key is given, or none is sealed under the given key, the audit key is
(``AuditKeyProblem``). One record that cannot be decoded among many that can, or one seal
that does not hold among many that do, is tampering, and is reported as such by ``verify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from bot.app.mapper import CheckedMapper
from bot.audit.reader import Note, Source
from bot.errors import AuditKeyProblem, OpsloopError, WrongCipherKey
from domain.seal import (
    GLOBAL_GENESIS,
    Record,
    digest_of,
    global_link,
    key_id,
    seal_check,
    unsealed_digest,
)


@dataclass(frozen=True)
class Item:
    """One stored record as the audit sees it."""

    position: int
    conversation_id: UUID
    version: int
    type_name: str
    state: dict[str, Any] | None  # None: cannot be decoded
    seal: str | None  # as stored (None: unsealed)
    seal_status: str  # ok | bad | other-key | unsealed | unchecked
    digest: str  # in the global chain and checkpoint heads
    global_head: str  # the global chain up to and including this record
    stored: StoredEvent


@dataclass(frozen=True)
class Scan:
    """The whole log, in order."""

    items: tuple[Item, ...]
    keyed_since: int | None  # the position of the first sealed record
    key_id: str | None  # of the audit key given

    def by_conversation(self) -> dict[UUID, list[Item]]:
        """Each conversation's records, in version order."""
        out: dict[UUID, list[Item]] = {}
        for item in self.items:
            out.setdefault(item.conversation_id, []).append(item)
        for items in out.values():
            items.sort(key=lambda i: i.version)
        return out


def type_name(topic: str) -> str:
    """The class name in a topic (``domain.events:Answered`` -> ``Answered``)."""
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def scan(source: Source) -> Scan:
    """Read and check every record; raises on a key problem, never on tampering."""
    key = source.mapper.audit_key
    items: list[Item] = []
    head = GLOBAL_GENESIS
    first_error: OpsloopError | None = None
    for note in source.notifications():
        item, error = _item(source, note, key, head)
        first_error = first_error or error
        head = item.global_head
        items.append(item)
    if items and all(i.state is None for i in items) and first_error is not None:
        raise WrongCipherKey(f"{first_error} (no stored event can be decoded: a key problem)")
    sealed = [i for i in items if i.seal]
    if sealed and not key:
        kid = sealed[0].seal.partition(":")[0] if sealed[0].seal else "?"
        raise AuditKeyProblem(
            f"the events are sealed with audit key {kid}: set OPSLOOP_AUDIT_KEY or "
            "OPSLOOP_AUDIT_KEY_FILE to that key to verify them"
        )
    if key and sealed and not any(i.seal_status in ("ok", "bad") for i in sealed):
        kid = (sealed[0].seal or "?").partition(":")[0]
        raise AuditKeyProblem(
            f"the events are sealed with audit key {kid}, not with the key given "
            f"({key_id(key)}): wrong OPSLOOP_AUDIT_KEY"
        )
    keyed_since = sealed[0].position if sealed else None
    return Scan(tuple(items), keyed_since, key_id(key) if key else None)


def _item(
    source: Source, note: Note, key: bytes | None, head: str
) -> tuple[Item, OpsloopError | None]:
    stored = note.stored
    cid = UUID(str(stored.originator_id))
    error: OpsloopError | None = None
    try:
        state, record, seal = source.mapper.record_of(stored)
    except OpsloopError as exc:
        raw = stored.state if isinstance(stored.state, bytes) else str(stored.state).encode()
        state, seal, error = None, None, exc
        record = Record(cid, stored.originator_version, stored.topic, raw)
    status = "unsealed" if not seal else "unchecked" if not key else seal_check(key, record, seal)
    digest = digest_of(seal, record) if state is not None else unsealed_digest(record)
    item = Item(
        position=note.position,
        conversation_id=cid,
        version=stored.originator_version,
        type_name=type_name(stored.topic),
        state=state,
        seal=seal,
        seal_status=status,
        digest=digest,
        global_head=global_link(head, note.position, cid, stored.originator_version, digest),
        stored=stored,
    )
    return item, error


class Decoded:
    """One conversation's events decoded (and upcast) for the folds that check the derived
    tables, the listing and the usage ledger: each conversation is decoded once for both, and
    only the latest is kept, so memory stays one conversation's worth."""

    def __init__(self, mapper: CheckedMapper) -> None:
        self._mapper = mapper
        self._last: tuple[UUID, list[Any] | None] | None = None

    def __call__(self, cid: UUID, items: list[Item]) -> list[Any] | None:
        """The events of ``items`` (None when one cannot be decoded)."""
        if self._last is None or self._last[0] != cid:
            try:
                events: list[Any] | None = [self._mapper.to_domain_event(i.stored) for i in items]
            except OpsloopError:
                events = None
            self._last = (cid, events)
        return self._last[1]
