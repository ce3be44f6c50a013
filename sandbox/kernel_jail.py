"""Starting a kernel's jail: a one-shot block's jail (``sandbox.argv``) running the kernel.

Everything a one-shot run gets, it gets: a scratch directory owned by its uid (its code file
is rewritten by the host before each block), a pooled memory cgroup of ours carrying the
memory cap and the OOM eventfd (held for the kernel's life), the tool channel when the
blocks have tools (one socket for the kernel's life, answered by each block's own relay),
the named read-only mounts, and the workspace bound at ``/workspace``, or an empty
placeholder there for a prestarted jail (``sandbox.attach`` mounts it later).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import os
from pathlib import Path
from typing import Any

from sandbox import attach
from sandbox.argv import KernelJail, ScratchSpace, build_argv
from sandbox.cgroups import CgroupSetup, RunCgroupPool
from sandbox.errors import SandboxError, SandboxUnavailable
from sandbox.jail_log import channel_files, status_of_log
from sandbox.kernel import Kernel, KernelLost, control_pipes, new_nonce
from sandbox.kernels import KernelOptions, KernelShape
from sandbox.layout import JailLayout
from sandbox.limits import MIB, Limits
from sandbox.mounts import read_mountinfo, refuse_mounts_below, requested, submounts
from sandbox.process import start_process
from sandbox.relay import SOCKET_NAME, RelayServer
from sandbox.rundir import RunDir
from sandbox.workspace import Workspace, Workspaces

NO_TOOLS = {"ok": False, "error": "this block was offered no tools"}


@functools.cache
def kernel_source() -> bytes:
    """The jail's side of the kernel (``sandbox/jailside/kernel.py``)."""
    return importlib.resources.files("sandbox.jailside").joinpath("kernel.py").read_bytes()


class KernelJails:
    """Starts kernels' jails for one sandbox, and attaches workspaces to prestarted ones."""

    def __init__(
        self,
        *,
        nsjail: Path,
        layout: JailLayout,
        cgroups: CgroupSetup,
        workspaces: Workspaces,
        pool: RunCgroupPool | None,
        options: KernelOptions,
        wall_seconds: float,
    ) -> None:
        self.nsjail = nsjail
        self.layout = layout
        self.cgroups = cgroups
        self.workspaces = workspaces
        self.pool = pool
        self.options = options
        self.wall_seconds = wall_seconds

    @property
    def pids_parent(self) -> Path | None:
        """Where nsjail puts a jail's pids cgroup (v1 or v2); None without cgroups."""
        if self.cgroups.kind == "v1" and self.cgroups.pids_mount:
            return Path(self.cgroups.pids_mount) / self.cgroups.parent
        if self.cgroups.kind == "v2" and self.cgroups.pids_mount:
            return Path(self.cgroups.pids_mount)
        return None

    async def start(
        self, shape: KernelShape, workspace: Workspace | None, owner: tuple[int, int] | None
    ) -> Kernel:
        """A kernel that said READY (``SandboxUnavailable`` when it could not start)."""
        owner = workspace.owner if workspace is not None else owner
        if owner is None:
            owner = self.workspaces.scratch_owner()
        limits = Limits(
            memory_mb=shape.memory_mb,
            tasks=shape.tasks,
            file_size_mb=shape.file_size_mb,
            open_files=shape.open_files,
            tmpfs_mb=shape.tmpfs_mb,
        )
        chosen = requested(dict(self.layout.mounts), names=shape.mounts)
        refuse_mounts_below(chosen)
        try:
            run_dir = RunDir(code=b"", suffix=".py", owner=owner)
            os.chmod(run_dir.code_file, 0o600)  # rewritten by us before each block
        except OSError as exc:
            raise SandboxUnavailable(f"cannot prepare a kernel: {exc}") from None
        cleanup: list[Any] = [run_dir.remove]
        try:
            return await self._start(shape, workspace, owner, limits, chosen, run_dir, cleanup)
        except BaseException:
            for undo in reversed(cleanup):
                with contextlib.suppress(Exception):
                    result = undo()
                    if hasattr(result, "__await__"):
                        await result
            raise

    async def _start(
        self,
        shape: KernelShape,
        workspace: Workspace | None,
        owner: tuple[int, int],
        limits: Limits,
        mounts: list[tuple[str, str]] | tuple[tuple[str, str], ...],
        run_dir: RunDir,
        cleanup: list[Any],
    ) -> Kernel:
        cgroup = None
        release = None
        if self.pool is not None:
            try:
                cgroup = self.pool.acquire(limits.memory_mb * MIB)
            except OSError as exc:
                raise SandboxUnavailable(f"cannot set up a kernel's memory cgroup: {exc}") from None
            pool, held = self.pool, cgroup
            release = functools.partial(pool.release, held)
            cleanup.append(release)
        holder: dict[str, Any] = {}
        relay = None
        channel = None
        if shape.tools:

            async def dispatch(frame: dict[str, Any]) -> dict[str, Any]:
                current = holder["kernel"].block_relay
                return NO_TOOLS if current is None else await current(frame)

            relay = RelayServer(path=run_dir.path / SOCKET_NAME, relay=dispatch, owner=owner)
            await relay.start()
            cleanup.append(relay.close)
            channel = channel_files(run_dir)
        (down_read, down_write), (up_read, up_write) = control_pipes()
        cleanup += [lambda: os.close(down_write), lambda: os.close(up_read)]
        try:
            argv = build_argv(
                nsjail=str(self.nsjail),
                limits=limits,
                layout=self.layout,
                language="python",
                code_file=str(run_dir.code_file),
                workspace_dir=str(run_dir.link_workspace(workspace.path)) if workspace else None,
                log_file=str(run_dir.log_file),
                cgroups=self.cgroups,
                owner=owner,
                memory_parent=cgroup.name if cgroup else None,
                scratch=ScratchSpace(
                    bytes=self.workspaces.quota_bytes, files=self.workspaces.max_files
                ),
                tools=channel,
                ro_submounts=submounts(self.layout.ro_binds, mountinfo=read_mountinfo()),
                mounts=mounts,
                kernel=KernelJail(
                    read_fd=down_read,
                    write_fd=up_write,
                    max_seconds=self.options.max_age_seconds + self.wall_seconds + 60,
                    attach_later=workspace is None,
                ),
            )
            try:
                started = start_process(argv, pass_fds=(down_read, up_write))
            except OSError as exc:
                raise SandboxUnavailable(f"cannot execute {self.nsjail}: {exc}") from None
        finally:
            os.close(down_read)
            os.close(up_write)
        log_file = run_dir.log_file
        kernel = Kernel(
            started=started,
            to_kernel=down_write,
            from_kernel=up_read,
            nonce=new_nonce(),
            run_dir=run_dir,
            cgroup=cgroup,
            pids_parent=self.pids_parent,
            relay=relay,
            owner=owner,
            shape=shape,
            status_of=lambda _exit: status_of_log(log_file),
        )
        holder["kernel"] = kernel
        kernel.release = release
        cleanup.clear()  # the kernel owns its pipes, relay, cgroup and directory now
        try:
            await kernel.handshake(kernel_source())
        except KernelLost as exc:
            await kernel.close()
            raise SandboxUnavailable(f"{exc}; `opsloop sandbox check` tells more") from None
        return kernel

    async def attach(self, workspace: Workspace, kernel: Kernel) -> None:
        """Mount ``workspace`` into the prestarted ``kernel``'s jail."""
        if kernel.kernel_pid is None:
            raise SandboxUnavailable("the prestarted kernel's pid is unknown")
        await attach.attach(workspace.path, kernel_pid=kernel.kernel_pid)


def attach_possible() -> bool:
    """Workspaces can be attached to prestarted jails only by root."""
    return os.geteuid() == 0


__all__ = ["KernelJails", "SandboxError", "attach_possible", "kernel_source"]
