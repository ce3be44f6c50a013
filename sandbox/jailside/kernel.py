"""opsloop's kernel: one conversation's Python blocks, run in one interpreter inside its jail.

The host (``sandbox.kernel``) starts the jail with a bootstrap (``python -I -S -c ...``) that
reads this source from the host's control pipe and ``exec``s it, so the jail's files are
the same as for a one-shot block: ``/opsloop/code`` holds the current block's code, written
there by the host before each block.

Framing is out of band: stdout and stderr are the block's own output; the control pipes
(never fds 0-2) carry lines ``RUN <seq>`` in and ``READY <nonce>`` / ``DONE <nonce> <seq>
<status>`` out, with a random nonce the host sent at start (not in argv, the environment or
a file). The host kills a kernel that writes anything else. The kernel keeps its own
references to what it uses (``exec``, ``os.write``, its stdout), so a block that replaces
builtins, ``sys.stdout`` or signal handlers changes its own namespace, not the framing; and
it puts the standard streams, fds 0-2, the working directory, signal handlers and timers
back before each block. After each block, before its DONE, it collects the block's garbage
(the collector on, its thresholds as at start, nothing frozen), so no finalizer of one
block runs unasked during the next.

Standard library only, and only what starts fast: this runs on the jail's own python3.
"""

from __future__ import annotations

import _signal
import builtins
import gc
import io
import os
import sys

# The kernel's own references, taken before any block runs: a block that replaces
# builtins.exec or os.write changes its own namespace, not what the kernel calls.
_exec, _compile, _isinstance = builtins.exec, builtins.compile, builtins.isinstance
_read, _write, _dup2, _close, _fstat = os.read, os.write, os.dup2, os.close, os.fstat
_chdir, _waitpid, _open, _exit = os.chdir, os.waitpid, os.open, os._exit
_display = sys.__excepthook__  # the C one: no `traceback` import, source lines from the file
TYPE_CHECKING = False  # typing costs start-up time; mypy reads this
if TYPE_CHECKING:
    from typing import Any
_TIMERS = tuple(getattr(_signal, n) for n in ("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF"))


def _refuse_more_hooks(event: str, _args: object) -> None:
    if event == "sys.addaudithook":
        raise RuntimeError("opsloop's kernel takes no audit hooks")  # the hook is not added


def _reopen(fd: int, old: Any) -> Any:
    mode = "r" if fd == 0 else "w"
    return io.open(fd, mode, encoding="utf-8", errors=old.errors, closefd=False)  # noqa: UP020


class _Kernel:
    def __init__(self, nonce: bytes, read_fd: int, write_fd: int) -> None:
        self.nonce, self.read_fd, self.write_fd = nonce, read_fd, write_fd
        self.streams: tuple[Any, ...] = (sys.stdin, sys.stdout, sys.stderr)
        self.saved = (_open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), os.dup(1), os.dup(2))
        self.control = self._control()
        os.set_inheritable(read_fd, False)
        os.set_inheritable(write_fd, False)
        self.builtins = dict(builtins.__dict__)
        self.recursion = sys.getrecursionlimit()
        self.gc_threshold = gc.get_threshold()
        self.handlers = {}
        for number in range(1, _signal.NSIG):
            try:
                self.handlers[number] = _signal.getsignal(number)
            except (OSError, ValueError):
                continue
        if sys.path[:1] == [""]:  # -c puts the working directory first; a script, its own
            sys.path[0] = "/opsloop"  # directory: only opsloop's files (tools.py, with tools)
        sys.addaudithook(_refuse_more_hooks)  # a block's hook would outlive it: none are added
        main = type(sys)("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        self.namespace = main.__dict__
        # The compiler's first use costs about 1 ms: paid here, before the first block.
        _compile(b"pass\n", "/opsloop/code", "exec", dont_inherit=True)

    def _control(self) -> tuple[int, int]:
        return _fstat(self.read_fd).st_ino, _fstat(self.write_fd).st_ino

    def send(self, line: bytes) -> None:
        if self._control() != self.control:
            _exit(1)  # the block replaced a control fd: stop rather than write elsewhere
        while line:
            line = line[_write(self.write_fd, line) :]

    def restore(self) -> None:
        for fd, copy in enumerate(self.saved):
            _dup2(copy, fd)
        if any(stream.closed for stream in self.streams):  # a block closed one: a new one
            self.streams = tuple(
                stream if not stream.closed else _reopen(fd, stream)
                for fd, stream in enumerate(self.streams)
            )
        current = builtins.__dict__  # what a block changed in builtins is put back
        for name in [name for name in current if name not in self.builtins]:
            del current[name]
        current.update(self.builtins)
        sys.setrecursionlimit(self.recursion)
        gc.callbacks.clear()
        sys.stdin, sys.stdout, sys.stderr = self.streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = self.streams  # type: ignore[misc]
        _chdir("/workspace")

    def settle(self) -> None:
        for stream in self.streams[1:]:
            try:  # noqa: SIM105 (contextlib costs start-up time)
                stream.flush()
            except BaseException:  # noqa: BLE001, S110 (a closed fd: the output is lost)
                pass
        sys.settrace(None)
        sys.setprofile(None)
        # The block's garbage goes now, while its DONE is still to come: a finalizer that
        # writes to the control pipe is caught as this block's (a wrong sequence number),
        # never run during the next block. The collector is put back as it was.
        gc.enable()
        gc.set_threshold(*self.gc_threshold)
        gc.unfreeze()
        while gc.collect():
            pass
        sys.unraisablehook = sys.__unraisablehook__  # hooks that run unasked go back
        _signal.set_wakeup_fd(-1)
        faults = sys.modules.get("faulthandler")  # its handlers write to any fd, in C
        if faults is not None:
            faults.disable()
            faults.cancel_dump_traceback_later()
        _signal.alarm(0)
        for timer in _TIMERS:
            _signal.setitimer(timer, 0)
        for number, handler in self.handlers.items():
            try:
                _signal.signal(number, handler)
            except (OSError, ValueError, TypeError):
                continue
        while True:  # reap what the block started and left to exit (a zombie is a leftover)
            try:
                if _waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break

    @staticmethod
    def source() -> bytes:
        fd = _open("/opsloop/code", os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := _read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            _close(fd)

    @staticmethod
    def exit_status(code: object) -> int:
        if code is None:
            return 0
        if _isinstance(code, int):
            return code & 0xFF  # type: ignore[operator]
        try:  # noqa: SIM105
            print(code, file=sys.stderr)
        except BaseException:  # noqa: BLE001, S110
            pass
        return 1

    def run(self) -> int:
        self.restore()
        try:
            code = _compile(self.source(), "/opsloop/code", "exec", dont_inherit=True)
        except BaseException as exc:  # noqa: BLE001 (SyntaxError, null bytes, MemoryError)
            _display(type(exc), exc, None)
            return 1
        try:
            _exec(code, self.namespace)
            return 0
        except SystemExit as exc:
            return self.exit_status(exc.code)
        except BaseException as exc:  # noqa: BLE001 (the block's error is its result)
            sys.stdout, sys.stderr = self.streams[1:]
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None
            _display(type(exc), exc.with_traceback(frames), frames)  # without the kernel's frame
            return 1

    def serve(self) -> None:
        self.send(b"READY " + self.nonce + b"\n")
        pending = b""
        while True:
            while b"\n" not in pending:
                chunk = _read(self.read_fd, 4096)
                if not chunk:
                    _exit(0)  # the host went away: so does the kernel (and its jail)
                pending += chunk
            line, _, pending = pending.partition(b"\n")
            word, _, seq = line.partition(b" ")
            if word != b"RUN" or not seq.isdigit():
                _exit(1)
            try:
                status = self.run()
            except BaseException:  # noqa: BLE001 (the kernel itself failed: end it)
                _exit(70)
            try:
                self.restore()
                self.settle()
            except BaseException:  # noqa: BLE001
                _exit(70)
            self.send(b"DONE " + self.nonce + b" " + seq + b" " + str(status).encode() + b"\n")


try:
    _Kernel(NONCE, READ_FD, WRITE_FD).serve()  # type: ignore[name-defined]  # noqa: F821
except BaseException:  # noqa: BLE001
    _exit(70)
