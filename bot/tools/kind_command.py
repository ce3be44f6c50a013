"""``kind = "command"``: a host command from an argv template, never a shell.

Each ``{param}`` is one whole argv item. The process starts through ``sandbox.process``
(opsloop's single call site), as ``run_as`` (only root may switch users), in ``cwd``, with a
minimal environment plus the configured ``env``. At ``timeout_seconds`` its process group is
killed, and so is every descendant seen while it ran, even one that left the group.
"""

from __future__ import annotations

import functools
import os
import pwd
import signal
import subprocess
from collections.abc import Mapping

import psutil

from bot.tools import templates
from bot.tools.errors import ToolFailed, ToolTimedOut
from bot.tools.specs import CommandTool, Identity
from bot.tools.values import RawResult
from sandbox.process import run_process

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STDERR_CHARS = 600  # of stderr quoted in the error of a failed command
WATCH_SECONDS = 0.1  # how often the descendants of a running command are noted


def identity(run_as: str | int | None) -> Identity:
    """The user ``run_as`` names (default: ourselves); ``ValueError`` when we cannot be it."""
    me = os.geteuid()
    try:
        if run_as is None:
            entry = pwd.getpwuid(me)
        elif isinstance(run_as, int) or run_as.isdigit():
            entry = pwd.getpwuid(int(run_as))
        else:
            entry = pwd.getpwnam(run_as)
    except KeyError:
        if isinstance(run_as, int) or (isinstance(run_as, str) and run_as.isdigit()):
            uid = int(run_as)
            found = Identity(uid=uid, gid=uid, name=str(uid), home="/", switch=uid != me)
            return _allowed(found, me)
        raise ValueError(f"no host user {run_as!r}") from None
    found = Identity(
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        name=entry.pw_name,
        home=entry.pw_dir or "/",
        switch=entry.pw_uid != me,
    )
    return _allowed(found, me)


def _allowed(found: Identity, me: int) -> Identity:
    if found.switch and me != 0:
        raise ValueError(f"running as {found.name} needs root (opsloop runs as uid {me})")
    return found


def base_env(who: Identity) -> dict[str, str]:
    """The minimal environment every command gets before its configured ``env``."""
    return {
        "PATH": SAFE_PATH,
        "LANG": "C.UTF-8",
        "HOME": who.home,
        "USER": who.name,
        "LOGNAME": who.name,
    }


async def run_command(tool: CommandTool, arguments: Mapping[str, object]) -> RawResult:
    """Run the command with ``arguments`` as whole argv items; its stdout is the result."""
    argv = templates.fill_argv(tool.argv, arguments)
    seen = _Descendants()
    try:
        outcome = await run_process(
            argv,
            env=tool.env,
            timeout=tool.timeout,
            output_bytes=tool.max_bytes,
            stop_signal=signal.SIGKILL,  # no jail to clean up after: kill the group at once
            preexec_fn=functools.partial(os.chdir, tool.cwd) if tool.cwd else None,
            user=tool.identity.uid if tool.identity.switch else None,
            group=tool.identity.gid if tool.identity.switch else None,
            watch=seen.note,
            watch_every=WATCH_SECONDS,
        )
    except FileNotFoundError:
        raise ToolFailed(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise ToolFailed(f"command not executable: {argv[0]}") from None
    except OSError as exc:
        raise ToolFailed(f"could not start {argv[0]}: {exc.strerror or exc}") from None
    except subprocess.SubprocessError:  # how a failed preexec_fn (the chdir) is reported
        raise ToolFailed(f"could not enter cwd {tool.cwd} as {tool.identity.name}") from None
    finally:
        seen.kill_leftovers()
    if outcome.timed_out:
        raise ToolTimedOut(f"timed out after {tool.timeout:g} s")
    stdout = outcome.stdout.decode("utf-8", errors="replace")
    truncated = outcome.truncated and len(outcome.stdout) >= tool.max_bytes
    kept = len(outcome.stdout)
    if outcome.returncode == 0:
        return RawResult(ok=True, result=stdout, result_bytes=kept, truncated=truncated)
    return RawResult(
        ok=False,
        result=stdout,
        result_bytes=kept,
        truncated=truncated,
        error=_failure(outcome.returncode, outcome.stderr),
    )


def _failure(returncode: int, stderr: bytes) -> str:
    """One line: the exit status (or signal) and the end of stderr."""
    what = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    text = stderr.decode("utf-8", errors="replace").strip()
    if not text:
        return what
    lines = " / ".join(line.strip() for line in text.splitlines() if line.strip())
    if len(lines) > STDERR_CHARS:
        lines = "…" + lines[-STDERR_CHARS:]
    return f"{what}: {lines}"


class _Descendants:
    """Notes every descendant of a running command, to kill any it leaves behind."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}  # pid -> start time (so a reused pid is spared)

    async def note(self, pid: int) -> bool:
        """Note the running command's descendants (a ``run_process`` watch: never stops it)."""
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            return False
        for child in children:
            try:
                self.seen[child.pid] = child.create_time()
            except psutil.Error:
                continue
        return False  # never a reason to stop it

    def kill_leftovers(self) -> None:
        """Kill every noted descendant still alive (the same process, not a reused pid)."""
        for pid, started in self.seen.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() == started:
                    process.kill()
            except psutil.Error:
                continue
