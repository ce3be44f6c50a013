"""One loop per conversation across processes: the lease the runner holds while it works.

Before it takes a step, the runner claims the conversation's lease (``LoopApp.claim_loop``:
a row in the shared store, and ``LoopClaimed`` in the log when the token is new). A process
that finds the lease held elsewhere does nothing more: the message it recorded is picked up
by the holder, which looks at the log once more after it lets the lease go (the lease is
released *before* that last look, so a message recorded while the holder was finishing is
either seen by that look or finds the lease free). A claim looks at the log once more under
the lease, and one that finds nothing left to do (the holder answered the message between
this process's look and its claim) lets the lease go and records nothing: every
``LoopClaimed`` is followed by a step.

While the loop runs, a keeper beside it, every ``tick`` seconds:

- renews the lease once a third of it has passed (a holder that stops renewing, because it
  died or hangs, loses the lease at its expiry, and another process takes the loop over);
- reads the log for a ``StopRequested`` from any process and interrupts the loop's current
  wait (model call, block, pause), so a ``stop`` typed anywhere takes effect within a tick.

A holder that lost its lease while paused cannot record one more step (the application's
fence); a block result it still brings is recorded, as late if it was given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a dead holder's loop is taken over this long after its last renewal
TICK_SECONDS = 1.0  # how often the keeper renews (when due) and looks for stop requests


def replica_id(name: str | None = None) -> str:
    """This process among replicas: ``name`` (``OPSLOOP_REPLICA_ID``: the pod's, say) or
    ``host:pid``, with a random part so a restarted process with the same pid differs."""
    base = name or f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeasePolicy:
    """How long a lease lasts and how often its keeper works."""

    holder: str = field(default_factory=replica_id)
    seconds: float = LEASE_SECONDS
    tick: float = TICK_SECONDS


@dataclass
class Held:
    """A lease this process holds on one conversation's loop."""

    conversation_id: UUID
    token: int
    taken_from: str


async def claim(
    app: Any, cid: UUID, policy: LeasePolicy, *, wanted: Callable[[Any], bool]
) -> Held | None:
    """The conversation's loop for this process, or None while another process holds it or
    when, once the lease is held, ``wanted`` finds nothing left to do."""
    lease = await asyncio.to_thread(
        app.claim_loop, cid, holder=policy.holder, seconds=policy.seconds, wanted=wanted
    )
    if lease is None:
        return None
    if lease.taken_from:
        log.warning("took over the loop of %s from %s (its lease expired)", cid, lease.taken_from)
    return Held(conversation_id=cid, token=lease.token, taken_from=lease.taken_from)


@contextlib.asynccontextmanager
async def kept(
    app: Any, held: Held, policy: LeasePolicy, *, on_stop: Callable[[], object]
) -> AsyncIterator[None]:
    """Renew ``held`` and watch for stop requests while the body runs; release it after."""
    keeper = asyncio.ensure_future(_keep(app, held, policy, on_stop=on_stop))
    try:
        yield
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await asyncio.shield(
            asyncio.to_thread(
                app.release_loop, held.conversation_id, holder=policy.holder, token=held.token
            )
        )


async def _keep(
    app: Any, held: Held, policy: LeasePolicy, *, on_stop: Callable[[], object]
) -> None:
    renewed = time.monotonic()
    stopping = False
    lost = False
    while True:
        await asyncio.sleep(policy.tick)
        try:
            if not lost and time.monotonic() - renewed >= policy.seconds / 3:
                until = await asyncio.to_thread(
                    app.renew_loop,
                    held.conversation_id,
                    holder=policy.holder,
                    token=held.token,
                    seconds=policy.seconds,
                )
                lost = until is None
                renewed = time.monotonic()
                if lost:  # its next step is refused by the fence; nothing to do here
                    log.warning("lost the lease of %s's loop", held.conversation_id)
            state = await asyncio.to_thread(app.get, held.conversation_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store hiccuped: renew and look again at the next tick
            log.warning("lease keeper of %s: store error", held.conversation_id, exc_info=True)
            continue
        requested = state.stop_requested_by is not None
        if requested and not stopping:
            on_stop()
        stopping = requested
