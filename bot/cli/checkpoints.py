"""Serving processes write a checkpoint every ``[audit] checkpoint_minutes`` (default 60).

Each goes to the ``[audit] publish`` command on its stdin when one is configured, else into
``<data dir>/checkpoints/`` (which the operator should ship somewhere the database's operator
cannot rewrite). Only with an audit key; a failure is logged and the next one is tried on
time: a checkpoint never stops the bot. Taking one reads the log read-only, off the event
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Policy
from bot.errors import OpsloopError
from bot.settings import Settings

log = logging.getLogger(__name__)


def write_one(settings: Settings, policy: Policy, *, now: datetime | None = None) -> str:
    """Take one checkpoint and hand it on; returns where it went."""
    from bot.cli.audit import checkpoint_text, publish_to, take_checkpoint

    when = now or datetime.now(UTC)
    text = checkpoint_text(take_checkpoint(settings, now=when))
    if policy.audit.publish:
        publish_to(policy.audit.publish, text)
        return f"[audit] publish {policy.audit.publish[0]}"
    folder = Path(settings.data_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint-{when:%Y%m%dT%H%M%S.%fZ}.json"
    path.write_text(text, encoding="utf-8")
    return str(path)


async def _every(settings: Settings, policy: Policy, minutes: float) -> None:
    while True:
        await asyncio.sleep(minutes * 60)
        try:
            where = await asyncio.to_thread(write_one, settings, policy)
            log.info("audit checkpoint written to %s", where)
        except (OpsloopError, OSError) as exc:
            log.warning("audit checkpoint failed: %s", exc)


@contextlib.asynccontextmanager
async def checkpoints_every(settings: Settings, policy: Policy) -> AsyncIterator[None]:
    """While serving, write checkpoints on time (nothing without an audit key, or with
    ``checkpoint_minutes = 0``)."""
    minutes = policy.audit.checkpoint_minutes
    if not minutes or not settings.audit_key_bytes():
        yield
        return
    task = asyncio.create_task(_every(settings, policy, minutes))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
