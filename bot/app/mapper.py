"""How opsloop's records are encoded, checked and sealed.

``CheckedMapper`` turns the library's failures into opsloop's errors (wrong key, schema too
new), records the stored form's chain hash on upcast events (see ``domain.chain``) and, with
an audit key, seals every record it stores, events and snapshots alike (``domain.seal``).
``SealedSnapshots`` hands the repository only snapshots whose seal holds: a snapshot is a
cache, and one edited in the database (its token counters, say) is ignored, never believed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from eventsourcing.persistence import EventStore, Mapper, StoredEvent
from eventsourcing.utils import TopicError, get_topic, resolve_topic

from bot.app.personal import PERSONAL_FIELDS, decrypt_fields, encrypt_fields
from bot.errors import OpsloopError, SchemaTooNew, WrongCipherKey
from domain.chain import STORED_HASH, event_hash, hash_of
from domain.seal import CONTENT_HASH, PII, SEAL, Record, seal, seal_check


class CheckedMapper(Mapper):
    """The library's mapper, with opsloop's errors, stored-form hashes for upcasts and, with
    ``audit_key``, a seal on every record it stores."""

    audit_key: bytes | None = None
    # Personal text (bot/app/personal.py): whose it is, per aggregate being saved -- set by
    # the application for each save -- and the per-user keys, to read and to write.
    owners: dict[Any, tuple[str, str]] = {}  # noqa: RUF012 -- replaced per save, never mutated
    user_key: Callable[[str], bytes | None] | None = None
    user_key_or_new: Callable[[str], bytes] | None = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Encode one event or snapshot (seal, compress, encrypt)."""
        topic = get_topic(type(domain_event))
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        state.pop(STORED_HASH, None)
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        self._encrypt_personal(originator_id, domain_event, state)
        data = self.transcoder.encode(state)
        if self.audit_key:
            record = Record(originator_id, originator_version, topic, data)
            state[SEAL] = seal(self.audit_key, record)  # last: the encoding before it is kept
            data = self.transcoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=data,
        )

    def _encrypt_personal(self, originator_id: Any, event: Any, state: dict[str, Any]) -> None:
        platform, last_author = self.owners.get(originator_id, ("", ""))
        author = state.get("author") if isinstance(state.get("author"), str) else last_author
        if not (self.user_key_or_new and platform and author):
            return
        if not any(isinstance(state.get(f), str) and state[f] for f in PERSONAL_FIELDS):
            return
        owner = f"{platform}:{author}"
        content = hash_of(event)  # as the aggregate chains it: before encryption
        encrypt_fields(state, owner, self.user_key_or_new(owner))
        state[CONTENT_HASH] = content

    def record_of(self, stored_event: StoredEvent) -> tuple[dict[str, Any], Record, str | None]:
        """The stored state, the record its seal covers, and its seal (None: unsealed)."""
        state = self.decode_state(stored_event)
        stored_seal = state.pop(SEAL, None)
        record = Record(
            stored_event.originator_id,  # type: ignore[arg-type]
            stored_event.originator_version,
            stored_event.topic,
            self.transcoder.encode(state),
        )
        if stored_seal is not None:
            state[SEAL] = stored_seal
        return state, record, stored_seal

    def sealed(self, stored_event: StoredEvent) -> bool:
        """True when the record carries a seal of this mapper's key that holds."""
        if not self.audit_key:
            return False
        try:
            _, record, stored_seal = self.record_of(stored_event)
        except OpsloopError:
            return False
        return stored_seal is not None and seal_check(self.audit_key, record, stored_seal) == "ok"

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """Decode one stored event (decrypt, decompress, upcast)."""
        cls, state = self.to_state(stored_event)
        domain_event: Any = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event

    def to_state(self, stored_event: StoredEvent) -> tuple[type, dict[str, Any]]:
        """The event class and the upcast state of one stored event (no object is built)."""
        try:
            cls = resolve_topic(stored_event.topic)
        except TopicError:
            raise SchemaTooNew(
                f"the event store holds an event type this opsloop does not know "
                f"({stored_event.topic}); upgrade opsloop"
            ) from None
        state = self.decode_state(stored_event)
        state.pop(SEAL, None)
        if PII in state:  # personal text: decrypted, or [erased]; its hash is the one chained
            content = state.pop(CONTENT_HASH, None)
            decrypt_fields(state, self.user_key or (lambda _owner: None))
            if content:
                state[STORED_HASH] = content
        stored_version = int(state.get("class_version", 1))
        known = int(getattr(cls, "class_version", 1))
        if stored_version > known:
            raise SchemaTooNew(
                f"the event store was written by a newer opsloop ({cls.__name__} "
                f"version {stored_version}, this one knows {known}); upgrade opsloop"
            )
        fields = getattr(cls, "__dataclass_fields__", {})
        if stored_version < known and "prev_hash" in fields and STORED_HASH not in state:
            # Remember the hash of the form that was stored, before the upcast changes it.
            state[STORED_HASH] = event_hash(
                type_name=cls.__name__,
                version=stored_event.originator_version,
                timestamp=state["timestamp"],
                payload=state,
            )
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        state.pop("class_version", None)
        while stored_version < known:
            getattr(cls, f"upcast_v{stored_version}_v{stored_version + 1}")(state)
            stored_version += 1
        return cls, state

    def decode_state(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The stored state as a dict, exactly as written (no upcast)."""
        data = stored_event.state
        if isinstance(data, str):  # a row edited by hand may come back as text
            data = data.encode("utf-8")
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
        except Exception:
            raise WrongCipherKey(
                "stored events cannot be decrypted with OPSLOOP_CIPHER_KEY (wrong key, or "
                "the events were written without encryption)"
            ) from None
        try:
            if self.compressor:
                data = self.compressor.decompress(data)
            state: dict[str, Any] = self.transcoder.decode(data)
        except Exception:
            if self.cipher:
                raise WrongCipherKey(
                    f"event {stored_event.originator_version} of {stored_event.originator_id} "
                    "decrypts but cannot be decoded"
                ) from None
            if data[:1] == b"{":
                raise WrongCipherKey(
                    f"event {stored_event.originator_version} of {stored_event.originator_id} "
                    "is damaged: it cannot be decoded"
                ) from None
            raise WrongCipherKey(
                "stored events cannot be read: they look encrypted or compressed; "
                "set OPSLOOP_CIPHER_KEY to the key they were written with"
            ) from None
        if not isinstance(state, dict):
            raise WrongCipherKey("stored events cannot be read with this configuration")
        return state


class SealedSnapshots(EventStore):
    """The snapshot store, yielding only snapshots whose seal holds under the audit key
    (none without a key): the repository then replays the events instead."""

    def get(self, originator_id: Any, **kwargs: Any) -> Iterator[Any]:
        """The snapshots the library asks for, less any that are not sealed by us."""
        mapper: CheckedMapper = self.mapper  # type: ignore[assignment]
        for stored in self.recorder.select_events(originator_id, **kwargs):
            if mapper.sealed(stored):
                yield mapper.to_domain_event(stored)
