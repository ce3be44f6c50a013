"""A child process on a real pseudo-terminal, for the tests of ``opsloop chat``: what a person
types goes in as keys, and what they would see comes out as plain text (ANSI codes removed)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

OPSLOOP = str(Path(sys.executable).with_name("opsloop"))  # the venv's entry point
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")


class Terminal:
    """A child process on a pty, with its screen output as plain text."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become opsloop
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def read_until(self, needle: str, *, since: int = 0, timeout: float = 30.0) -> None:
        """Read until ``needle`` is on the screen (after the first ``since`` characters)."""
        deadline = time.monotonic() + timeout
        while needle not in self.text[since:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never appeared; screen:\n{self.text[-2000:]}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:
                    return

    def drain(self) -> None:
        """Read whatever the child wrote (a full pty would block it)."""
        ready, _, _ = select.select([self.fd], [], [], 0.1)
        if ready:
            try:
                self.raw += os.read(self.fd, 65536)
            except OSError:
                time.sleep(0.1)

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait(self, *, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self.drain()
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("opsloop chat did not exit")

    def kill(self) -> None:
        """SIGKILL, as a crash or ``kill -9`` would end it, and reap it."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def scripted_env(home: Path, *, columns: int = 100, lines: int = 40) -> dict[str, str]:
    """An opsloop with its data in ``home``, the scripted model reading ``home/script.toml``,
    on an xterm of this size; none of the caller's own ``OPSLOOP_`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        TERM="xterm",
        COLUMNS=str(columns),
        LINES=str(lines),
    )
    return env
