"""What nsjail's log says of a jail: how its process ended, and nsjail's own errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sandbox.argv import ToolChannel
from sandbox.errors import SandboxUnavailable
from sandbox.relay import SOCKET_NAME
from sandbox.rundir import RunDir

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


def status_of_log(log_file: Path) -> tuple[int | None, int | None]:
    """(exit code, signal) of a jail from its log; (None, SIGKILL) when it says neither."""
    try:
        status = parse_log(log_file.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None, 9
    if status.exit_code is None and status.signal is None:
        return None, 9
    return status.exit_code, status.signal if status.exit_code is None else None


def channel_files(run_dir: RunDir) -> ToolChannel:
    """The tool channel's socket and client in a run's scratch dir, to mount under /opsloop."""
    try:
        client = run_dir.add_tools_client()
    except OSError as exc:
        raise SandboxUnavailable(f"cannot prepare the tool client: {exc}") from None
    return ToolChannel(
        socket=str(run_dir.path / SOCKET_NAME),
        module=str(client.module),
        bin_dir=str(client.bin_dir),
        pycache=str(client.pycache),
    )


def launch_failure(status: JailStatus, stderr: str) -> str:
    """One sentence on why nsjail could not start the jail, with the fix."""
    detail = "; ".join(status.problems[:3]) or stderr.strip()[:300] or "no log"
    if any(word in detail for word in ("clone", "unshare", "namespace", "uid_map", "setgroups")):
        return (
            f"cannot create namespaces for the jail here ({detail}); run opsloop where user "
            "namespaces are allowed (e.g. a privileged container or a VM), or set "
            "OPSLOOP_SANDBOX=unsafe-local to run blocks WITHOUT isolation"
        )
    return f"nsjail could not start the jail ({detail}); `opsloop sandbox check` tells more"
