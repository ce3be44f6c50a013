"""Serving processes write checkpoints on time: into the data directory, or to ``[audit]
publish``; each verifies the store it was taken of; and the Ed25519 signature of one can be
checked with the public key alone."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

from bot.app.application import open_app
from bot.audit.checkpoint import public_key_of
from bot.cli.checkpoints import checkpoints_every
from bot.config import AuditPolicy, Policy
from bot.settings import Settings
from tests.integration.audit_helpers import KEY, KEY_B64, run_audit
from tests.integration.test_event_store import conversation


def keyed(url: str) -> None:
    app = open_app(database_url=url, audit_key=KEY)
    try:
        conversation(app)
    finally:
        app.close()


async def test_a_serving_process_writes_checkpoints_into_the_data_dir(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    keyed(url)
    settings = Settings(database_url=url, audit_key=KEY_B64, data_dir=tmp_path)
    policy = Policy(audit=AuditPolicy(checkpoint_minutes=0.005))  # every 0.3 s
    async with checkpoints_every(settings, policy):
        for _ in range(100):
            await asyncio.sleep(0.1)
            if len(list((tmp_path / "checkpoints").glob("*.json"))) >= 2:
                break
    written = sorted((tmp_path / "checkpoints").glob("checkpoint-*.json"))
    assert len(written) >= 2
    result = run_audit(url, "audit", "verify", "--all", "--against", str(written[-1]))
    assert result.returncode == 0, result.stderr


async def test_a_serving_process_hands_checkpoints_to_the_publish_command(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    keyed(url)
    out = tmp_path / "published.json"
    command = [sys.executable, "-c", f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"]
    settings = Settings(database_url=url, audit_key=KEY_B64, data_dir=tmp_path)
    policy = Policy(audit=AuditPolicy(checkpoint_minutes=0.005, publish=command))
    async with checkpoints_every(settings, policy):
        for _ in range(100):
            await asyncio.sleep(0.1)
            if out.exists() and out.stat().st_size:
                break
    assert json.loads(out.read_text())["events"] == 6
    assert not (tmp_path / "checkpoints").exists()


def test_without_an_audit_key_no_checkpoint_task_runs(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/e.sqlite3", data_dir=tmp_path)
    policy = Policy(audit=AuditPolicy(checkpoint_minutes=0.001))

    async def serve_briefly() -> None:
        async with checkpoints_every(settings, policy):
            await asyncio.sleep(0.3)

    asyncio.run(serve_briefly())
    assert not (tmp_path / "checkpoints").exists()


def test_an_ed25519_signed_checkpoint_checks_with_the_public_key_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    keyed(url)
    seed = b"e" * 32
    signing = base64.b64encode(seed).decode()
    path = tmp_path / "cp.json"
    done = run_audit(
        url, "audit", "checkpoint", "--out", str(path), OPSLOOP_AUDIT_SIGNING_KEY=signing
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(path.read_text())
    assert body["ed25519_public_key"] == public_key_of(seed)
    pinned = public_key_of(seed)
    ok = run_audit(url, "audit", "verify", "--all", "--against", str(path), "--public-key", pinned)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    other = public_key_of(b"x" * 32)  # an attacker re-signing with a key of their own
    bad = run_audit(url, "audit", "verify", "--all", "--against", str(path), "--public-key", other)
    assert bad.returncode == 1 and "its signature does not hold" in bad.stdout
