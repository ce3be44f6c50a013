"""The keyed seal of every stored record, and the chain over the whole log (pure).

A *seal* is ``KID:MAC``: ``MAC`` is the HMAC-SHA256, under the audit key, of the record
exactly as it is stored -- the aggregate id, its version, the topic (the event's class) and
the encoded state, which holds every field, ``class_version`` and ``prev_hash`` included.
``KID`` names the key (the first 16 hex digits of a hash of it), so that a verifier holding
another key says so instead of crying tamper. The seal is stored in the state itself, under
``SEAL``, after the fields it covers; it is not part of the content hash (``domain.chain``),
so events written before the key existed keep their hashes, and the first sealed event of a
conversation vouches for the unsealed ones before it through its ``prev_hash``.

Nothing here knows an event class: a record is four values, whatever its type.

The *global chain* runs over the notification log, every event of every conversation in
order: ``g(n) = sha256(g(n-1) | position | conversation | version | digest)``, where an
event's digest is its MAC (or, for an unsealed event, the sha256 of its stored record).
A checkpoint signs the head of it, so deleting a whole conversation, a tail, or reordering
the log changes something the checkpoint's holder can check.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from uuid import UUID

SEAL = "_seal"
PII = "_pii"  # personal fields of a stored state and whose they are (bot/app/personal.py)
CONTENT_HASH = "_content_hash"  # the content hash of an event from before its encryption
GLOBAL_GENESIS = hashlib.sha256(b"opsloop-global-chain").hexdigest()


@dataclass(frozen=True)
class Record:
    """One stored record: what the seal covers (the state without its seal, encoded)."""

    originator_id: UUID
    version: int
    topic: str
    state: bytes


def key_id(key: bytes) -> str:
    """A short public name of an audit key (never enough to recover or use it)."""
    return hashlib.sha256(b"opsloop-audit-key-id\x00" + key).hexdigest()[:16]


def _message(record: Record) -> bytes:
    head = f"{record.originator_id}\x00{record.version}\x00{record.topic}\x00"
    return head.encode("utf-8") + record.state


def mac(key: bytes, record: Record) -> str:
    """HMAC-SHA256 (hex) of ``record`` under ``key``."""
    return hmac.new(key, _message(record), hashlib.sha256).hexdigest()


def seal(key: bytes, record: Record) -> str:
    """The seal stored with ``record``: ``KID:MAC``."""
    return f"{key_id(key)}:{mac(key, record)}"


def seal_check(key: bytes, record: Record, stored: str) -> str:
    """``"ok"``, ``"other-key"`` (sealed under another key) or ``"bad"`` (altered)."""
    kid, _, value = str(stored).partition(":")
    if kid != key_id(key):
        return "other-key"
    return "ok" if hmac.compare_digest(value, mac(key, record)) else "bad"


def unsealed_digest(record: Record) -> str:
    """The digest of a record written without a key (sha256 of what the MAC would cover)."""
    return hashlib.sha256(_message(record)).hexdigest()


def digest_of(stored_seal: str | None, record: Record) -> str:
    """An event's digest in the global chain and in checkpoints' heads."""
    if stored_seal:
        return str(stored_seal).partition(":")[2]
    return unsealed_digest(record)


def global_link(prev: str, position: int, originator_id: UUID, version: int, digest: str) -> str:
    """The global chain's head after one more event."""
    text = f"{prev}\x00{position}\x00{originator_id}\x00{version}\x00{digest}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
