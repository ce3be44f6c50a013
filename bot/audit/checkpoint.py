"""Checkpoints: a small signed statement of the whole log, kept outside the database.

``{format, position, events, global_head, heads, snapshots, time, keyed_since, key_id,
signature}``:
``position`` is the last notification the statement covers, ``global_head`` the global chain
up to it (``domain.seal``), ``heads`` each conversation's last version and its digest,
``snapshots`` the version and digest of each sealed snapshot.
``signature`` is the HMAC-SHA256 of the canonical JSON of the rest under the audit key; with
``OPSLOOP_AUDIT_SIGNING_KEY`` (base64 of a 32-byte Ed25519 seed) it is also signed with
Ed25519, which anyone holding the public key can check without the audit key.

The operator keeps checkpoints where the database's operator cannot rewrite them (an object
store with a retention lock, a ticket, a chat message): ``audit verify --against`` then proves
that nothing up to ``position`` was edited, removed, inserted or reordered since.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.audit.scan import Scan
from bot.errors import AuditKeyProblem, ConfigError
from domain.seal import GLOBAL_GENESIS, key_id

FORMAT = "opsloop-checkpoint/1"
_SIGNATURES = ("signature", "ed25519_signature")


def make(
    scan: Scan,
    *,
    key: bytes,
    now: datetime,
    snapshots: dict[str, list[list[Any]]] | None = None,
    signing_key: bytes | None = None,
) -> dict[str, Any]:
    """The signed checkpoint of everything ``scan`` read (and the sealed snapshots)."""
    items = scan.items
    heads = {
        str(cid): [rows[-1].version, rows[-1].digest]
        for cid, rows in sorted(scan.by_conversation().items(), key=lambda kv: str(kv[0]))
    }
    body: dict[str, Any] = {
        "format": FORMAT,
        "position": items[-1].position if items else 0,
        "events": len(items),
        "global_head": items[-1].global_head if items else GLOBAL_GENESIS,
        "heads": heads,
        "snapshots": snapshots or {},
        "time": now.isoformat(),
        "keyed_since": scan.keyed_since,
        "key_id": key_id(key),
    }
    if signing_key:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.from_private_bytes(signing_key)
        public = private.public_key().public_bytes_raw()
        body["ed25519_public_key"] = base64.b64encode(public).decode()
        body["ed25519_signature"] = base64.b64encode(private.sign(canonical(body))).decode()
    body["signature"] = "hmac-sha256:" + _hmac(key, body)
    return body


def canonical(body: dict[str, Any]) -> bytes:
    """What is signed: every field but the signatures, as compact sorted JSON."""
    rest = {k: v for k, v in body.items() if k not in _SIGNATURES}
    return json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _hmac(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def load(path: Path) -> dict[str, Any]:
    """A checkpoint file; a malformed one is a one-line ``ConfigError``."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no checkpoint file {path}") from None
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the checkpoint {path}: {exc}") from None
    fields = ("position", "global_head", "heads", "time", "signature")
    if (
        not isinstance(body, dict)
        or body.get("format") != FORMAT
        or any(f not in body for f in fields)
    ):
        raise ConfigError(f"{path} is not an opsloop checkpoint ({FORMAT})")
    return body


def signature_holds(body: dict[str, Any], *, key: bytes, public_key: str | None = None) -> bool:
    """True when the checkpoint's HMAC holds under ``key`` (and, when ``public_key`` is
    given, its Ed25519 signature under that key); a checkpoint of another audit key is a
    key problem, not a forgery."""
    if body.get("key_id") != key_id(key):
        raise AuditKeyProblem(
            f"the checkpoint of {body.get('time')} was signed with audit key "
            f"{body.get('key_id')}, not with the key given ({key_id(key)})"
        )
    given = str(body.get("signature", "")).removeprefix("hmac-sha256:")
    if not hmac.compare_digest(given, _hmac(key, body)):
        return False
    if public_key is None:
        return True
    return _ed25519_holds(body, public_key)


def _ed25519_holds(body: dict[str, Any], public_key: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(
            base64.b64decode(body.get("ed25519_signature", ""), validate=True), canonical(body)
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def signing_key_of(text: str | None) -> bytes | None:
    """``OPSLOOP_AUDIT_SIGNING_KEY``: base64 of a 32-byte Ed25519 seed, or None."""
    if not text:
        return None
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError("OPSLOOP_AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed")
    return raw


def public_key_of(signing_key: bytes) -> str:
    """The base64 public key auditors pin (``audit verify --public-key``)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.from_private_bytes(signing_key).public_key().public_bytes_raw()
    return base64.b64encode(public).decode()
