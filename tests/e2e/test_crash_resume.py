"""kill -9 a real ``opsloop ask`` in the middle of a block, then ``opsloop resume``.

The conversation must finish, and no block may run twice: the block that was running when
the process died is recorded as ``BlockOutcomeUnknown`` (and shown to the model as such),
never started again. The block appends a line to a file in /workspace, so running it twice
would show as two lines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bot.app.application import open_app
from tests.conftest import require_real

SCRIPT = """
[[turns]]
text = '''
Let me record that I started, then wait for the slow check.
<helpers lang="bash">
echo started >> /workspace/runs.txt
sleep 8
echo finished >> /workspace/runs.txt
</helpers>
'''

[[turns]]
text = '''
The first block was interrupted; let me see what it left behind.
<helpers lang="bash">
cat /workspace/runs.txt
</helpers>
'''

[[turns]]
text = "The slow check was interrupted after it started; it was not run again."
"""


def opsloop() -> str:
    """The ``opsloop`` console script of this interpreter's environment."""
    path = Path(sys.executable).with_name("opsloop")
    require_real(path.exists(), f"{path} is missing (pip install -e . installs it)")
    return str(path)


@pytest.fixture
def home(jail_reachable_dir: Path) -> Iterator[Path]:
    """A data directory the jail user can traverse, with the script and the database."""
    path = jail_reachable_dir
    (path / "script.toml").write_text(SCRIPT, encoding="utf-8")
    yield path
    for proc in psutil.process_iter(["pid", "cmdline"]):  # only the jails this test started
        try:
            if any(str(path) in part for part in proc.info["cmdline"] or []):
                proc.kill()
        except psutil.Error:
            continue


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_DATABASE_URL=f"sqlite:///{home / 'events.sqlite3'}",
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        OPSLOOP_SANDBOX="nsjail",
    )
    return env


def wait_for(predicate, *, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def runs_file(home: Path) -> Path | None:
    found = list((home / "workspaces").glob("*/runs.txt")) if (home / "workspaces").exists() else []
    return found[0] if found else None


@pytest.mark.slow
def test_a_killed_loop_resumes_and_finishes_without_running_any_block_twice(home: Path) -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")
    env = environment(home)
    asker = subprocess.Popen(
        [opsloop(), "ask", "is the slow check ok?", "--json"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: runs_file(home) is not None, timeout=60, what="the block to start")
        os.kill(asker.pid, signal.SIGKILL)  # the crash: no cleanup, no last words
        asker.wait(timeout=10)
    finally:
        if asker.poll() is None:
            asker.kill()
    assert asker.returncode == -signal.SIGKILL

    resumed = subprocess.run(
        [opsloop(), "resume"], cwd=home, env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr

    app = open_app(database_url=env["OPSLOOP_DATABASE_URL"])
    try:
        [summary] = app.list_conversations()
        timeline = app.timeline(summary.conversation_id)
    finally:
        app.close()
    kinds = [e["type"] for e in timeline]
    started = [e["block_id"] for e in timeline if e["type"] == "BlockStarted"]
    assert started == ["t1b1", "t2b1"], kinds  # each block started exactly once
    unknown = [e for e in timeline if e["type"] == "BlockOutcomeUnknown"]
    assert [e["block_id"] for e in unknown] == ["t1b1"]
    [finished] = [e for e in timeline if e["type"] == "BlockFinished"]
    assert finished["block_id"] == "t2b1" and finished["stdout"].count("started") == 1
    assert kinds[-1] == "Answered"
    assert "not run again" in timeline[-1]["text"]
    runs = runs_file(home)
    assert runs is not None and runs.read_text().count("started") == 1
