"""Refusing a mixed store: encrypted and plaintext events, or sealed and unsealed ones."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Mapper

from bot.app.mapper import CheckedMapper
from bot.errors import MixedStore, WrongCipherKey
from domain.seal import SEAL


def refuse_mixed(recorder: Any, mapper: CheckedMapper) -> None:
    """Refuse to start where writing would make a mixed store: with ``OPSLOOP_CIPHER_KEY`` on
    a plaintext store (``opsloop db encrypt`` converts one), without it on an encrypted one,
    or without the audit key on a store whose newest event is sealed."""
    first = recorder.select_notifications(start=0, limit=1)
    if not first:
        return
    plain = is_plaintext(mapper, first[0].state)
    if mapper.cipher and plain:
        raise MixedStore(
            "the event store holds unencrypted events: OPSLOOP_CIPHER_KEY would mix encrypted "
            "ones into it; run `opsloop db encrypt` once to encrypt it, or unset the key"
        )
    if not mapper.cipher and not plain:
        raise WrongCipherKey(
            "the event store is encrypted: set OPSLOOP_CIPHER_KEY to the key it was written with"
        )
    newest = recorder.max_notification_id()
    last = recorder.select_notifications(start=newest, limit=1) if newest else []
    if last and not mapper.audit_key and SEAL in mapper.decode_state(last[0]):
        raise MixedStore(
            "the event store is sealed with an audit key: set OPSLOOP_AUDIT_KEY (or "
            "OPSLOOP_AUDIT_KEY_FILE); events written without it would read as tampering"
        )


def is_plaintext(mapper: Mapper, data: bytes | str) -> bool:
    """True when a stored state is the transcoder's JSON as is (neither compressed nor
    encrypted)."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if raw[:1] != b"{":
        return False
    try:
        return isinstance(mapper.transcoder.decode(raw), dict)
    except Exception:  # noqa: BLE001 -- any failure means it is not plain JSON
        return False
