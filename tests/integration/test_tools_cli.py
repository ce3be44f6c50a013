"""``opsloop tools list`` and ``opsloop tools call``, and the tools in ``opsloop doctor``:
the real CLI in a subprocess, with real host commands as tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[tools.count]
kind = "command"
description = "Count to n."
argv = ["seq", "{n}"]
params = { n = { type = "integer", max = 100 } }
allow_users = ["slack:U1"]

[tools.token]
kind = "command"
description = "Prints the token it holds."
argv = ["printenv", "TOKEN"]
env = { TOKEN = "${env:OPSLOOP_CLI_TOKEN}" }

[tools.broken]
kind = "command"
description = "Always fails."
argv = ["false"]

[tools.missing]
kind = "command"
description = "A command this host does not have."
argv = ["opsloop-no-such-command"]
"""
TOKEN = "cli-secret-0123456789"


def opsloop(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "opsloop.toml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(OPSLOOP_CLI_TOKEN=TOKEN, OPSLOOP_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def test_list_shows_each_tool_with_who_may_call_it_and_its_state(tmp_path: Path) -> None:
    done = opsloop(tmp_path, "tools", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"count", "token", "broken", "missing"}
    assert rows["count"]["signature"] == "count(n: int) -> str"
    assert rows["count"]["allow_users"] == ["slack:U1"] and rows["count"]["approve"] == "never"
    assert rows["count"]["ok"] and not rows["missing"]["ok"]
    text = opsloop(tmp_path, "tools", "list").stdout
    assert "count  (command; users slack:U1; approve never)" in text
    assert TOKEN not in text + done.stdout


def test_call_runs_the_tool_as_the_operator_despite_chat_allowlists(tmp_path: Path) -> None:
    done = opsloop(tmp_path, "tools", "call", "count", "n=3")
    assert (done.returncode, done.stdout) == (0, "1\n2\n3\n")


def test_call_redacts_a_secret_the_tool_prints(tmp_path: Path) -> None:
    done = opsloop(tmp_path, "tools", "call", "token", "--json")
    outcome = json.loads(done.stdout)
    assert outcome["result"] == "[redacted:OPSLOOP_CLI_TOKEN]\n"
    assert outcome["redacted"] == ["OPSLOOP_CLI_TOKEN"] and TOKEN not in done.stdout


@pytest.mark.parametrize(
    ("words", "status", "says"),
    [
        (["count", "n=300"], 2, "at most 100"),
        (["count", "n=three"], 2, "must be an integer"),
        (["count", "n"], 2, "is not key=value"),
        (["count", "m=1"], 2, "'m'"),
        (["nothing"], 2, "nothing"),
        (["broken"], 1, "opsloop: "),
    ],
)
def test_a_refused_call_exits_2_and_a_failed_one_1_each_with_one_line(
    tmp_path: Path, words: list[str], status: int, says: str
) -> None:
    done = opsloop(tmp_path, "tools", "call", *words)
    assert done.returncode == status, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_tool_that_needs_an_unset_variable_is_a_one_line_config_error(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "tools", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT), "OPSLOOP_DATA_DIR": str(tmp_path / "data")},
        timeout=60,
    )
    assert done.returncode == 2
    assert "OPSLOOP_CLI_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_doctor_checks_every_tool_and_names_the_one_that_is_broken(tmp_path: Path) -> None:
    done = opsloop(tmp_path, "doctor", "--provider", "scripted")
    lines = done.stdout.splitlines()
    assert any(line.startswith("ok   tool count: command") for line in lines), done.stdout
    assert any(line.startswith("FAIL tool missing: command") for line in lines), done.stdout
