"""``opsloop chat`` in a real pseudo-terminal: a message, Ctrl-C during a block, /cost, /exit.

Ctrl-C must stop the loop (recorded as cancelled), not the program: the chat goes on and
answers the next command, and leaves with status 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_real
from tests.pty_terminal import OPSLOOP, Terminal, scripted_env

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


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    (jail_reachable_dir / "script.toml").write_text(SCRIPT, encoding="utf-8")
    return jail_reachable_dir


@pytest.mark.slow
def test_ctrl_c_stops_the_running_loop_and_the_chat_goes_on(home: Path) -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")
    env = scripted_env(home)
    term = Terminal([OPSLOOP, "chat", "--new"], env=env, cwd=home)

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
