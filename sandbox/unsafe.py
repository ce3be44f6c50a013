"""``OPSLOOP_SANDBOX=unsafe-local``: blocks run as plain processes with rlimits only.

There are no namespaces: a block sees the host's files, network and processes. This exists
for machines that cannot create namespaces at all, and it says so on every run (a warning in
the log) and on every result (``unsafe_local=True``, which the event log keeps).
"""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from sandbox.argv import python_args_with_tools
from sandbox.layout import SAFE_PATH, LayoutOptions, resolve_executable
from sandbox.limits import MIB, Limits
from sandbox.mounts import requested
from sandbox.process import run_process
from sandbox.relay import RelayServer, ToolRelay, serving
from sandbox.request import MAX_CODE_BYTES, check_request
from sandbox.result import RunResult
from sandbox.runs import Run, opened
from sandbox.workspace import Workspaces
from sandbox.workspace_files import WorkspaceFiles

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


class UnsafeLocalSandbox(WorkspaceFiles):
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
        self.mounts = dict(options.mounts)  # names are checked; nothing can be mounted here
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
        tools: ToolRelay | None = None,
        mounts: Sequence[str] = (),
    ) -> RunResult:
        """Run one block as a plain process (dropped to the run's uid when we are root).

        ``tools`` works as in a jail, through a socket in the run's scratch directory
        (``OPSLOOP_TOOLS_SOCKET``). ``mounts`` are checked but not provided: without a mount
        namespace there is no private /mnt, and the block reads the host's files anyway.
        """
        data = check_request(language=language, code=code, max_code_bytes=self.max_code_bytes)
        chosen = requested(self.mounts, names=mounts)
        limits = limits or self.default_limits
        log.warning(WARNING)
        if chosen:
            log.warning("unsafe-local: mounts %s are not provided", ", ".join(n for n, _ in chosen))
        async with (
            opened(self.workspaces, name=workspace, code=data, language=language) as run,
            serving(directory=run.run_dir.path, relay=tools, owner=run.owner) as channel,
        ):
            home = run.workspace.path if run.workspace else run.run_dir.scratch_workspace()
            outcome = await run_process(
                self._argv(run, home=home, language=language, channel=channel),
                env=self._env(run, home=home, channel=channel),
                timeout=limits.wall_seconds,
                output_bytes=limits.output_bytes,
                stop_signal=signal.SIGKILL,
                preexec_fn=_rlimits(limits),
                user=run.owner[0] if os.geteuid() == 0 else None,
                group=run.owner[1] if os.geteuid() == 0 else None,
                watch=self.workspaces.watcher(run.workspace) if run.workspace else None,
            )
            code_ = outcome.returncode
            return await run.result(
                outcome,
                exit_code=code_ if code_ >= 0 else None,
                signal=-code_ if code_ < 0 else None,
                timed_out=outcome.timed_out,
                memory_exceeded=False,  # RLIMIT_AS fails allocations; it cannot be told apart
                cpu_ms=outcome.cpu_ms,  # the block is the process itself (sh execs it)
                unsafe_local=True,
            )

    def _argv(
        self, run: Run, *, home: Path, language: str, channel: RelayServer | None
    ) -> list[str]:
        """``sh`` entering the workspace, then the interpreter on the code file."""
        interpreter = self.interpreters[language]
        if channel is not None and language == "python":
            interpreter = [interpreter[0], *python_args_with_tools(interpreter[1:])]
        # cd into the workspace from inside the child: run_process has no cwd on purpose
        # (the jail sets its own), and the interpreter gets the path as its only argument.
        argv = [*interpreter, str(run.run_dir.code_file)]
        return ["/bin/sh", "-c", 'cd "$0" && exec "$@"', str(home), *argv]

    def _env(self, run: Run, *, home: Path, channel: RelayServer | None) -> dict[str, str]:
        """The block's environment; with tools, the socket's path and ``tool`` on PATH."""
        env = {**self.env, "HOME": str(home)}
        if channel is not None:
            bin_dir = run.run_dir.add_tools_client().bin_dir
            env["PATH"] = f"{bin_dir}:{env['PATH']}"
            env["OPSLOOP_TOOLS_SOCKET"] = str(channel.path)
        return env
