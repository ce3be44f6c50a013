"""Why a started block has no result, recorded: one rule for every way a run can end badly.

A block that started is never run again, so a run that did not give a result is recorded as
refused (the sandbox would not run it: nothing ran) or as of unknown outcome (it may have
run). A cancel by the user is recorded, then goes on up to stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bot.errors import one_line
from bot.loop.tool_calls import AppCall
from sandbox.errors import OutcomeUnknown, SandboxError

if TYPE_CHECKING:
    from uuid import UUID

    from bot.ports_app import LoopApp

log = logging.getLogger(__name__)

INTERRUPTED_DETAIL = (
    "the process running this block stopped before its outcome was recorded; "
    "it was not run again, so its effects are unknown"
)
CANCELLED_BLOCK_DETAIL = "cancelled by the user while it was running; its effects are unknown"


class LoopCancelled(Exception):
    """The user asked this loop to stop."""


async def record_failure(
    app: LoopApp, call: AppCall, cid: UUID, block_id: str, exc: BaseException
) -> None:
    """Record why a started block has no result (``call`` runs an application command);
    a cancel goes on up after its record."""
    match exc:
        case LoopCancelled():
            await call(
                app.mark_block_unknown, cid, block_id=block_id, detail=CANCELLED_BLOCK_DETAIL
            )
            raise exc
        case asyncio.CancelledError():
            raise exc
        case OutcomeUnknown():  # lost after it may have started: never re-run it
            await call(app.mark_block_unknown, cid, block_id=block_id, detail=one_line(exc))
        case SandboxError():  # the sandbox would not run it: nothing ran
            await call(app.refuse_block, cid, block_id=block_id, reason=one_line(exc))
        case Exception():  # unexpected: it may have run, so its outcome is unknown
            log.exception("sandbox raised while running %s", block_id, exc_info=exc)
            detail = f"the sandbox failed while running it: {one_line(exc)}"
            await call(app.mark_block_unknown, cid, block_id=block_id, detail=detail)
        case _:
            raise exc
