# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Where the sandbox service listens: TCP only with a token, or a 0600 unix socket.

Before issue 9 the service listened on loopback without a token by default, so any local
user could run blocks in any workspace. Most tests serve a fake runner on a real socket;
the command-line ones start ``opsloop serve sandbox`` itself, with real nsjail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.client import SandboxClient
from sandbox.errors import SandboxUnavailable
from sandbox.service import ServiceOptions, start_service
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401
from tests.integration.sandbox_service_helpers import ROOT, TOKEN, FakeRunner


@pytest.fixture
async def runner() -> FakeRunner:
    return FakeRunner()


async def test_a_unix_socket_is_created_0600_and_serves_without_a_token(
    tmp_path: Path, runner: FakeRunner
) -> None:
    path = tmp_path / "sandbox.sock"
    running = await start_service(runner=runner, options=ServiceOptions(), socket_path=path)
    client = SandboxClient(url=f"unix://{path}")
    try:
        info = os.lstat(path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_uid == os.geteuid()
        result = await client.run(language="python", code="print(1)")
    finally:
        await client.aclose()
        await running.close()
    assert result.stdout == "ran print(1)"
    assert not path.exists()  # removed on close


async def test_a_unix_socket_with_a_token_requires_it(tmp_path: Path, runner: FakeRunner) -> None:
    path = tmp_path / "sandbox.sock"
    options = ServiceOptions(token=TOKEN)
    running = await start_service(runner=runner, options=options, socket_path=path)
    without, with_token = (
        SandboxClient(url=f"unix://{path}"),
        SandboxClient(url=f"unix://{path}", token=TOKEN),
    )
    try:
        with pytest.raises(SandboxUnavailable, match="token"):
            await without.run(language="python", code="print(1)")
        assert (await with_token.run(language="python", code="print(2)")).stdout == "ran print(2)"
    finally:
        await without.aclose()
        await with_token.aclose()
        await running.close()


async def test_a_stale_socket_is_replaced_but_a_live_one_or_a_file_is_not(
    tmp_path: Path, runner: FakeRunner
) -> None:
    path = tmp_path / "sandbox.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a service that died
    running = await start_service(runner=runner, options=ServiceOptions(), socket_path=path)
    try:
        with pytest.raises(SandboxUnavailable, match="already listening"):
            await start_service(runner=runner, options=ServiceOptions(), socket_path=path)
    finally:
        await running.close()
    path.write_text("not a socket")
    with pytest.raises(SandboxUnavailable, match="not a socket"):
        await start_service(runner=runner, options=ServiceOptions(), socket_path=path)
    assert path.read_text() == "not a socket"


async def test_tcp_without_a_token_does_not_start(runner: FakeRunner) -> None:
    with pytest.raises(SandboxUnavailable, match="without a token"):
        await start_service(runner=runner, options=ServiceOptions(), host="127.0.0.1", port=0)


async def test_a_client_of_a_missing_unix_socket_reports_the_service_unavailable(
    tmp_path: Path,
) -> None:
    client = SandboxClient(url=f"unix://{tmp_path}/nothing.sock", attempts=2)
    try:
        with pytest.raises(SandboxUnavailable, match="after 2 attempts"):
            await client.run(language="python", code="print(1)")
    finally:
        await client.aclose()


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from bot.cli import main; main()", "serve", "sandbox", *args]


def without_token(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "OPSLOOP_DATA_DIR": str(data_dir)}
    for name in ("OPSLOOP_SANDBOX_TOKEN", "OPSLOOP_SANDBOX_URL", "OPSLOOP_SANDBOX"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])
def test_serve_sandbox_on_tcp_without_a_token_exits_2_with_one_line(
    host: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        serve_command("--host", host, "--port", "1"),
        env=without_token(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("opsloop: refusing to listen on") and done.stderr.count("\n") == 1
    assert "OPSLOOP_SANDBOX_TOKEN" in done.stderr and "--socket" in done.stderr


async def test_serve_sandbox_on_a_unix_socket_needs_no_token_and_runs_real_blocks(
    jail, data_dir: Path
) -> None:
    path = data_dir / "sandbox.sock"
    process = subprocess.Popen(
        serve_command("--socket", str(path)), env=without_token(data_dir), cwd=ROOT
    )
    client = SandboxClient(url=f"unix://{path}")
    try:
        for _ in range(400):
            if path.exists() or process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        result = await client.run(language="bash", code="echo hi from $(id -u)")
    finally:
        await client.aclose()
        process.terminate()
        process.wait(timeout=10)
    assert result.stdout == "hi from 65534\n"
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o777, 0o775])
async def test_a_socket_in_a_directory_others_can_write_is_refused(
    tmp_path: Path, runner: FakeRunner, mode: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)  # without the sticky bit, anyone could swap the socket for their own
    with pytest.raises(SandboxUnavailable, match="can be written by other users"):
        await start_service(
            runner=runner, options=ServiceOptions(), socket_path=shared / "sandbox.sock"
        )
    shared.chmod(mode | stat.S_ISVTX)  # sticky, like /tmp: others cannot remove our file
    running = await start_service(
        runner=runner, options=ServiceOptions(), socket_path=shared / "sandbox.sock"
    )
    await running.close()
