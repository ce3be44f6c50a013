"""One warm kernel, the host's side: a jail whose Python runs block after block.

The jail's side is ``sandbox/jailside/kernel.py``.

The jail is a one-shot block's jail (same uid, limits, seccomp, mounts, cgroups) that runs
the kernel instead of the code file. Per block the host writes the code to the kernel's
``/opsloop/code``, sets the CPU cap (``prlimit``: the kernel's CPU so far plus the block's
limit, which the block cannot raise), sends ``RUN <seq>`` on the control pipe and waits for
``DONE <nonce> <seq> <status>``, the jail's end, the wall limit or the workspace watch.

What the host checks itself, where no block can reach:

- every control line: a wrong nonce, a wrong sequence number, anything malformed, or a line
  while no block runs kills the kernel;
- after ``DONE``, the jail's pids cgroup holds exactly one task (the kernel's own thread):
  a thread, a child or a zombie left behind means the kernel is retired after this result,
  so nothing of this block runs on into the next one's output;
- output that arrives while no block runs (a timer, a finalizer) retires it too;
- a block over the wall limit, or whose cgroup ran out of memory, kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import spares
from sandbox.cgroups import RunCgroup
from sandbox.kernel_io import OutputPipe, parent_of, read_count, stat_fields, write_all
from sandbox.process import ExitStatus, ProcessOutcome, Started, Watch, watch_until
from sandbox.relay import RelayServer, ToolRelay
from sandbox.result import RESTARTED as RESTARTED
from sandbox.rundir import RunDir
from sandbox.workspace import Workspace

READY_SECONDS = 10.0  # from the jail's start to the kernel's READY
GONE_SECONDS = 2.0  # after a kill, waiting for the jail to be reaped
MAX_LINE = 200  # a control line is short; a longer one is tampering
TICKS = os.sysconf("SC_CLK_TCK")
INLINE_CODE_BYTES = 64 * 1024  # a block's code up to this is written on the event loop
TAMPERED = "\nopsloop: the block wrote to the interpreter's control channel; it was stopped\n"


class KernelLost(Exception):
    """The kernel could not be started or answered wrongly (the block never ran)."""


@dataclass
class KernelRun:
    """What one block did in a kernel, and whether the kernel outlived it."""

    outcome: ProcessOutcome
    exit_code: int | None
    signal: int | None
    timed_out: bool
    memory_exceeded: bool
    lost: bool  # the kernel is gone (or retired): the next block starts a new one
    tampered: bool = False


@dataclass
class Kernel:
    """A running kernel jail and the host's ends of its pipes."""

    started: Started
    to_kernel: int  # the host writes RUN lines here
    from_kernel: int  # and reads the kernel's lines here
    nonce: bytes
    run_dir: RunDir
    cgroup: RunCgroup | None
    pids_parent: Path | None  # where nsjail makes this jail's pids cgroup NSJAIL.<pid>
    relay: RelayServer | None
    owner: tuple[int, int]
    shape: Any
    status_of: Callable[[ExitStatus | None], tuple[int | None, int | None]]
    workspace: str | None = None
    attached: Workspace | None = None  # the workspace mounted at its /workspace
    identity: tuple[int, int, int] | None = None  # and what it was then (Workspaces.identity)
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seq: int = 0
    kernel_pid: int | None = None
    pids_dir: Path | None = None  # NSJAIL.<kernel pid>, found at start
    pids_fd: int | None = None  # its pids.current, open for the kernel's life
    dirty: str | None = None  # why it must be retired (stray output, a bad line)
    block_relay: ToolRelay | None = None  # the tool relay of the block running now
    release: Callable[[], None] | None = None  # gives its memory cgroup back
    spare: Path | None = None  # a prestarted kernel's workspace image, made ahead
    _killed: bool = False
    _pending: bytes = b""
    _answer: asyncio.Future[int] | None = None
    _out: OutputPipe | None = None
    _err: OutputPipe | None = None

    # -- start ---------------------------------------------------------------------------

    async def handshake(self, source: bytes) -> None:
        """Send the kernel its source and nonce, and wait for READY (``KernelLost`` if not)."""
        assert self.started.process.stdout and self.started.process.stderr
        self._out = OutputPipe(self.started.process.stdout.fileno(), self._stray)
        self._err = OutputPipe(self.started.process.stderr.fileno(), self._stray)
        os.set_blocking(self.from_kernel, False)
        asyncio.get_running_loop().add_reader(self.from_kernel, self._read_control)
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._answer = ready
        try:
            await asyncio.to_thread(write_all, self.to_kernel, source + b"\0" + self.nonce + b"\n")
            waiting: set[asyncio.Future[Any]] = {ready, self.started.exited}
            done, _ = await asyncio.wait(
                waiting, timeout=READY_SECONDS, return_when="FIRST_COMPLETED"
            )
            if ready not in done or ready.exception() is not None:
                raise KernelLost(self._why_not_ready())
        finally:
            self._answer = None
        self.kernel_pid = self._find_kernel_pid()

    def _why_not_ready(self) -> str:
        if self.started.exited.done():
            return "the kernel's jail ended before it was ready"
        return f"the kernel was not ready within {READY_SECONDS:g} s"

    def _find_kernel_pid(self) -> int | None:
        """The jailed process's host pid: the one task in nsjail's pids cgroup ``NSJAIL.<pid>``."""
        if self.pids_parent is None:
            return None
        for entry in self.pids_parent.glob("NSJAIL.*"):
            pid = entry.name.partition(".")[2]
            if pid.isdigit() and parent_of(int(pid)) == self.started.pid:
                self.pids_dir = entry
                with contextlib.suppress(OSError):
                    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
                    self.pids_fd = os.open(entry / "pids.current", flags)
                return int(pid)
        return None

    # -- the control pipe ----------------------------------------------------------------

    def _read_control(self) -> None:
        try:
            chunk = os.read(self.from_kernel, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.from_kernel)
            return
        self._pending += chunk
        while b"\n" in self._pending:
            line, _, self._pending = self._pending.partition(b"\n")
            self._line(line)
        if len(self._pending) > MAX_LINE:
            self._bad("a control line too long")

    def _line(self, line: bytes) -> None:
        words = line.split(b" ")
        answer = self._answer
        if answer is None or answer.done():
            self._bad("a control line while no block ran")
        elif words[:2] == [b"READY", self.nonce] and len(words) == 2 and self.seq == 0:
            answer.set_result(0)
        elif (
            len(words) == 4
            and words[:2] == [b"DONE", self.nonce]
            and words[2] == str(self.seq).encode()
            and words[3].isdigit()
            and len(words[3]) <= 3
        ):
            answer.set_result(int(words[3]))
        else:
            self._bad("a control line that is not the kernel's")

    def _bad(self, why: str) -> None:
        self.dirty = self.dirty or why
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(KernelLost(why))
        self.kill()

    def _stray(self) -> None:
        self.dirty = self.dirty or "output while no block ran"

    # -- one block -----------------------------------------------------------------------

    async def run(
        self,
        code: bytes,
        *,
        wall_seconds: float,
        cpu_seconds: float,
        output_bytes: int,
        watch: Watch | None = None,
    ) -> KernelRun:
        """Run one block (the caller holds ``lock``)."""
        assert self._out is not None and self._err is not None
        self.seq += 1
        if len(code) <= INLINE_CODE_BYTES:  # one small write: cheaper than a thread's handoff
            self._write_code(code)
        else:
            await asyncio.to_thread(self._write_code, code)
        stat = stat_fields(self.kernel_pid)  # read once: the CPU cap and the block's start
        self._cap_cpu(cpu_seconds, stat)
        if self.cgroup is not None:
            self.cgroup.oom_killed()  # forget what happened before this block
        if self.relay is not None:
            self.relay.next_run()
        self._out.begin(output_bytes)
        self._err.begin(output_bytes)
        cpu_before = None if stat is None else sum(stat)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[int] = loop.create_future()
        self._answer = answer
        either: asyncio.Future[None] = loop.create_future()

        def settle(_future: asyncio.Future[Any]) -> None:
            if not either.done():
                either.set_result(None)

        answer.add_done_callback(settle)
        self.started.exited.add_done_callback(settle)
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the kernel is gone: its exit says how
            write_all(self.to_kernel, b"RUN %d\n" % self.seq)
        try:
            timed_out, stopped = await watch_until(
                either,
                deadline=started + wall_seconds,
                watch=watch,
                pid=self.started.pid,
                every=0.25,
            )
        except BaseException:
            self.kill()
            raise
        finally:
            self._answer = None
            self.started.exited.remove_done_callback(settle)
        return await self._finish(answer, started, cpu_before, timed_out=timed_out, stopped=stopped)

    async def _finish(
        self,
        answer: asyncio.Future[int],
        started: float,
        cpu_before: int | None,
        *,
        timed_out: bool,
        stopped: bool,
    ) -> KernelRun:
        assert self._out is not None and self._err is not None
        answered = answer.done() and not answer.cancelled() and answer.exception() is None
        tampered = answer.done() and not answer.cancelled() and answer.exception() is not None
        if not answered or timed_out or stopped:
            self.kill()
            await self.gone()
        ended = time.monotonic()
        cpu_after = self._cpu_ticks()
        memory = self.cgroup is not None and self.cgroup.oom_killed()
        stdout, out_cut = self._out.end()
        stderr, err_cut = self._err.end()
        exit_code: int | None
        if answered and not (timed_out or stopped):
            exit_code, sig = answer.result(), None
            spent = self.relay is not None and not self.relay.listening  # past a channel cap
            if memory or spent or self._leftovers() or self.dirty:
                self.kill()
        else:
            exit_code, sig = self.status_of(self._exit_status())
            if (timed_out or stopped or tampered) and sig is None:
                exit_code, sig = None, 9
        cpu_ms = None
        if cpu_before is not None and cpu_after is not None:
            # Both counts are cut to whole ticks: the block's time is under one tick more.
            cpu_ms = max(0, (cpu_after - cpu_before + 1) * 1000 // TICKS)
        outcome = ProcessOutcome(
            returncode=exit_code if exit_code is not None else -(sig or 9),
            stdout=stdout,
            stderr=stderr + (TAMPERED.encode() if tampered else b""),
            truncated=out_cut or err_cut,
            timed_out=timed_out,
            duration_ms=int((ended - started) * 1000),
            stopped=stopped,
            cpu_ms=cpu_ms,
            children_cpu_ms=cpu_ms,
        )
        self.last_used = time.monotonic()
        return KernelRun(
            outcome=outcome,
            exit_code=exit_code,
            signal=sig,
            timed_out=timed_out,
            memory_exceeded=memory,
            lost=not self.alive(),
            tampered=tampered,
        )

    def _write_code(self, code: bytes) -> None:
        """The block's code, in place of the last one (the bind mount pins the inode)."""
        fd = os.open(self.run_dir.code_file, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
        try:
            write_all(fd, code)
        finally:
            os.close(fd)

    def _cap_cpu(self, seconds: float, stat: tuple[int, int, int, int] | None) -> None:
        """RLIMIT_CPU of the kernel: what it used so far (``stat``: its /proc stat times)
        plus this block's limit. As root the hard limit moves with it, so the block cannot
        raise it."""
        if self.kernel_pid is None:
            return
        used = (0 if stat is None else stat[0] + stat[1]) // TICKS
        cap = used + max(1, round(seconds + 0.499))
        hard = cap if os.geteuid() == 0 else resource.RLIM_INFINITY
        with contextlib.suppress(OSError):
            resource.prlimit(self.kernel_pid, resource.RLIMIT_CPU, (cap, hard))

    def _cpu_ticks(self) -> int | None:
        """User + system ticks of the kernel and the children it reaped."""
        stat = stat_fields(self.kernel_pid)
        return None if stat is None else sum(stat)

    def _leftovers(self) -> bool:
        """Does the jail hold anything but the kernel's one thread? (Unknown counts as yes.)"""
        if self.pids_fd is None:
            return True
        return read_count(self.pids_fd) != 1

    def _exit_status(self) -> ExitStatus | None:
        exited = self.started.exited
        if exited.done() and not exited.cancelled() and exited.exception() is None:
            return exited.result()
        return None

    # -- the end ---------------------------------------------------------------------------

    def alive(self) -> bool:
        """Not killed, not ended, and fit for another block."""
        return not self.started.exited.done() and self.dirty is None and not self._killed

    def kill(self) -> None:
        """SIGKILL the kernel's jail (its pid namespace dies with it)."""
        self._killed = True
        if self.kernel_pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.kernel_pid, 9)
        self.started.kill()

    async def gone(self) -> None:
        """Wait (bounded) for the jail to be reaped, then read what is left of its output."""
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(self.started.exited), GONE_SECONDS)

    async def close(self) -> None:
        """Kill it, and release its pipes, relay, cgroup and scratch directory."""
        self.kill()
        await self.gone()
        loop = asyncio.get_running_loop()
        for stream in (self._out, self._err):
            if stream is not None:
                stream.close()
        with contextlib.suppress(Exception):
            loop.remove_reader(self.from_kernel)
        for fd in (self.to_kernel, self.from_kernel, self.pids_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pids_fd = None
        for pipe in (self.started.process.stdout, self.started.process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if self.relay is not None:
            await self.relay.close()
        if self.release is not None:
            with contextlib.suppress(OSError):
                self.release()
            self.release = None
        await asyncio.to_thread(self.run_dir.remove)
        if self.spare is not None:  # never used: taken by a workspace otherwise
            await asyncio.to_thread(spares.drop, self.spare)
