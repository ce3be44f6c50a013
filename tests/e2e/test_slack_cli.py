"""``opsloop serve slack`` as a user runs it, in both modes, against the Web API stand-in.

The real command in a child process: scripted model, SQLite, nsjail, environment variables
as the README lists them. SIGTERM ends it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import require_real
from tests.slack_harness import SECRET, free_port
from tests.slack_standin import EventSender, SlackStandIn, envelope, mention

SCRIPT = """\
turns:
  - |
    <helpers>
    print(6 * 7)
    </helpers>
  - The answer is 42.
"""


@pytest.fixture
def work(jail_reachable_dir: Path) -> Path:
    """A directory the jail user can reach, with the model's script."""
    (jail_reachable_dir / "script.yaml").write_text(SCRIPT, encoding="utf-8")
    return jail_reachable_dir


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    """The Web API stand-in."""
    standin = SlackStandIn()
    await standin.start()
    yield standin
    await standin.stop()


async def _nsjail_works() -> None:
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")


def _serve(*args: str, work: Path, slack: SlackStandIn, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSLOOP_"))},
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_API_URL": slack.base_url,
        "OPSLOOP_PROVIDER": "scripted",
        "OPSLOOP_MODEL": str(work / "script.yaml"),
        "OPSLOOP_DATA_DIR": str(work),
        "OPSLOOP_DATABASE_URL": f"sqlite:///{work / 'opsloop.sqlite3'}",
        **env,
    }
    opsloop = str(Path(sys.executable).parent / "opsloop")
    return subprocess.Popen(
        [opsloop, "serve", "slack", *args],
        env=environment,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = await asyncio.to_thread(process.communicate, timeout=30)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_serve_slack_http_answers_a_signed_mention_and_stops_on_sigterm(
    work: Path, slack: SlackStandIn
) -> None:
    await _nsjail_works()
    port = free_port()
    process = _serve(
        "--http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        work=work,
        slack=slack,
        SLACK_SIGNING_SECRET=SECRET,
    )
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        async with EventSender(url=url, secret=SECRET) as events:
            body = envelope(mention(channel="C1", ts="1.1", text="6 * 7?"), event_id="Ev1")
            assert (await events.send(body))[0] == 200
            assert (await events.send(body, secret="wrong"))[0] == 401
        await slack.wait_for(lambda: "white_check_mark" in slack.reactions("C1", "1.1"), timeout=60)
        assert "42" in slack.thread_text("C1", "1.1")
        assert "The answer is 42." in slack.streams_in("C1", "1.1")
    finally:
        output = await _stop(process)
    assert "Traceback" not in output


async def test_serve_slack_uses_socket_mode_when_the_app_token_is_set(
    work: Path, slack: SlackStandIn
) -> None:
    await _nsjail_works()
    process = _serve(work=work, slack=slack, SLACK_APP_TOKEN="xapp-test")
    try:
        body = envelope(mention(channel="C2", ts="2.1", text="6 * 7?"), event_id="Ev2")
        await slack.push_event(body, envelope_id="env-1")
        await slack.wait_for(lambda: "env-1" in slack.socket_acks, timeout=30)
        await slack.wait_for(lambda: "white_check_mark" in slack.reactions("C2", "2.1"), timeout=60)
        assert "The answer is 42." in slack.streams_in("C2", "2.1")
    finally:
        output = await _stop(process)
    assert "Traceback" not in output


def test_serve_slack_without_tokens_says_what_to_set_in_one_line(work: Path) -> None:
    opsloop = str(Path(sys.executable).parent / "opsloop")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSLOOP_"))}
    done = subprocess.run(
        [opsloop, "serve", "slack"],
        env={**env, "SLACK_BOT_TOKEN": "xoxb-x"},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "SLACK_APP_TOKEN" in done.stderr
