"""Files on the terminal: ``opsloop ask --file`` and ``/attach`` in ``opsloop chat`` put a local
file in the real jail's /workspace/inbox; what a block writes to /workspace/outbox is saved
under the data directory and its path printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_real

SCRIPT = """
[[turns]]
text = '''
<helpers>
import pathlib
log = pathlib.Path("/workspace/inbox/app.log").read_text()
out = pathlib.Path("/workspace/outbox")
out.mkdir(exist_ok=True)
(out / "report.txt").write_text(f"errors: {log.count('ERROR')}\\n")
</helpers>
'''

[[turns]]
text = "Two errors; see the report."
"""


@pytest.fixture(scope="module")
def jails_work() -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    (jail_reachable_dir / "script.toml").write_text(SCRIPT, encoding="utf-8")
    (jail_reachable_dir / "app.log").write_text("ERROR a\nok\nERROR b\n")
    return jail_reachable_dir


def opsloop(
    home: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("opsloop")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    base.update(
        OPSLOOP_DATA_DIR=str(home / "data"),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        COLUMNS="200",
    )
    base.update(env)
    return subprocess.run(
        [str(command), *args],
        cwd=home,
        env=base,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ask_with_a_file_answers_and_saves_the_blocks_report_privately(
    home: Path, jails_work: None
) -> None:
    done = opsloop(home, "ask", "count the errors", "--file", str(home / "app.log"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "Two errors; see the report."
    assert result["files_in"] == [{"name": "app.log", "bytes": 19, "refused": ""}]
    (sent,) = result["files"]
    path = Path(sent["path"])
    assert sent["name"] == "report.txt" and path.read_bytes() == b"errors: 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert f"report.txt (10 bytes): {path}" in done.stderr


def test_ask_with_a_fifo_or_a_missing_file_refuses_it_in_one_line_and_goes_on(
    home: Path, jails_work: None
) -> None:
    os.mkfifo(home / "pipe")
    done = opsloop(
        home, "ask", "hi", "--file", str(home / "pipe"), "--file", str(home / "nope"), "--json"
    )
    result = json.loads(done.stdout)
    refused = {f["name"]: f["refused"] for f in result["files_in"]}
    assert "not a regular file" in refused["pipe"]
    assert "cannot open" in refused["nope"]
    assert "Traceback" not in done.stderr


def test_chat_attach_sends_a_file_with_the_next_message_and_prints_the_reports_path(
    home: Path, jails_work: None
) -> None:
    done = opsloop(home, "chat", "--new", stdin=f"/attach {home / 'app.log'}\ncount errors\n")
    assert done.returncode == 0, done.stderr
    assert "app.log: in /workspace/inbox" in done.stdout
    assert "Two errors; see the report." in done.stdout
    line = next(x for x in done.stdout.splitlines() if "report.txt (10 bytes)" in x)
    assert Path(line.split(": ", 1)[1].strip()).read_bytes() == b"errors: 2\n"
