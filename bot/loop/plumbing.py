"""How the runner awaits: work that a stop may interrupt, and records that nothing may cut.

The application is synchronous (eventsourcing); its commands run in a worker thread and are
awaited shielded, so a cancel never leaves a record half-written. Model calls, blocks and
pauses are awaited through ``cancellable``, which a stop interrupts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.loop.failures import LoopCancelled

T = TypeVar("T")


@dataclass
class Running:
    """Book-keeping of one loop running in this process."""

    cancelled: bool = False  # stop now, whatever the log says (the runner's ``cancel``)
    interrupted: bool = False  # stop waiting and decide again from the log (a stop request)
    current: asyncio.Future[Any] | None = None  # the model call or block being awaited

    def interrupt(self, *, forced: bool) -> bool:
        """Cancel what is awaited now (and what would be awaited before the next decision)."""
        if forced:
            self.cancelled = True
        else:
            self.interrupted = True
        if self.current is not None:
            self.current.cancel()
        return True

    @property
    def stopping(self) -> bool:
        """Whether awaiting more work now would be cut short anyway."""
        return self.cancelled or self.interrupted


async def cancellable(running: Running, work: Awaitable[T]) -> T:
    """Await ``work`` so that ``Running.interrupt`` cancels it (and only it, never a record)."""
    if running.stopping:
        if asyncio.iscoroutine(work):
            work.close()
        raise LoopCancelled
    future = asyncio.ensure_future(work)
    running.current = future
    try:
        return await future
    except asyncio.CancelledError:
        if running.stopping and not _outer_cancelling():
            raise LoopCancelled from None
        raise
    finally:
        running.current = None


async def call_app(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a synchronous application call in a thread; a record is never half-cancelled."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # The write goes on in its thread; wait for it so the log and our view agree.
        await asyncio.wait({future})
        raise


def _outer_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
