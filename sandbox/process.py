"""The one place where opsloop starts a process: asyncio-based, with capped streaming output.

Both streams are read as they arrive; each keeps at most ``output_bytes`` of its head and
the rest is read and dropped, so a block printing gigabytes costs CPU but never host memory.
On the wall limit the process is asked to stop (nsjail then kills the whole jail) and, after
a short grace, its process group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

CHUNK = 64 * 1024
GRACE_SECONDS = 0.5  # between the polite stop and SIGKILL of the process group
DRAIN_SECONDS = 1.0  # after exit, how long leftover writers may hold the pipes open


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
    watch: Callable[[], Awaitable[bool]] | None = None,
    watch_every: float = 0.25,
) -> ProcessOutcome:
    """Run ``argv`` to completion or ``timeout`` seconds; capture capped stdout and stderr.

    ``watch``, when given, is awaited every ``watch_every`` seconds while the process runs;
    when it answers True the process is stopped as on a timeout (``stopped``).
    """
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,  # its own process group, so it can be killed as a whole
        preexec_fn=preexec_fn,
        user=user,
        group=group,
        extra_groups=[] if group is not None else None,
    )
    assert process.stdout is not None and process.stderr is not None
    out = _Capped(process.stdout, output_bytes)
    err = _Capped(process.stderr, output_bytes)
    readers = asyncio.gather(out.drain(), err.drain())
    timed_out = stopped = False
    exited = asyncio.ensure_future(process.wait())
    try:
        deadline = started + timeout
        while not exited.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            step = min(remaining, watch_every) if watch is not None else remaining
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), step)
            if not exited.done() and watch is not None and await watch():
                stopped = True
                break
        if timed_out or stopped:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(stop_signal)
            if stop_signal == signal.SIGKILL:  # no jail to clean up after it: kill the group
                _kill_group(process.pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(process.wait(), GRACE_SECONDS)
            except TimeoutError:
                _kill_group(process.pid, signal.SIGKILL)
                await process.wait()
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            await asyncio.wait_for(asyncio.shield(readers), DRAIN_SECONDS)
        except TimeoutError:  # something outside a pid namespace still holds the pipes
            _kill_group(process.pid, signal.SIGKILL)
            readers.cancel()
    except BaseException:  # cancelled (or worse): never leave the process running
        _kill_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        readers.cancel()
        exited.cancel()
        raise
    finally:
        with contextlib.suppress(BaseException):
            await readers
    assert process.returncode is not None
    return ProcessOutcome(
        returncode=process.returncode,
        stdout=bytes(out.kept),
        stderr=bytes(err.kept),
        truncated=out.truncated or err.truncated,
        timed_out=timed_out,
        duration_ms=duration_ms,
        stopped=stopped,
    )
