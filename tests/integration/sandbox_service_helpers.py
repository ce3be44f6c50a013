"""Shared parts of the sandbox service tests: a fake runner, raw HTTP, a real service process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sandbox.errors import BadRequest
from sandbox.result import RunResult

TOKEN = "test-token"
ROOT = Path(__file__).resolve().parents[2]


class FakeRunner:
    """Records calls; optionally waits on a gate so the queue can be filled."""

    def __init__(self, *, gate: asyncio.Event | None = None, stdout: str | None = None) -> None:
        self.calls: list[dict[str, object]] = []
        self.gate = gate
        self.stdout = stdout

    async def run(self, *, language, code, limits=None, workspace=None):  # type: ignore[no-untyped-def]
        self.calls.append(
            {"language": language, "code": code, "limits": limits, "workspace": workspace}
        )
        if self.gate is not None:
            await self.gate.wait()
        if language not in ("python", "bash"):
            raise BadRequest(f"unknown language {language!r}")
        stdout = self.stdout if self.stdout is not None else f"ran {code}"
        return RunResult(exit_code=0, signal=None, stdout=stdout, stderr="", duration_ms=1)


def post(body: bytes, *, authorization: bytes | None = b"Bearer " + TOKEN.encode()) -> bytes:
    """A raw ``POST /v1/run`` that asks the server to close the connection after answering."""
    auth = b"Authorization: " + authorization + b"\r\n" if authorization is not None else b""
    return (
        b"POST /v1/run HTTP/1.1\r\nHost: sandbox\r\n" + auth + b"Content-Type: application/json"
        b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    )


async def exchange(port: int, request: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send raw bytes, read to EOF; the status and the whole response (head and body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return int(data.split(b" ", 2)[1]), data


def free_port() -> int:
    """A TCP port nobody listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    """A real ``opsloop serve sandbox`` in its own process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"

    def status(self, field: str) -> int:
        """A kB field of /proc/<pid>/status (VmHWM, VmRSS)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


def _open_files(limit: int | None) -> Callable[[], None] | None:
    if limit is None:
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextlib.asynccontextmanager
async def service_process(
    data_dir: Path, *args: str, config: str = "", open_files: int | None = None
) -> AsyncIterator[ServiceProcess]:
    """Start ``opsloop serve sandbox`` on a free loopback port with TOKEN; stop it after."""
    port = free_port()
    (data_dir / "opsloop.toml").write_text(config)
    env = {
        **os.environ,
        "OPSLOOP_DATA_DIR": str(data_dir),
        "OPSLOOP_CONFIG": str(data_dir / "opsloop.toml"),
        "OPSLOOP_SANDBOX_TOKEN": TOKEN,
    }
    env.pop("OPSLOOP_SANDBOX_URL", None)
    env.pop("OPSLOOP_SANDBOX", None)
    log = data_dir / "service.log"
    argv = [sys.executable, "-c", "from bot.cli import main; main()", "serve", "sandbox"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*argv, "--port", str(port), *args],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_open_files(open_files),
        )
    service = ServiceProcess(process=process, port=port, log=log)
    try:
        await _wait_healthy(service)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_healthy(service: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            if service.process.poll() is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{service.url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise AssertionError(f"the service did not start: {service.log.read_text()[-2000:]}")
