"""``opsloop db encrypt``: turn a plaintext store into an encrypted one, in place.

Every event and snapshot still in plaintext is compressed and encrypted with the
application's cipher, in one transaction, so the store is never left mixed. Seals and
chain hashes are taken over the plaintext (``domain.seal``), so they, and checkpoints taken
before, still verify afterwards. Run it once, with every opsloop process stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.app.mixed import is_plaintext
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.app.application import ConversationApp


def encrypt_store(app: ConversationApp) -> int:
    """Encrypt every plaintext record of ``app``'s store; returns how many."""
    mapper = app.mapper
    if not mapper.cipher or not mapper.compressor:
        raise ConfigError("set OPSLOOP_CIPHER_KEY to the key to encrypt the store with")
    datastore = app.factory.datastore  # type: ignore[attr-defined]
    pg = type(app.factory).__module__.endswith("postgres")
    schema = getattr(datastore, "schema", "") if pg else ""
    prefix = f"{schema}." if schema else ""
    tables = (
        ("opsloop_events", "opsloop_snapshots") if pg else ("stored_events", "stored_snapshots")
    )
    mark = "%s" if pg else "?"
    done = 0
    with datastore.transaction(commit=True) as c:
        for table in (prefix + t for t in tables):
            c.execute(f"SELECT originator_id, originator_version, state FROM {table}")
            for row in c.fetchall():
                state = row["state"]
                if not is_plaintext(mapper, state):
                    continue
                data = bytes(state) if not isinstance(state, str) else state.encode("utf-8")
                sealed = mapper.cipher.encrypt(mapper.compressor.compress(data))
                c.execute(
                    f"UPDATE {table} SET state = {mark} WHERE originator_id = {mark} "
                    f"AND originator_version = {mark}",
                    (sealed, row["originator_id"], row["originator_version"]),
                )
                done += 1
    return done
