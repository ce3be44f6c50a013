"""``opsloop chat`` with warm kernels (the default): ``x = 41`` in one block and
``print(x + 1)`` in a block of the next message prints 42, in a real pseudo-terminal, a
real nsjail kernel and the scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_real
from tests.pty_terminal import OPSLOOP, Terminal, scripted_env

SCRIPT = """
[[turns]]
text = '''
<helpers>
x = 41
</helpers>
'''

[[turns]]
text = "Set it."

[[turns]]
text = '''
<helpers>
print(x + 1)
</helpers>
'''

[[turns]]
text = "Printed it."
"""


@pytest.mark.slow
def test_a_variable_set_in_one_block_is_there_in_the_next_messages_block(
    jail_reachable_dir: Path,
) -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")
    home = jail_reachable_dir
    (home / "script.toml").write_text(SCRIPT, encoding="utf-8")
    env = scripted_env(home)
    term = Terminal([OPSLOOP, "chat", "--new"], env=env, cwd=home)

    term.read_until("you>")
    term.type("set x\r")
    term.read_until("Set it.")
    term.read_until("you>")
    term.type("print x + 1\r")
    term.read_until("Printed it.")
    term.type("/exit\r")

    assert term.wait() == 0
    second = term.text.split("print x + 1", 1)[1]
    assert "42" in second and "NameError" not in second
    assert "interpreter restarted" not in term.text
