"""The loop's commands as a user runs them: ``opsloop ask``, ``demo``, ``resume``, ``doctor``.

Each test runs the real console script in a subprocess with its own data directory (SQLite
file, workspaces) and the scripted model; blocks run in the real nsjail sandbox.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_real

SCRIPT = """
[[turns]]
text = '''
Let me count.
<helpers>
print(sum(range(10)))
</helpers>
'''

[[turns]]
text = "The sum is 45."
"""
DOWN = """
[[turns]]
unavailable = "503 Service Unavailable"
"""


@pytest.fixture(scope="module")
def jails_work() -> None:
    from sandbox.check import diagnose_sync

    require_real(diagnose_sync().jails_work, "nsjail cannot run blocks on this host")


@pytest.fixture
def home(jail_reachable_dir: Path) -> Path:
    path = jail_reachable_dir
    (path / "script.toml").write_text(SCRIPT, encoding="utf-8")
    (path / "down.toml").write_text(DOWN, encoding="utf-8")
    return path


def opsloop(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("opsloop")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    base.update(
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        COLUMNS="100",
    )
    base.update(env)
    return subprocess.run(
        [str(command), *args], cwd=home, env=base, capture_output=True, text=True, timeout=120
    )


def test_ask_prints_only_the_answer(home: Path, jails_work: None) -> None:
    done = opsloop(home, "ask", "what is the sum of 0..9?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The sum is 45.\n"


def test_ask_json_reports_tokens_blocks_and_no_stop(home: Path, jails_work: None) -> None:
    done = opsloop(home, "ask", "what is the sum of 0..9?", "--json")

    result = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert result["answer"] == "The sum is 45." and result["stopped_reason"] is None
    assert result["blocks"] == 1 and result["input_tokens"] > 0 and result["output_tokens"] > 0
    assert set(result) >= {
        "conversation_id",
        "answer",
        "input_tokens",
        "output_tokens",
        "cost",
        "blocks",
        "stopped_reason",
    }
    replay = opsloop(home, "replay", result["conversation_id"][:8])
    assert "block t1b1 finished: exit 0" in replay.stdout and "45" in replay.stdout


def test_ask_exits_non_zero_when_the_loop_stops_without_an_answer(home: Path) -> None:
    done = opsloop(home, "ask", "anyone there?", "--json", OPSLOOP_MODEL=str(home / "down.toml"))

    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["answer"] is None and result["stopped_reason"] == "model_unavailable"


def test_resume_with_an_id_retries_a_conversation_whose_model_was_down(
    home: Path, jails_work: None
) -> None:
    failed = json.loads(
        opsloop(home, "ask", "sum?", "--json", OPSLOOP_MODEL=str(home / "down.toml")).stdout
    )

    resumed = opsloop(home, "resume", failed["conversation_id"][:8])  # the model is back

    assert resumed.returncode == 0, resumed.stderr
    assert "The sum is 45." in resumed.stdout
    again = opsloop(home, "ask", "and now?", "--conversation", failed["conversation_id"], "--json")
    assert json.loads(again.stdout)["conversation_id"] == failed["conversation_id"]


def test_resume_with_nothing_interrupted_says_so(home: Path) -> None:
    done = opsloop(home, "resume")
    assert done.returncode == 0 and "nothing to resume" in done.stdout


def test_resume_of_an_answered_conversation_says_there_is_nothing_to_do(
    home: Path, jails_work: None
) -> None:
    answered = json.loads(opsloop(home, "ask", "sum?", "--json").stdout)
    done = opsloop(home, "resume", answered["conversation_id"])
    assert done.returncode == 0 and "has nothing to resume" in done.stdout


def test_the_demo_answers_from_what_its_blocks_printed_in_the_sandbox(
    home: Path, jails_work: None
) -> None:
    done = opsloop(home, "demo")

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "logged the most errors" in done.stdout
    assert "answer:" in done.stdout  # the replay was printed
    assert (home / "opsloop.sqlite3").exists()  # the event store the next commands read


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_passes_when_every_part_works(home: Path, jails_work: None) -> None:
    done = opsloop(home, "doctor")
    assert done.returncode == 0, done.stdout
    assert "ok   model: scripted:" in done.stdout and "all good" in done.stdout


def test_doctor_names_a_broken_model_with_its_fix_and_fails(home: Path) -> None:
    done = opsloop(
        home,
        "doctor",
        "--provider",
        "ollama",
        "--model",
        "llama3.1",
        OLLAMA_HOST=f"http://127.0.0.1:{closed_port()}",
    )
    assert done.returncode == 1
    assert "FAIL model: ollama:llama3.1" in done.stdout
    assert "fix: start Ollama" in done.stdout


def test_doctor_names_an_unusable_event_store_with_its_fix(home: Path) -> None:
    done = opsloop(home, "doctor", OPSLOOP_DATABASE_URL="mysql://nope")
    assert done.returncode == 1
    assert "FAIL event store" in done.stdout and "fix:" in done.stdout


def test_resume_leaves_chat_platform_conversations_to_their_own_serve_command(home: Path) -> None:
    from bot.app.application import open_app
    from bot.surface import Coordinates

    app = open_app(database_url=f"sqlite:///{home / 'opsloop.sqlite3'}")
    try:
        cid, _ = app.receive_message(
            coordinates=Coordinates("slack", "T1", "C1", "1.0"),
            message_key="Ev1",
            author="U1",
            text="disk?",
        )
    finally:
        app.close()

    done = opsloop(home, "resume")

    assert done.returncode == 0
    assert (
        "1 interrupted slack conversation(s) resume when `opsloop serve slack` starts"
        in done.stdout
    )
    app = open_app(database_url=f"sqlite:///{home / 'opsloop.sqlite3'}")
    try:
        assert [t["type"] for t in app.timeline(cid)][-1] == "MessageReceived"  # untouched
    finally:
        app.close()


def test_doctor_flags_workspaces_the_jail_user_cannot_reach(home: Path, jails_work: None) -> None:
    from sandbox.layout import JAIL_UID, jail_owner

    if jail_owner()[0] != JAIL_UID:
        pytest.skip("blocks run as this user (not root), so every workspace is reachable")
    private = home / "private"
    private.mkdir(mode=0o700)

    done = opsloop(
        home,
        "doctor",
        OPSLOOP_DATA_DIR=str(private / "data"),
        OPSLOOP_MODEL=str(home / "script.toml"),
    )

    assert done.returncode == 1
    assert "FAIL sandbox: workspaces in" in done.stdout and "OPSLOOP_DATA_DIR" in done.stdout


def test_chat_reads_one_message_per_line_when_stdin_is_not_a_terminal(
    home: Path, jails_work: None
) -> None:
    command = Path(sys.executable).with_name("opsloop")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env.update(
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.toml"),
        COLUMNS="100",
    )

    done = subprocess.run(
        [str(command), "chat", "--new"],
        input="sum of 0..9?\n/cost\n",
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "The sum is 45." in done.stdout
    assert "1 message, 2 model turns" in done.stdout and "1 block" in done.stdout


def test_doctor_says_when_a_server_ignores_stop_sequences(home: Path) -> None:
    import asyncio
    import threading

    from tests.integration.llm_wire import WireServer

    loop = asyncio.new_event_loop()
    server = WireServer()
    url = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        done = opsloop(
            home, "doctor", "--provider", "openai", "--model", "m", OPENAI_BASE_URL=f"{url}/v1"
        )
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    # The stand-in reports 7 completion tokens (within the probe's cap) and ignores stop.
    assert "model bounds: context window not reported by the server" in done.stdout
    assert "honours max_tokens: yes; honours stop sequences: NO" in done.stdout
    stops = [s.body.get("stop") for s in server.seen if s.path.endswith("completions")]
    assert stops[-1] == ["the"]  # a word of the second half of its first reply
