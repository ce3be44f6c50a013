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
back before each block.

Standard library only, and only what starts fast: this runs on the jail's own python3.
"""


def _kernel(nonce: bytes, read_fd: int, write_fd: int) -> None:  # noqa: C901 (one closure)
    import _signal
    import builtins
    import os
    import sys

    exec_, compile_ = builtins.exec, builtins.compile
    read, write, dup, dup2, close, fstat = os.read, os.write, os.dup, os.dup2, os.close, os.fstat
    chdir, waitpid, open_, exit_ = os.chdir, os.waitpid, os.open, os._exit
    display = sys.__excepthook__  # the C one: no `traceback` import, source lines from the file
    streams = (sys.stdin, sys.stdout, sys.stderr)
    saved = (os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), dup(1), dup(2))
    control = (fstat(read_fd).st_ino, fstat(write_fd).st_ino)
    os.set_inheritable(read_fd, False)
    os.set_inheritable(write_fd, False)
    handlers = {}
    for number in range(1, _signal.NSIG):
        try:
            handlers[number] = _signal.getsignal(number)
        except (OSError, ValueError):
            continue
    timers = [getattr(_signal, name) for name in ("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF")]
    if sys.path[:1] == [""]:  # -c puts the working directory first; a script, its own
        sys.path[0] = "/opsloop"  # directory: only opsloop's files (tools.py, with tools)
    main = type(sys)("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    namespace = main.__dict__

    def send(line: bytes) -> None:
        if (fstat(read_fd).st_ino, fstat(write_fd).st_ino) != control:
            exit_(1)  # the block replaced a control fd: stop rather than write elsewhere
        while line:
            line = line[write(write_fd, line) :]

    def restore() -> None:
        for fd, copy in enumerate(saved):
            dup2(copy, fd)
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc,assignment]
        chdir("/workspace")

    def settle() -> None:
        for stream in streams[1:]:
            try:  # noqa: SIM105 (contextlib costs start-up time)
                stream.flush()
            except BaseException:  # noqa: BLE001, S110 (a closed fd: the output is lost)
                pass
        sys.settrace(None)
        sys.setprofile(None)
        _signal.alarm(0)
        for timer in timers:
            _signal.setitimer(timer, 0)
        for number, handler in handlers.items():
            try:
                _signal.signal(number, handler)
            except (OSError, ValueError, TypeError):
                continue
        while True:  # reap what the block started and left to exit (a zombie is a leftover)
            try:
                if waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break

    def source() -> bytes:
        fd = open_("/opsloop/code", os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            close(fd)

    def exit_status(code: object) -> int:
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        try:  # noqa: SIM105
            print(code, file=sys.stderr)
        except BaseException:  # noqa: BLE001, S110
            pass
        return 1

    def run() -> int:
        restore()
        try:
            code = compile_(source(), "/opsloop/code", "exec", dont_inherit=True)
        except BaseException as exc:  # noqa: BLE001 (SyntaxError, null bytes, MemoryError)
            display(type(exc), exc, None)
            return 1
        try:
            exec_(code, namespace)
            return 0
        except SystemExit as exc:
            return exit_status(exc.code)
        except BaseException as exc:  # noqa: BLE001 (the block's error is its result)
            sys.stdout, sys.stderr = streams[1:]
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None
            display(type(exc), exc.with_traceback(frames), frames)  # without the kernel's frame
            return 1

    send(b"READY " + nonce + b"\n")
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = read(read_fd, 4096)
            if not chunk:
                exit_(0)  # the host went away: so does the kernel (and its jail)
            pending += chunk
        line, _, pending = pending.partition(b"\n")
        word, _, seq = line.partition(b" ")
        if word != b"RUN" or not seq.isdigit():
            exit_(1)
        try:
            status = run()
        except BaseException:  # noqa: BLE001 (the kernel itself failed: end it)
            exit_(70)
        try:
            restore()
            settle()
        except BaseException:  # noqa: BLE001
            exit_(70)
        send(b"DONE " + nonce + b" " + seq + b" " + str(status).encode() + b"\n")


try:
    _kernel(NONCE, READ_FD, WRITE_FD)  # type: ignore[name-defined]  # noqa: F821 (the bootstrap's)
except BaseException:  # noqa: BLE001
    import os

    os._exit(70)
