"""``opsloop chat`` in a real pseudo-terminal: a message, Ctrl-C during a block, /cost, /exit.

Ctrl-C must stop the loop (recorded as cancelled), not the program: the chat goes on and
answers the next command, and leaves with status 0.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_real

SCRIPT = """
[[turns]]
text = '''
Waiting on the slow check.
<helpers lang="bash">
sleep 8; printf 'fin%s\\n' ished
</helpers>
'''

[[turns]]
text = "Never reached."
"""
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

    def read_until(self, needle: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
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


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    (jail_reachable_dir / "script.toml").write_text(SCRIPT, encoding="utf-8")
    return jail_reachable_dir


@pytest.mark.slow
def test_ctrl_c_stops_the_running_loop_and_the_chat_goes_on(home: Path) -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        TERM="xterm",
        COLUMNS="100",
        LINES="40",
    )
    opsloop = str(Path(sys.executable).with_name("opsloop"))
    term = Terminal([opsloop, "chat", "--new"], env=env, cwd=home)

    term.read_until("you>")
    term.type("run the slow check\r")
    term.read_until("running block 1/1")
    term.type("\x03")  # Ctrl-C while the block runs
    term.read_until("stopped (cancelled)")
    term.type("/cost\r")
    term.read_until("1 block")
    term.type("/exit\r")

    assert term.wait() == 0
    assert "finished" not in term.text  # the block was stopped, not waited for (its output)
    assert "Never reached." not in term.text
