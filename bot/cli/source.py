"""The read-only source the audit commands and ``opsloop replay`` read (bot/audit/reader.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.audit.reader import Source
    from bot.settings import Settings


@contextlib.contextmanager
def audit_source(settings: Settings) -> Iterator[Source]:
    """A read-only source of the configured store (the in-memory store: an empty app)."""
    from bot.audit.reader import AppSource, open_reader

    url = settings.resolved_database_url()
    if url.strip() in ("memory:", "memory://"):
        from bot.cli.bootstrap import open_app

        app = open_app(settings)
        try:
            yield AppSource(
                recorder=app.recorder,
                mapper=app.mapper,  # type: ignore[arg-type]
                readmodel=app.readmodel,
                snapshot_recorder=app.snapshots.recorder if app.snapshots else None,
                usage_log=app.usage_log,
            )
        finally:
            app.close()
        return
    reader = open_reader(url, cipher_key=settings.cipher_key, audit_key=settings.audit_key_bytes())
    try:
        yield reader
    finally:
        reader.close()
