"""``opsloop audit erase --user platform:id``: crypto-shredding one person's text.

Destroys the person's key (bot/app/personal.py), removes the snapshots of their conversations
(a snapshot is a cache, and may hold their text in clear), and records ``UserErased`` in each
conversation they wrote in. Their text then reads ``[erased]`` everywhere it is read; the
seals, the chains and checkpoints taken before still verify, because they cover the text as
stored, encrypted (docs/audit.md says what is and is not erased).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING
from uuid import UUID

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.app.application import ConversationApp


def erase_user(app: ConversationApp, user: str) -> tuple[bool, list[UUID]]:
    """Erase ``user`` (``platform:id``); returns whether a key existed and the conversations
    where ``UserErased`` was recorded."""
    platform, _, uid = user.strip().partition(":")
    if not platform or not uid:
        raise ConfigError(f"{user!r}: give the person as platform:id, e.g. slack:U012AB")
    user = f"{platform}:{uid}"
    app.readmodel.catch_up()
    found = [s.conversation_id for s in app.readmodel.search(platform=platform, user=uid)]
    had_key = app.user_keys.destroy(user)
    _drop_snapshots(app, found)
    for cid in found:
        app.record_erasure(cid, user=user)
    return had_key, found


def _drop_snapshots(app: ConversationApp, conversations: list[UUID]) -> None:
    if not conversations:
        return
    datastore = app.factory.datastore  # type: ignore[attr-defined]
    pg = type(app.factory).__module__.endswith("postgres")
    schema = getattr(datastore, "schema", "") if pg else ""
    table = "opsloop_snapshots" if pg else "stored_snapshots"
    table = f"{schema}.{table}" if schema else table
    mark = "%s" if pg else "?"
    with datastore.transaction(commit=True) as c:
        for cid in conversations:
            c.execute(
                f"DELETE FROM {table} WHERE originator_id = {mark}", (cid if pg else cid.hex,)
            )
    cache = app.repository.cache
    for cid in conversations if cache is not None else []:
        with contextlib.suppress(KeyError):
            cache.get(cid, evict=True)  # type: ignore[union-attr]
