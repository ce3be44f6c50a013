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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import attach
from sandbox.argv import KernelJail, ScratchSpace, ToolChannel, build_argv
from sandbox.cgroups import CgroupSetup, RunCgroup, RunCgroupPool
from sandbox.errors import SandboxUnavailable
from sandbox.jail_log import (
    NOT_LAUNCHED,
    channel_files,
    launch_failure,
    parse_log,
    status_of_log,
)
from sandbox.kernel import Kernel, KernelLost
from sandbox.kernel_io import control_pipes, new_nonce
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


@dataclass
class _Parts:
    """What a kernel being started holds, to give back if it never starts."""

    owner: tuple[int, int]
    run_dir: RunDir | None = None
    cgroup: RunCgroup | None = None
    release: Callable[[], None] | None = None
    relay: RelayServer | None = None
    channel: ToolChannel | None = None
    fds: list[int] = field(default_factory=list)
    kernel: Kernel | None = None

    async def undo(self) -> None:
        if self.kernel is not None:  # it owns everything
            await self.kernel.close()
            return
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.relay is not None:
            await self.relay.close()
        if self.release is not None:
            with contextlib.suppress(OSError):
                self.release()
        if self.run_dir is not None:
            self.run_dir.remove()


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
        parts = _Parts(owner=owner or self.workspaces.scratch_owner())
        try:
            await self._prepare(parts, shape)
            kernel = self._spawn(parts, shape, workspace)
        except BaseException:
            await parts.undo()
            raise
        try:
            await kernel.handshake(kernel_source())
        except KernelLost as exc:
            await kernel.gone()
            why = _start_failure(kernel, exc)
            await kernel.close()
            raise SandboxUnavailable(why) from None
        return kernel

    async def _prepare(self, parts: _Parts, shape: KernelShape) -> None:
        """The scratch directory, the memory cgroup and the tool channel of a new kernel."""
        try:
            parts.run_dir = RunDir(code=b"", suffix=".py", owner=parts.owner)
            os.chmod(parts.run_dir.code_file, 0o600)  # rewritten by us before each block
        except OSError as exc:
            raise SandboxUnavailable(f"cannot prepare a kernel: {exc}") from None
        if self.pool is not None:
            try:
                parts.cgroup = self.pool.acquire(shape.memory_mb * MIB)
            except OSError as exc:
                raise SandboxUnavailable(f"cannot set up a kernel's memory cgroup: {exc}") from None
            parts.release = functools.partial(self.pool.release, parts.cgroup)
        if shape.tools:

            async def dispatch(frame: dict[str, Any]) -> dict[str, Any]:
                current = parts.kernel.block_relay if parts.kernel is not None else None
                return NO_TOOLS if current is None else await current(frame)

            path = parts.run_dir.path / SOCKET_NAME
            parts.relay = RelayServer(path=path, relay=dispatch, owner=parts.owner)
            await parts.relay.start()
            parts.channel = channel_files(parts.run_dir)

    def _spawn(self, parts: _Parts, shape: KernelShape, workspace: Workspace | None) -> Kernel:
        """Start the jail with the kernel's bootstrap; the kernel owns every part after."""
        assert parts.run_dir is not None
        (down_read, down_write), (up_read, up_write) = control_pipes()
        parts.fds = [down_write, up_read]
        try:
            argv = self._argv(
                parts,
                shape,
                workspace,
                KernelJail(
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
        log_file = parts.run_dir.log_file
        parts.kernel = Kernel(
            started=started,
            to_kernel=down_write,
            from_kernel=up_read,
            nonce=new_nonce(),
            run_dir=parts.run_dir,
            cgroup=parts.cgroup,
            pids_parent=self.pids_parent,
            relay=parts.relay,
            owner=parts.owner,
            shape=shape,
            status_of=lambda _exit: status_of_log(log_file),
            release=parts.release,
        )
        return parts.kernel

    def _argv(
        self, parts: _Parts, shape: KernelShape, workspace: Workspace | None, kernel: KernelJail
    ) -> list[str]:
        assert parts.run_dir is not None
        limits = Limits(
            memory_mb=shape.memory_mb,
            tasks=shape.tasks,
            file_size_mb=shape.file_size_mb,
            open_files=shape.open_files,
            tmpfs_mb=shape.tmpfs_mb,
        )
        mounts = requested(dict(self.layout.mounts), names=shape.mounts)
        refuse_mounts_below(mounts)
        link = parts.run_dir.link_workspace(workspace.path) if workspace else None
        return build_argv(
            nsjail=str(self.nsjail),
            limits=limits,
            layout=self.layout,
            language="python",
            code_file=str(parts.run_dir.code_file),
            workspace_dir=str(link) if link else None,
            log_file=str(parts.run_dir.log_file),
            cgroups=self.cgroups,
            owner=parts.owner,
            memory_parent=parts.cgroup.name if parts.cgroup else None,
            scratch=ScratchSpace(
                bytes=self.workspaces.quota_bytes, files=self.workspaces.max_files
            ),
            tools=parts.channel,
            ro_submounts=submounts(self.layout.ro_binds, mountinfo=read_mountinfo()),
            mounts=mounts,
            kernel=kernel,
        )

    async def attach(self, workspace: Workspace, kernel: Kernel) -> None:
        """Mount ``workspace`` into the prestarted ``kernel``'s jail."""
        if kernel.kernel_pid is None:
            raise SandboxUnavailable("the prestarted kernel's pid is unknown")
        await attach.attach(workspace.path, kernel_pid=kernel.kernel_pid)


def attach_possible() -> bool:
    """Workspaces can be attached to prestarted jails only by root."""
    return os.geteuid() == 0


def _start_failure(kernel: Kernel, lost: KernelLost) -> str:
    """Why a kernel never said READY: nsjail's reason when its log has one."""
    try:
        log = kernel.run_dir.log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        log = ""
    status = parse_log(log)
    if kernel.started.exited.done() and (NOT_LAUNCHED in log or status.problems):
        return launch_failure(status, "")
    return f"{lost}; `opsloop sandbox check` tells more"
