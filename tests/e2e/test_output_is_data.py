"""Output is data, never control: hostile output through real terminals, the real sandbox.

``opsloop chat`` on a pseudo-terminal: the model's prose and answer, a block's code, its
stdout and stderr, and ``/replay`` all carry escape sequences (clipboard write, window title,
clear screen, a C1 CSI, a right-to-left override); none may reach the terminal's bytes.
``opsloop sandbox run`` shows them visibly on a terminal and passes them unchanged to a pipe.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_real
from tests.pty_terminal import OPSLOOP, Terminal, scripted_env

# TOML decodes the \u escapes: the model "writes" real control characters.
SCRIPT = r'''
[[turns]]
text = """
Looking \u001b]0;owned-title\u0007 now.
<helpers>
import sys
print("\u001b]52;c;cHduZWQ=\u0007\u001b[2J out")
print("\u009b2J err \u202eexe", file=sys.stderr)
</helpers>
"""

[[turns]]
text = "Answer: \u001b]52;c;YW5zd2Vy\u0007 \u001b[2J done \u009b2J \u202egnp.exe"
'''
OBEYED = (
    b"\x1b]0;owned-title",
    b"\x1b]52;c;cHduZWQ=",
    b"\x1b]52;c;YW5zd2Vy",
    b"\x1b[2J out",
    b"\x1b[2J done",
    "\x9b".encode(),
    "\u202e".encode(),
)


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")
    (jail_reachable_dir / "script.toml").write_text(SCRIPT, encoding="utf-8")
    return jail_reachable_dir


def environment(home: Path) -> dict[str, str]:
    return scripted_env(home, columns=200, lines=50)


@pytest.mark.slow
def test_a_hostile_conversation_in_opsloop_chat_never_drives_the_terminal(home: Path) -> None:
    term = Terminal([OPSLOOP, "chat", "--new"], env=environment(home), cwd=home)
    term.read_until("you>")
    term.type("show me\r")
    term.read_until("Answer: ")
    term.read_until("gnp.exe")
    term.type("/replay\r")
    term.read_until("answer:")
    term.read_until("<U+202E>gnp.exe", timeout=10)
    term.type("/exit\r")
    assert term.wait() == 0

    for sequence in OBEYED:
        assert sequence not in term.raw, f"{sequence!r} reached the terminal"
    screen = term.raw.decode("utf-8", "replace")
    assert "Looking ␛]0;owned-title␇ now." in screen  # the streamed prose
    assert 'print("␛]52;c;cHduZWQ=␇␛[2J out")' in screen  # the code panel
    assert "␛]52;c;cHduZWQ=␇␛[2J out" in screen and "\\x9b2J err <U+202E>exe" in screen
    assert "Answer: ␛]52;c;YW5zd2Vy␇ ␛[2J done \\x9b2J <U+202E>gnp.exe" in screen
    assert screen.count("<U+202E>gnp.exe") >= 3  # answer, replay's model turn and answer


@pytest.fixture
def hostile_block(home: Path) -> Path:
    path = home / "block.py"
    path.write_text('print("\\x1b]0;owned-title\\x07\\x1b[2J out \\u202eexe")\n', encoding="utf-8")
    return path


def test_sandbox_run_on_a_terminal_shows_control_characters(
    home: Path, hostile_block: Path
) -> None:
    term = Terminal(
        [OPSLOOP, "sandbox", "run", str(hostile_block)], env=environment(home), cwd=home
    )
    assert term.wait(timeout=60) == 0
    for sequence in OBEYED:
        assert sequence not in term.raw
    assert "␛]0;owned-title␇␛[2J out <U+202E>exe" in term.raw.decode()


def test_sandbox_run_into_a_pipe_passes_the_output_unchanged(
    home: Path, hostile_block: Path
) -> None:
    done = subprocess.run(
        [OPSLOOP, "sandbox", "run", str(hostile_block)],
        env=environment(home),
        cwd=home,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\x1b]0;owned-title\x07\x1b[2J out \u202eexe\n".encode()
