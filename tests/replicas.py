"""Helpers of the many-process tests: a fresh PostgreSQL database each, the real ``opsloop``
command in child processes, and what a coherent record must look like."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from bot.app.application import open_app
from domain.coherence import incoherence


def opsloop_command() -> str:
    """The ``opsloop`` console script of this interpreter's environment."""
    return str(Path(sys.executable).with_name("opsloop"))


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards)."""
    import psycopg

    name = f"opsloop_r_{uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def environment(url: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``opsloop`` child: this store, the scripted model in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSLOOP_", "SLACK_"))}
    env.update(
        OPSLOOP_DATABASE_URL=url,
        OPSLOOP_DATA_DIR=str(home),
        OPSLOOP_PROVIDER="scripted",
        OPSLOOP_MODEL=str(home / "script.yaml"),
        OPSLOOP_SANDBOX="unsafe-local",
    )
    env.update(extra)
    return env


def start(args: Sequence[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``opsloop ARGS`` in a child process, its output captured."""
    return subprocess.Popen(
        [opsloop_command(), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], *, timeout: float = 240) -> tuple[int, str, str]:
    """Wait for a child; its exit status, stdout and stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def timeline(url: str, cid: str | UUID) -> list[dict[str, Any]]:
    """The recorded events of one conversation, read by a process of our own."""
    app = open_app(database_url=url)
    try:
        return app.timeline(UUID(str(cid)))
    finally:
        app.close()


def assert_coherent_and_verified(url: str, cid: str | UUID, home: Path) -> list[dict[str, Any]]:
    """The record reads as one story, every block has an outcome, and ``audit verify``
    (the real command) passes; returns the events."""
    events = timeline(url, cid)
    assert incoherence((e["type"], e) for e in events) is None
    started = [e["block_id"] for e in events if e["type"] == "BlockStarted"]
    settled = [
        e["block_id"]
        for e in events
        if e["type"] in ("BlockFinished", "BlockRefused", "BlockOutcomeUnknown")
    ]
    assert sorted(started) == sorted(b for b in settled if b in started)
    verified = subprocess.run(
        [opsloop_command(), "audit", "verify", "--all"],
        env=environment(url, home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return events


def json_line(text: str) -> dict[str, Any]:
    """The one JSON object a ``--json`` command printed."""
    value = json.loads(text.strip().splitlines()[-1])
    assert isinstance(value, dict)
    return value


def metric(text: str, name: str) -> float:
    """The sum of a metric's samples in a ``/metrics`` text (0 when absent)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name}{{", f"{name} "))
    )
