"""Approvals at the terminal, as a person meets them: ``opsloop chat`` in a real pseudo-terminal
asks ``run this block? [y/N]`` (y runs the block in the real nsjail sandbox; n refuses it and
the model is told; a chat killed at the question asks again when it starts), and ``opsloop ask``
refuses such blocks unless ``--approve`` is given.

Each test runs the real console script with its own data directory, the scripted model and an
``opsloop.toml`` that asks before every block.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_real
from tests.pty_terminal import OPSLOOP, Terminal, scripted_env

SCRIPT = """
[[turns]]
text = '''
Let me compute it.
<helpers>
print(6 * 7 * 1000 + 123)
</helpers>
'''

[[turns]]
text = "Done: see the block's output."
"""
CONFIG = """
[approvals]
blocks = "always"
"""
QUESTION = "run this block? [y/N]"
PRINTED = "42123"  # only the sandbox prints this: the script never says it


@pytest.fixture(scope="module")
def jails_work() -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    (jail_reachable_dir / "script.toml").write_text(SCRIPT, encoding="utf-8")
    (jail_reachable_dir / "opsloop.toml").write_text(CONFIG, encoding="utf-8")
    return jail_reachable_dir


def environment(home: Path) -> dict[str, str]:
    return scripted_env(home)


def opsloop(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPSLOOP, *args],
        cwd=home,
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def chat(home: Path) -> Terminal:
    return Terminal([OPSLOOP, "chat"], env=environment(home), cwd=home)


def replay(home: Path, term: Terminal) -> list[dict[str, Any]]:
    """The JSON replay of the conversation the chat's banner names."""
    found = re.search(r"conversation ([0-9a-f]{8})", term.text)
    assert found, term.text[-2000:]
    done = opsloop(home, "replay", found.group(1), "--format", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def types(events: list[dict[str, Any]]) -> list[str]:
    """Event types but ``Started`` and ``LoopClaimed`` (who ran the loop: docs/replicas.md)."""
    return [e["type"] for e in events if e["type"] not in ("Started", "LoopClaimed")]


@pytest.mark.slow
def test_answering_y_in_the_chat_runs_the_block_in_the_sandbox(
    home: Path, jails_work: None
) -> None:
    term = chat(home)
    term.read_until("you>")
    term.type("what is 6*7*1000+123?\r")
    term.read_until(QUESTION)
    asked = term.text
    term.type("y\r")
    term.read_until("Done: see the block's output.", timeout=60)
    term.type("/exit\r")

    assert term.wait() == 0
    assert "print(6 * 7 * 1000 + 123)" in asked and "needs approval" in asked  # shown first
    assert "tools: none" in asked and PRINTED not in asked  # nothing ran before the yes
    assert PRINTED in term.text  # printed by nsjail once approved
    events = replay(home, term)
    granted = next(e for e in events if e["type"] == "ApprovalGranted")
    assert granted["by"] == getpass.getuser()
    assert types(events)[2:5] == ["ApprovalRequested", "ApprovalGranted", "BlockStarted"]


@pytest.mark.slow
def test_answering_n_in_the_chat_refuses_the_block_and_the_model_is_told(
    home: Path, jails_work: None
) -> None:
    term = chat(home)
    term.read_until("you>")
    term.type("what is 6*7*1000+123?\r")
    term.read_until(QUESTION)
    term.type("n\r")
    term.read_until("Done: see the block's output.", timeout=60)
    term.type("/exit\r")

    assert term.wait() == 0
    assert PRINTED not in term.text and f"denied by {getpass.getuser()}" in term.text
    events = replay(home, term)
    refused = next(e for e in events if e["type"] == "BlockRefused")
    assert refused["reason"].endswith(f"denied running it: {getpass.getuser()} answered no")
    kinds = types(events)
    # The refusal is recorded before the model's next turn, whose prompt is built from it.
    assert kinds[2:6] == ["ApprovalRequested", "ApprovalDenied", "BlockRefused", "ModelReplied"]
    assert "BlockStarted" not in kinds


@pytest.mark.slow
def test_a_chat_killed_at_the_question_asks_again_when_it_starts_and_the_yes_counts(
    home: Path, jails_work: None
) -> None:
    first = chat(home)
    first.read_until("you>")
    first.type("what is 6*7*1000+123?\r")
    first.read_until(QUESTION)
    first.kill()

    again = chat(home)
    again.read_until(QUESTION)
    again.type("y\r")
    again.read_until("Done: see the block's output.", timeout=60)
    again.type("/exit\r")

    assert again.wait() == 0
    assert "waits for an approval" in again.text and "print(6 * 7 * 1000 + 123)" in again.text
    assert PRINTED in again.text
    assert types(replay(home, again)).count("ApprovalRequested") == 1  # the same request


def test_ask_refuses_a_block_that_needs_approval_and_says_so_on_stderr(
    home: Path, jails_work: None
) -> None:
    plain = opsloop(home, "ask", "what is 6*7*1000+123?")
    as_json = opsloop(home, "ask", "what is 6*7*1000+123?", "--json")

    assert plain.returncode == 0, plain.stderr  # the model answered, without the block
    assert plain.stdout == "Done: see the block's output.\n" and PRINTED not in plain.stdout
    assert plain.stderr == (
        "opsloop: block t1b1 needs approval (no tools) and was not run; "
        "run again with --approve to run such blocks\n"
    )
    result = json.loads(as_json.stdout)
    assert result["approvals"] == [{"block_id": "t1b1", "tools": [], "decision": "denied"}]
    assert result["blocks"] == 0 and as_json.returncode == 0


def test_ask_with_approve_runs_the_block_approved_by_the_local_user(
    home: Path, jails_work: None
) -> None:
    done = opsloop(home, "ask", "what is 6*7*1000+123?", "--approve", "--json")

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert result["approvals"] == [{"block_id": "t1b1", "tools": [], "decision": "granted"}]
    assert result["blocks"] == 1
    events = [
        json.loads(line)
        for line in opsloop(
            home, "replay", result["conversation_id"], "--format", "json"
        ).stdout.splitlines()
        if line.strip()
    ]
    finished = next(e for e in events if e["type"] == "BlockFinished")
    assert finished["exit_code"] == 0 and PRINTED in finished["stdout"]
    assert next(e for e in events if e["type"] == "ApprovalGranted")["by"] == getpass.getuser()
