"""``opsloop serve discord``: start-up errors in one line, and resuming after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.discord import _serve
from bot.errors import ConfigError
from bot.surface import Coordinates, Incoming
from tests.conftest import require_real
from tests.discord_harness import redirected
from tests.discord_standin import BAD_TOKEN, DM_CHANNEL_ID, USER_ID, DiscordStandIn

SCRIPT = """\
turns:
  - |
    Let me compute that in the sandbox.
    <helpers>
    print(6 * 7)
    </helpers>
  - The answer is 42, as the sandbox printed.
"""


def _environment(base: Path, monkeypatch: pytest.MonkeyPatch, *, sandbox: str) -> None:
    data = base / "data"
    data.mkdir(exist_ok=True)
    script = base / "script.yaml"
    script.write_text(SCRIPT, encoding="utf-8")
    monkeypatch.chdir(base)  # no stray ./opsloop.toml or ./.env
    monkeypatch.setenv("OPSLOOP_DATA_DIR", str(data))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", f"sqlite:///{data / 'opsloop.sqlite3'}")
    monkeypatch.setenv("OPSLOOP_PROVIDER", "scripted")
    monkeypatch.setenv("OPSLOOP_MODEL", str(script))
    monkeypatch.setenv("OPSLOOP_SANDBOX", sandbox)


def test_without_discord_token_serve_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env["OPSLOOP_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "serve", "discord"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "opsloop: DISCORD_TOKEN is not set (the bot token from the Developer Portal's Bot page)"
    )


async def test_a_token_discord_refuses_is_one_clear_error(
    jail_reachable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _environment(jail_reachable_dir, monkeypatch, sandbox="unsafe-local")
    monkeypatch.setenv("DISCORD_TOKEN", BAD_TOKEN)
    standin = DiscordStandIn()
    await standin.start()
    try:
        with redirected(standin), pytest.raises(ConfigError, match="Discord refused DISCORD_TOKEN"):
            await asyncio.wait_for(_serve(sharded=False, shard_count=None), timeout=30)
    finally:
        await standin.close()


async def test_after_a_restart_an_interrupted_dm_loop_resumes_and_answers_in_the_dm(
    jail_reachable_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli.bootstrap import build_chat_service, load_settings
    from sandbox.check import diagnose

    diagnosis = await diagnose()
    require_real(diagnosis.jails_work, f"nsjail cannot run here: {diagnosis.problems}")
    _environment(jail_reachable_dir, monkeypatch, sandbox="nsjail")
    monkeypatch.setenv("DISCORD_TOKEN", "test-token")

    # The previous process recorded the DM, then died before running the loop.
    settings, policy = load_settings()
    before = build_chat_service(settings=settings, policy=policy)
    dm = Coordinates("discord", "", DM_CHANNEL_ID, DM_CHANNEL_ID)
    receipt = await before.receive(Incoming(dm, message_key="m-1", author=USER_ID, text="6 * 7?"))
    assert receipt.status == "recorded"

    standin = DiscordStandIn()
    await standin.start()
    try:
        with redirected(standin):
            serving = asyncio.create_task(_serve(sharded=False, shard_count=None))
            try:
                await standin.wait_until(
                    lambda: "The answer is 42, as the sandbox printed." in standin.texts(),
                    timeout=60,
                )
            finally:
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
    finally:
        await standin.close()
    texts = standin.texts(DM_CHANNEL_ID)
    block = next(t for t in texts if t.startswith("**Block 1/1**"))
    assert "```\n42\n```" in block  # run in nsjail by the new process
    assert texts[-1] == "The answer is 42, as the sandbox printed."
    assert DM_CHANNEL_ID in standin.typings
    assert await before.interrupted(platform="discord") == []
