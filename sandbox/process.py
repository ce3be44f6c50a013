"""The one place where opsloop starts a process: capped streaming output, and CPU time.

Both streams are read as they arrive; each keeps at most ``output_bytes`` of its head and
the rest is read and dropped, so a block printing gigabytes costs CPU but never host memory.
On the wall limit the process is asked to stop (nsjail then kills the whole jail) and, after
a short grace, its process group is killed.

The child is reaped with ``wait4`` (in a thread of its own, as asyncio's threaded child
watcher does) so its resource usage is known: ``cpu_ms`` is the CPU time of its descendants
(the jail), without the CPU the top process spent itself, which is read from its
``/proc/<pid>/schedstat`` while it is a zombie. For nsjail that removes its own start-up
(5 to 8 ms) from the block's figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK = 64 * 1024
GRACE_SECONDS = 0.5  # between the polite stop and SIGKILL of the process group
DRAIN_SECONDS = 1.0  # after exit, how long leftover writers may hold the pipes open

Watch = Callable[[int], Awaitable[bool]]  # (pid of the process) -> stop it now?


@dataclass(frozen=True)
class ProcessOutcome:
    """What happened to one process (raw bytes, before decoding)."""

    returncode: int  # negative: killed by that signal
    stdout: bytes
    stderr: bytes
    truncated: bool
    timed_out: bool
    duration_ms: int
    stopped: bool = False  # the watch asked for it to be stopped (e.g. workspace over its cap)
    cpu_ms: int | None = None  # CPU of the process and its reaped descendants
    children_cpu_ms: int | None = None  # the same without the process's own CPU


@dataclass(frozen=True)
class ExitStatus:
    returncode: int
    cpu_ms: int
    children_cpu_ms: int | None
    at: float  # time.monotonic() when it was reaped


class _Capped:
    """Reads a stream to EOF, keeping only its first ``limit`` bytes."""

    def __init__(self, stream: asyncio.StreamReader, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.kept = bytearray()
        self.truncated = False

    async def drain(self) -> None:
        while chunk := await self.stream.read(CHUNK):
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            if len(chunk) > room:
                self.truncated = True


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _own_cpu_ns(pid: int) -> int | None:
    """CPU the (zombie) process spent itself, not counting its children."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _reap(pid: int) -> ExitStatus:
    """Wait for ``pid`` to exit; its status and CPU time (blocking: run in a thread)."""
    own = None
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        own = _own_cpu_ns(pid)
    _, status, usage = os.wait4(pid, 0)
    total_ms = int((usage.ru_utime + usage.ru_stime) * 1000)
    children = None if own is None else max(0, total_ms - own // 1_000_000)
    return ExitStatus(os.waitstatus_to_exitcode(status), total_ms, children, time.monotonic())


def _spawn(argv: Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
    """The single call site that starts a process (its own session, no stdin)."""
    return subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True, **options
    )


def _watch_exit(process: subprocess.Popen[bytes]) -> asyncio.Future[ExitStatus]:
    """A future of the process's exit, reaped by a thread of its own."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[ExitStatus] = loop.create_future()

    def reap() -> None:
        try:
            outcome: ExitStatus | BaseException = _reap(process.pid)
        except BaseException as exc:  # noqa: BLE001  (handed to the awaiting task)
            outcome = exc
        if isinstance(outcome, ExitStatus):
            process.returncode = outcome.returncode  # Popen must not wait for it again
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(_settle, future, outcome)

    threading.Thread(target=reap, name=f"reap-{process.pid}", daemon=True).start()
    return future


def _settle(future: asyncio.Future[ExitStatus], outcome: ExitStatus | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def _reader(pipe: Any, limit: int) -> _Capped:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=CHUNK)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), pipe)
    return _Capped(stream, limit)


async def watch_until(
    exited: asyncio.Future[Any], *, deadline: float, watch: Watch | None, pid: int, every: float
) -> tuple[bool, bool]:
    """Wait for ``exited`` (the exit, or a kernel's answer), the deadline or the watch's
    verdict: (timed_out, stopped).

    The watch runs beside the clock, never in front of it: a slow check cannot make a
    block outlive its wall limit, and a finished check never delays noticing the exit.
    """
    check: asyncio.Future[bool] | None = None
    next_check = time.monotonic() + every
    try:
        while not exited.done():
            now = time.monotonic()
            if now >= deadline:
                return True, False
            if watch is not None and check is None and now >= next_check:
                check = asyncio.ensure_future(watch(pid))
            waiting: set[asyncio.Future[Any]] = {exited} if check is None else {exited, check}
            wake = deadline - now
            if watch is not None and check is None:
                wake = min(wake, next_check - now)
            await asyncio.wait(waiting, timeout=wake, return_when="FIRST_COMPLETED")
            if check is not None and check.done():
                over = not check.cancelled() and check.exception() is None and check.result()
                check, next_check = None, time.monotonic() + every
                if over and not exited.done():
                    return False, True
        return False, False
    finally:
        if check is not None:
            check.cancel()


async def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    output_bytes: int,
    stop_signal: int = signal.SIGTERM,
    preexec_fn: Callable[[], None] | None = None,
    user: int | None = None,
    group: int | None = None,
    watch: Watch | None = None,
    watch_every: float = 0.25,
    cwd: str | None = None,
) -> ProcessOutcome:
    """Run ``argv`` to completion or ``timeout`` seconds; capture capped stdout and stderr.

    ``watch`` is awaited about every ``watch_every`` seconds with the pid while it runs; when
    it answers True the process is stopped as on a timeout.
    """
    started = time.monotonic()
    process = _spawn(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        preexec_fn=preexec_fn,
        user=user,
        group=group,
        extra_groups=[] if group is not None else None,
        cwd=cwd,
    )
    exited = _watch_exit(process)
    out, err = await _capture(process, output_bytes)
    readers = asyncio.gather(out.drain(), err.drain())
    try:
        ended, timed_out, stopped = await _supervise(
            process.pid,
            exited,
            readers,
            deadline=started + timeout,
            watch=watch,
            every=watch_every,
            stop_signal=stop_signal,
        )
    finally:
        with contextlib.suppress(BaseException):
            await readers
    return ProcessOutcome(
        returncode=ended.returncode,
        stdout=bytes(out.kept),
        stderr=bytes(err.kept),
        truncated=out.truncated or err.truncated,
        timed_out=timed_out,
        duration_ms=int((ended.at - started) * 1000),
        stopped=stopped,
        cpu_ms=ended.cpu_ms,
        children_cpu_ms=ended.children_cpu_ms,
    )


async def _supervise(
    pid: int,
    exited: asyncio.Future[ExitStatus],
    readers: asyncio.Future[Any],
    *,
    deadline: float,
    watch: Watch | None,
    every: float,
    stop_signal: int,
) -> tuple[ExitStatus, bool, bool]:
    """Wait for the exit (stopping it at the deadline or on the watch's word), then for its
    output: (how it exited, timed out, stopped)."""
    try:
        timed_out, stopped = await watch_until(
            exited, deadline=deadline, watch=watch, pid=pid, every=every
        )
        if timed_out or stopped:
            await _stop(pid, exited, stop_signal)
        ended = await exited
        await _drain(readers, pid=pid)
        return ended, timed_out, stopped
    except BaseException:  # cancelled (or worse): never leave the process running
        _kill_group(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        readers.cancel()
        with contextlib.suppress(BaseException):  # reaped before the caller goes on
            await asyncio.wait_for(asyncio.shield(exited), GRACE_SECONDS)
        raise


async def _capture(process: subprocess.Popen[bytes], limit: int) -> tuple[_Capped, _Capped]:
    """Readers of the process's stdout and stderr, each keeping ``limit`` bytes."""
    try:
        return await _reader(process.stdout, limit), await _reader(process.stderr, limit)
    except BaseException:
        _kill_group(process.pid, signal.SIGKILL)
        raise


async def _drain(readers: asyncio.Future[Any], *, pid: int) -> None:
    """Let the readers reach end of output; a process outside the pid namespace still holding
    the pipes gets its group killed."""
    try:
        await asyncio.wait_for(asyncio.shield(readers), DRAIN_SECONDS)
    except TimeoutError:
        _kill_group(pid, signal.SIGKILL)
        readers.cancel()


async def _stop(pid: int, exited: asyncio.Future[ExitStatus], stop_signal: int) -> None:
    """Ask the process to stop; kill its whole group after the grace."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    if stop_signal == signal.SIGKILL:  # no jail to clean up after it: kill the group
        _kill_group(pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(asyncio.shield(exited), GRACE_SECONDS)
    except TimeoutError:
        _kill_group(pid, signal.SIGKILL)


@dataclass
class Started:
    """A long-lived process (a kernel's jail): its pipes are the caller's to read."""

    process: subprocess.Popen[bytes]
    exited: asyncio.Future[ExitStatus]

    @property
    def pid(self) -> int:
        """The process's pid."""
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL it and its process group (its jail dies with it)."""
        _kill_group(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)


def start_process(argv: Sequence[str], *, pass_fds: Sequence[int] = ()) -> Started:
    """Start ``argv`` with piped stdout and stderr, keeping ``pass_fds`` open in it; reaped by
    a thread of its own. The caller reads the pipes and awaits ``exited``."""
    process = _spawn(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={}, pass_fds=tuple(pass_fds)
    )
    return Started(process=process, exited=_watch_exit(process))


@dataclass(frozen=True)
class ToolResult:
    """How a host tool (mkfs, mount, umount) ended."""

    returncode: int
    output: str


def run_tool(argv: Sequence[str], *, timeout: float = 30.0) -> ToolResult:
    """Run a host tool to completion (blocking: call it off the event loop)."""
    process = _spawn(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return ToolResult(returncode=-signal.SIGKILL, output=f"timed out after {timeout:g} s")
    return ToolResult(returncode=process.returncode, output=output.decode(errors="replace"))
