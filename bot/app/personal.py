"""Personal text, encrypted per user so that destroying one key erases it (crypto-shredding).

With an audit key, the free text a person is the source of -- a message's ``text``, and the
``text``, ``stdout`` and ``stderr`` of what the loop produced while working on their message
(model replies, block output, the answer, which may quote them) -- is encrypted with AES-GCM
under that person's own key (``opsloop_user_keys``, one row per ``platform:user``) before
it is stored and sealed. The stored state says whose each field is (``_pii``) and carries the
content hash of the event as it was before encryption (``_content_hash``), which the next
event's ``prev_hash`` names. So when ``opsloop audit erase`` destroys the key, the text reads
``[erased]`` and the seals, the chain and the checkpoints still hold (docs/audit.md).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.seal import CONTENT_HASH, PII

__all__ = ["CONTENT_HASH", "PII", "UserKeys", "decrypt_fields", "encrypt_fields"]
PERSONAL_FIELDS = ("text", "stdout", "stderr")
ERASED = "[erased]"
_PREFIX = "pii:v1:"


def encrypt_fields(state: dict[str, Any], owner: str, key: bytes) -> bool:
    """Encrypt the personal fields of a stored state in place; False when it has none."""
    fields = [f for f in PERSONAL_FIELDS if isinstance(state.get(f), str) and state[f]]
    if not fields:
        return False
    aead = AESGCM(key)
    for field in fields:
        nonce = os.urandom(12)
        data = aead.encrypt(nonce, state[field].encode("utf-8"), f"{owner}\x00{field}".encode())
        state[field] = _PREFIX + base64.b64encode(nonce + data).decode("ascii")
    state[PII] = {field: owner for field in fields}
    return True


def decrypt_fields(state: dict[str, Any], key_for: Callable[[str], bytes | None]) -> None:
    """Decrypt the personal fields of a stored state in place (``[erased]`` without a key)."""
    owners = state.pop(PII, None) or {}
    for field, owner in owners.items():
        key = key_for(owner)
        token = str(state.get(field, ""))
        if key is None or not token.startswith(_PREFIX):
            state[field] = ERASED
            continue
        raw = base64.b64decode(token[len(_PREFIX) :])
        try:
            plain = AESGCM(key).decrypt(raw[:12], raw[12:], f"{owner}\x00{field}".encode())
            state[field] = plain.decode("utf-8")
        except (InvalidTag, ValueError):
            state[field] = ERASED


class UserKeys:
    """The per-user keys, in ``opsloop_user_keys`` beside the events (destroying a row is
    erasing that person's text; a backup of the table still holds the key)."""

    def __init__(self, *, datastore: Any, postgres: bool) -> None:
        self._datastore = datastore
        self._pg = postgres
        schema = getattr(datastore, "schema", "") if postgres else ""
        self.table = f"{schema}.opsloop_user_keys" if schema else "opsloop_user_keys"
        self._cache: dict[str, bytes | None] = {}

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._pg else statement

    def create_statements(self) -> list[str]:
        """DDL of the table (run by the schema migration, never at start)."""
        blob = "BYTEA" if self._pg else "BLOB"
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            f"(user_id TEXT PRIMARY KEY, key {blob} NOT NULL)"
        ]

    def get(self, user: str) -> bytes | None:
        """The user's key, or None (never made, or destroyed)."""
        if user not in self._cache:
            with self._datastore.transaction(commit=False) as c:
                c.execute(self._sql(f"SELECT key FROM {self.table} WHERE user_id = ?"), (user,))
                row = c.fetchone()
            self._cache[user] = bytes(row["key"]) if row else None
        return self._cache[user]

    def get_or_create(self, user: str) -> bytes:
        """The user's key, made on first use."""
        key = self.get(user)
        if key is not None:
            return key
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                self._sql(
                    f"INSERT INTO {self.table} (user_id, key) VALUES (?, ?) "
                    "ON CONFLICT (user_id) DO NOTHING"
                ),
                (user, AESGCM.generate_key(bit_length=256)),
            )
        self._cache.pop(user, None)
        made = self.get(user)
        assert made is not None
        return made

    def destroy(self, user: str) -> bool:
        """Destroy the user's key; True when there was one."""
        existed = self.get(user) is not None
        with self._datastore.transaction(commit=True) as c:
            c.execute(self._sql(f"DELETE FROM {self.table} WHERE user_id = ?"), (user,))
        self._cache[user] = None
        return existed
