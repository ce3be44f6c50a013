"""What every run does, whatever isolates the block: prepare the workspace and the scratch
directory beforehand, settle the workspace afterwards (even when the run failed), and turn
what the process did into a ``RunResult``. The nsjail sandbox and unsafe-local share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import tree
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.process import ProcessOutcome
from sandbox.result import RunResult
from sandbox.rundir import RunDir
from sandbox.workspace import Workspace, Workspaces

log = logging.getLogger(__name__)
SUFFIXES = {"python": ".py", "bash": ".sh"}
QUICK_ENTRIES = 64  # a workspace's entries walked on the event loop after a block, at most
STOPPED = "\nopsloop: the block was stopped: its workspace went over its cap\n"


def decode(data: bytes) -> str:
    """Bytes of a block's output as text; invalid UTF-8 (and encoded surrogates) become U+FFFD."""
    return data.decode("utf-8", errors="replace")


@dataclass
class Run:
    """One run being prepared or under way: its scratch directory and workspace."""

    workspaces: Workspaces
    run_dir: RunDir
    workspace: Workspace | None
    owner: tuple[int, int]  # the host uid and gid the block runs as
    _notice: str | None = field(default=None, init=False)
    _settled: bool = field(default=False, init=False)

    def workspace_source(self) -> Path | None:
        """What to mount at /workspace: a link in the run directory that names nothing."""
        if self.workspace is None:
            return None
        return self.run_dir.link_workspace(self.workspace.path)

    async def settle(self) -> str | None:
        """Close the workspace to others and check its caps, once; a notice for stderr."""
        if not self._settled and self.workspace is not None:
            self._settled = True
            try:  # a small image workspace on the event loop: cheaper than a thread's handoff
                self._notice = self.workspaces.finish(self.workspace, quick=QUICK_ENTRIES)
            except tree.TooLong:
                self._notice = await asyncio.to_thread(self.workspaces.finish, self.workspace)
        self._settled = True
        return self._notice

    async def result(
        self,
        outcome: ProcessOutcome,
        *,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        memory_exceeded: bool,
        cpu_ms: int | None,
        unsafe_local: bool = False,
    ) -> RunResult:
        """The result of the finished process, with the workspace's notices on stderr."""
        stderr = decode(outcome.stderr) + (STOPPED if outcome.stopped else "")
        stderr += await self.settle() or ""
        return RunResult(
            exit_code=exit_code,
            signal=signal if exit_code is None else None,
            stdout=decode(outcome.stdout),
            stderr=stderr,
            duration_ms=outcome.duration_ms,
            timed_out=timed_out,
            memory_exceeded=memory_exceeded,
            output_truncated=outcome.truncated,
            cpu_ms=cpu_ms,
            unsafe_local=unsafe_local,
        )


def prune(workspaces: Workspaces) -> None:
    """Expire idle workspaces; a failure is logged, never raised (housekeeping)."""
    try:
        workspaces.prune()
    except (OSError, SandboxError) as exc:  # expiry is housekeeping: it never fails a run
        log.warning("pruning workspaces failed: %s", exc)


@contextlib.asynccontextmanager
async def opened(
    workspaces: Workspaces, *, name: str | None, code: bytes, language: str
) -> AsyncIterator[Run]:
    """A prepared run; afterwards its workspace is settled and its scratch dir removed."""
    if workspaces.prune_due():
        await asyncio.to_thread(prune, workspaces)
    try:
        workspace = await asyncio.to_thread(workspaces.prepare, name) if name else None
        owner = workspace.owner if workspace else workspaces.scratch_owner()
        run_dir = RunDir(code=code, suffix=SUFFIXES[language], owner=owner)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot prepare the run: {exc}") from None
    run = Run(workspaces=workspaces, run_dir=run_dir, workspace=workspace, owner=owner)
    try:
        yield run
    finally:
        with contextlib.suppress(Exception):
            await run.settle()
        await asyncio.to_thread(run_dir.remove)
