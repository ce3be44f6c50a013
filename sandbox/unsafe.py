"""``OPSLOOP_SANDBOX=unsafe-local``: blocks run as plain processes with rlimits only.

There are no namespaces: a block sees the host's files, network and processes. This exists
for machines that cannot create namespaces at all, and it says so on every run (a warning in
the log) and on every result (``unsafe_local=True``, which the event log keeps).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import resource
import signal
from collections.abc import Callable

from sandbox.errors import SandboxUnavailable
from sandbox.jail import SUFFIXES, decode
from sandbox.layout import SAFE_PATH, LayoutOptions, jail_owner, resolve_executable
from sandbox.limits import MIB, Limits
from sandbox.process import run_process
from sandbox.request import MAX_CODE_BYTES, check_request
from sandbox.result import RunResult
from sandbox.workspace import RunDir, Workspaces

log = logging.getLogger(__name__)
WARNING = (
    "OPSLOOP_SANDBOX=unsafe-local: helper blocks run WITHOUT isolation (no namespaces, "
    "no seccomp, rlimits only); a hostile block can read this host's files and network"
)


def _rlimits(limits: Limits) -> Callable[[], None]:
    """A pre-exec hook setting the block's rlimits (runs in the child, before exec)."""
    values = [
        (resource.RLIMIT_CPU, math.ceil(limits.cpu_limit)),
        (resource.RLIMIT_AS, limits.memory_mb * MIB),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * MIB),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, limits.tasks),
        (resource.RLIMIT_CORE, 0),
    ]

    def apply() -> None:
        for which, value in values:
            resource.setrlimit(which, (value, value))

    return apply


class UnsafeLocalSandbox:
    """Runs blocks directly on the host with rlimits only; every result is flagged."""

    def __init__(
        self,
        *,
        workspaces: Workspaces,
        options: LayoutOptions | None = None,
        default_limits: Limits | None = None,
        max_code_bytes: int = MAX_CODE_BYTES,
    ) -> None:
        options = options or LayoutOptions()
        self.interpreters = {
            "python": [resolve_executable(options.python), *options.python_args],
            "bash": [resolve_executable(options.bash)],
        }
        self.env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", **options.env}
        self.workspaces = workspaces
        self.default_limits = default_limits or Limits()
        self.max_code_bytes = max_code_bytes
        log.warning(WARNING)

    async def run(
        self,
        *,
        language: str,
        code: str,
        limits: Limits | None = None,
        workspace: str | None = None,
    ) -> RunResult:
        """Run one block as a plain process (dropped to nobody when we are root)."""
        data = check_request(language=language, code=code, max_code_bytes=self.max_code_bytes)
        limits = limits or self.default_limits
        log.warning(WARNING)
        if self.workspaces.prune_due():
            await asyncio.to_thread(self.workspaces.prune)
        try:
            run_dir = RunDir(code=data, suffix=SUFFIXES[language])
        except OSError as exc:
            raise SandboxUnavailable(f"cannot prepare the run: {exc}") from None
        try:
            workspace_dir = (
                self.workspaces.prepare(workspace) if workspace else run_dir.scratch_workspace()
            )
            uid, gid = jail_owner()
            dropping = os.geteuid() == 0
            argv = [*self.interpreters[language], str(run_dir.code_file)]
            # cd into the workspace from inside the child: run_process has no cwd on purpose
            # (the jail sets its own), and the interpreter gets the path as its only argument.
            argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(workspace_dir), *argv]
            outcome = await run_process(
                argv,
                env={**self.env, "HOME": str(workspace_dir)},
                timeout=limits.wall_seconds,
                output_bytes=limits.output_bytes,
                stop_signal=signal.SIGKILL,
                preexec_fn=_rlimits(limits),
                user=uid if dropping else None,
                group=gid if dropping else None,
                watch=self.workspaces.watcher(workspace_dir) if workspace else None,
            )
            stderr = decode(outcome.stderr)
            if outcome.stopped:
                stderr += "\nopsloop: the block was stopped: its workspace went over its cap\n"
            if workspace:
                notice = await asyncio.to_thread(self.workspaces.enforce_quota, workspace_dir)
                stderr += notice or ""
            code_ = outcome.returncode
            return RunResult(
                exit_code=code_ if code_ >= 0 else None,
                signal=-code_ if code_ < 0 else None,
                stdout=decode(outcome.stdout),
                stderr=stderr,
                duration_ms=outcome.duration_ms,
                timed_out=outcome.timed_out,
                memory_exceeded=False,  # RLIMIT_AS fails allocations; it cannot be told apart
                output_truncated=outcome.truncated,
                cpu_ms=None,
                unsafe_local=True,
            )
        finally:
            run_dir.remove()
