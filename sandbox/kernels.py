"""The warm kernels of one sandbox (a process or a service): one per workspace, and a pool.

A workspace's Python blocks run in its kernel (``sandbox.kernel``) while it stays warm. A
kernel is retired, and the workspace's next block starts a new one (``"restarted"``), when
it was lost (killed at the wall limit, out of memory, crashed, left something running),
when a block needs another shape of jail (other limits, mounts or tools), after
``idle_seconds`` without a block, after ``max_age_seconds``, and, least recently used
first, when more than ``max_kernels`` are warm. Whether a workspace had a kernel before is
the workspaces' own record, so a restart of this process is a restart for the model too.

The pool: ``prestarted`` jails whose kernel is up and waiting, each with a uid no workspace
holds. The first block of a *new* workspace takes one: the workspace is created with that
uid and attached to the jail (``sandbox.attach``), so it does not wait for nsjail and Python
to start. A workspace that exists already has its uid: its kernel starts cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandbox import spares
from sandbox.errors import SandboxError
from sandbox.kernel import Kernel
from sandbox.workspace import Workspace, Workspaces

log = logging.getLogger(__name__)
KernelKind = Literal["new", "warm", "restarted"]
REFILL_PAUSE_SECONDS = 30.0  # after a prestart failed


@dataclass(frozen=True)
class KernelOptions:
    """``[sandbox]`` ``kernel_idle_seconds``, ``max_kernels``, ``prestarted`` and
    ``kernel_max_age_seconds``."""

    idle_seconds: float = 600.0
    max_kernels: int = 32
    prestarted: int = 2
    max_age_seconds: float = 3600.0


@dataclass(frozen=True)
class KernelShape:
    """What a kernel's jail was started with; a block that needs another shape gets another."""

    memory_mb: int
    tasks: int
    file_size_mb: int
    open_files: int
    tmpfs_mb: int
    mounts: tuple[str, ...]
    tools: bool


Start = Callable[[KernelShape, Workspace | None, tuple[int, int] | None], Awaitable[Kernel]]
Attach = Callable[[Workspace, Kernel], Awaitable[None]]
Prepare = Callable[[int | None, Path | None], Awaitable[Workspace]]


class Kernels:
    """Warm kernels by workspace, least recently used first, and the prestarted pool."""

    def __init__(
        self,
        *,
        options: KernelOptions,
        workspaces: Workspaces,
        start: Start,
        attach: Attach | None,
    ) -> None:
        self.options = options
        self.workspaces = workspaces
        self._start = start
        self._attach = attach  # None: no pool (attaching needs root)
        self.warm: dict[str, Kernel] = {}  # in order of last use, oldest first
        self.pool: list[Kernel] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self._pool_shape: KernelShape | None = None
        self._refill: asyncio.Task[None] | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self._paused_until = 0.0
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()  # evicted kernels being closed

    @contextlib.asynccontextmanager
    async def kernel_for(
        self, name: str, shape: KernelShape, prepare: Prepare
    ) -> AsyncIterator[tuple[Kernel, KernelKind, Workspace]]:
        """The workspace's kernel, held for one block (blocks of a workspace run in turn)."""
        self._users[name] = self._users.get(name, 0) + 1
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                kernel, kind, workspace = await self._acquire(name, shape, prepare)
                try:
                    yield kernel, kind, workspace
                finally:
                    kernel.last_used = time.monotonic()
                    if not kernel.alive():
                        await self._retire(name)
            self._trim()
            self._background()
        finally:
            self._users[name] -= 1
            if not self._users[name]:
                del self._users[name], self._locks[name]

    async def _acquire(
        self, name: str, shape: KernelShape, prepare: Prepare
    ) -> tuple[Kernel, KernelKind, Workspace]:
        kernel = self.warm.get(name)
        restarted = False
        if kernel is not None and (
            not kernel.alive() or kernel.shape != shape or self._old(kernel) or self._moved(kernel)
        ):
            await self._retire(name)
            kernel, restarted = None, True
        if kernel is not None and kernel.attached is not None:  # (not _moved: it is)
            self.warm[name] = self.warm.pop(name)  # most recently used now
            return kernel, "warm", kernel.attached
        restarted = restarted or await asyncio.to_thread(self.workspaces.had_kernel, name)
        self._pool_shape = shape
        taken = await self._from_pool(name, shape, prepare)
        if taken is None:
            workspace = await prepare(None, None)
            kernel = await self._start(shape, workspace, None)
        else:
            kernel, workspace = taken
        kernel.workspace = name
        kernel.attached, kernel.identity = workspace, self.workspaces.identity(workspace)
        self.warm[name] = kernel
        await asyncio.to_thread(self.workspaces.note_kernel, name)
        return kernel, "restarted" if restarted else "new", workspace

    async def _from_pool(
        self, name: str, shape: KernelShape, prepare: Prepare
    ) -> tuple[Kernel, Workspace] | None:
        """A prestarted kernel for a new workspace, created with the kernel's uid."""
        if self._attach is None or await asyncio.to_thread(self.workspaces.exists, name):
            return None
        for kernel in list(self.pool):
            if kernel.shape != shape or not kernel.alive():
                continue
            self.pool.remove(kernel)
            workspace = await prepare(kernel.owner[0], kernel.spare)
            kernel.spare = None if workspace.owner == kernel.owner else kernel.spare
            if workspace.owner != kernel.owner:  # the uid was taken meanwhile
                await kernel.close()
                return None
            try:
                await self._attach(workspace, kernel)
            except SandboxError as exc:
                log.warning("%s; starting this kernel cold", exc)
                await kernel.close()
                return None
            return kernel, workspace
        return None

    async def retire(self, name: str) -> None:
        """End workspace ``name``'s kernel now (its next block starts a new one)."""
        self._users[name] = self._users.get(name, 0) + 1
        lock = self._locks.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                await self._retire(name)
        finally:
            self._users[name] -= 1
            if not self._users[name]:
                del self._users[name], self._locks[name]

    def _moved(self, kernel: Kernel) -> bool:
        """Is the kernel's workspace not the one it was given (removed, remounted, made
        again)? A warm block skips ``prepare``: its workspace is mounted in the kernel's
        jail already, and the last block's ``finish`` closed it to others again."""
        attached = kernel.attached
        return attached is None or self.workspaces.identity(attached) != kernel.identity

    def _old(self, kernel: Kernel) -> bool:
        return time.monotonic() - kernel.created > self.options.max_age_seconds

    async def _retire(self, name: str) -> None:
        kernel = self.warm.pop(name, None)
        if kernel is not None:
            await kernel.close()

    def _trim(self) -> None:
        """Least recently used first, while more than ``max_kernels`` are warm: out of
        ``warm`` now, closed in the background (not on the path of the block that ended)."""
        for name in list(self.warm):
            if len(self.warm) <= self.options.max_kernels:
                return
            if name not in self._locks:  # not in use, nor waited for
                closing = asyncio.get_running_loop().create_task(self.warm.pop(name).close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    # -- in the background: the pool, idle and old kernels -------------------------------

    def _background(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._reaper is None:
            every = min(30.0, max(0.5, self.options.idle_seconds / 4))
            self._reaper = loop.call_later(every, self._reap)
        wanted = self.options.prestarted > 0 and self._attach is not None
        if wanted and (self._refill is None or self._refill.done()):
            self._refill = loop.create_task(self._fill())

    def _reap(self) -> None:
        self._reaper = None
        if not self._closed:
            asyncio.get_running_loop().create_task(self._reap_now())

    async def _reap_now(self) -> None:
        now = time.monotonic()
        for name, kernel in list(self.warm.items()):
            idle = now - kernel.last_used > self.options.idle_seconds
            if name not in self._locks and (idle or self._old(kernel) or not kernel.alive()):
                await self._retire(name)
        for kernel in list(self.pool):
            if self._old(kernel) or not kernel.alive():
                self.pool.remove(kernel)
                await kernel.close()
        if self.warm or self.pool:
            self._background()

    async def _fill(self) -> None:
        while (
            not self._closed
            and self._pool_shape is not None
            and len(self.pool) < self.options.prestarted
            and time.monotonic() >= self._paused_until
        ):
            shape = self._pool_shape
            uids = {kernel.owner[0] for kernel in self.pool}
            uid = await asyncio.to_thread(self.workspaces.spare_uid, besides=uids)
            if uid is None:
                return
            spare = None
            try:
                spare = await asyncio.to_thread(self.workspaces.make_spare, uid)
                kernel = await self._start(shape, None, (uid, uid))
                kernel.spare = spare
            except (SandboxError, OSError) as exc:
                log.warning("could not prestart a kernel: %s", exc)
                if spare is not None:
                    await asyncio.to_thread(spares.drop, spare)
                self._paused_until = time.monotonic() + REFILL_PAUSE_SECONDS
                return
            if self._closed:
                await kernel.close()
                return
            self.pool.append(kernel)

    async def aclose(self) -> None:
        """Stop every kernel, warm or prestarted."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(BaseException):
                await self._refill
        kernels = [*self.warm.values(), *self.pool]
        self.warm.clear()
        self.pool.clear()
        await asyncio.gather(*(kernel.close() for kernel in kernels), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
