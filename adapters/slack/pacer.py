"""At most about one message per second per channel, as Slack asks of chat.postMessage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class ChannelPacer:
    """Hands out send slots per channel, ``interval`` seconds apart, in arrival order."""

    def __init__(
        self, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}

    def reserve(self, channel: str) -> float:
        """Reserve the channel's next slot; returns how many seconds to wait for it."""
        now = self._clock()
        slot = max(now, self._next.get(channel, now))
        self._next[channel] = slot + self._interval
        if len(self._next) > 1024:
            # Channels idle for longer than one interval need no memory.
            self._next = {ch: at for ch, at in self._next.items() if at > now}
        return slot - now

    async def wait(self, channel: str) -> None:
        """Wait for this channel's next slot (no lock: reserve() never awaits)."""
        delay = self.reserve(channel)
        if delay > 0:
            await asyncio.sleep(delay)
