# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Idle, slow and numerous connections against a real ``opsloop serve sandbox`` process.

The attacker has no token: it opens sockets and sends nothing, or half a request head,
or requests that are refused. None of that may keep a caller with the token waiting, and
the service closes such connections by itself after its (here shortened) deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import pytest

from sandbox.client import SandboxClient
from sandbox.limits import Limits
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401
from tests.integration.sandbox_service_helpers import (
    TOKEN,
    ServiceProcess,
    exchange,
    post,
    service_process,
)

QUICK = ("--head-timeout", "1", "--idle-timeout", "2", "--body-timeout", "1")
IDLE = 300
HALF_HEADS = 40
PROMPT_SECONDS = 5.0  # generous: the machine is shared, a block takes ~40 ms


Attacker = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_attackers(port: int) -> list[Attacker]:
    """IDLE sockets that send nothing and HALF_HEADS that send half a request head."""
    sockets = []
    for index in range(IDLE + HALF_HEADS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if index >= IDLE:
            writer.write(b"POST /v1/run HTTP/1.1\r\nHost: sandbox\r\nContent-Le")
        sockets.append((reader, writer))
    return sockets


async def closed_by_server(attacker: Attacker, *, within: float) -> bool:
    """Did the server close this socket (EOF or reset) within ``within`` seconds?"""
    reader, _ = attacker
    try:
        async with asyncio.timeout(within):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def timed_run(service: ServiceProcess) -> float:
    client = SandboxClient(url=service.url, token=TOKEN, attempts=1)
    try:
        start = time.monotonic()
        result = await client.run(language="python", code="print(6 * 7)", limits=Limits())
        elapsed = time.monotonic() - start
    finally:
        await client.aclose()
    assert result.stdout == "42\n", result
    return elapsed


def close_all(attackers: list[Attacker]) -> None:
    for _, writer in attackers:
        with contextlib.suppress(Exception):
            writer.close()


@pytest.mark.parametrize("open_files", [None, 256], ids=["default fd limit", "256 fds"])
async def test_idle_and_half_sent_sockets_neither_starve_a_caller_with_the_token_nor_stay_open(
    jail, data_dir: Path, open_files: int | None
) -> None:
    async with service_process(data_dir, *QUICK, open_files=open_files) as service:
        attackers = await open_attackers(service.port)
        try:
            assert await timed_run(service) < PROMPT_SECONDS
            closed = await asyncio.gather(*(closed_by_server(a, within=8) for a in attackers))
        finally:
            close_all(attackers)
        assert all(closed), f"{closed.count(False)} attacker sockets still open"
        assert await timed_run(service) < PROMPT_SECONDS


async def test_a_flood_of_connections_over_the_cap_evicts_idle_ones_not_the_caller(
    jail, data_dir: Path
) -> None:
    slow = ("--head-timeout", "60", "--max-connections", "50")
    async with service_process(data_dir, *slow) as service:
        attackers = await open_attackers(service.port)  # 340 sockets against a cap of 50
        try:
            assert await timed_run(service) < PROMPT_SECONDS
            closed = await asyncio.gather(*(closed_by_server(a, within=2) for a in attackers))
        finally:
            close_all(attackers)
        assert closed.count(True) >= IDLE + HALF_HEADS - 50  # evicted, long before 60 s
        assert "closing the oldest idle ones" in service.log.read_text()


async def test_sockets_sending_huge_unfinished_heads_are_closed_before_they_cost_memory(
    jail, data_dir: Path
) -> None:
    # 127 header lines of 8000 bytes: under aiohttp's own limits, about 1 MiB buffered per
    # socket until the head deadline (300 such sockets grew the service by 596 MiB).
    head = b"POST /v1/run HTTP/1.1\r\nHost: sandbox\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (index, b"a" * 8000) for index in range(127)
    )
    async with service_process(data_dir, "--head-timeout", "60") as service:
        before = service.status("VmRSS")
        attackers = []
        try:
            for _ in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
                writer.write(head)
                attackers.append((reader, writer))
            closed = await asyncio.gather(*(closed_by_server(a, within=5) for a in attackers))
            grown = service.status("VmRSS") - before
            assert await timed_run(service) < PROMPT_SECONDS
        finally:
            close_all(attackers)
    assert all(closed), f"{closed.count(False)} sockets with huge heads still open"
    assert grown < 32 * 1024, f"the service grew {grown / 1024:.0f} MiB"


async def test_the_service_raises_its_open_files_limit_to_the_hard_limit(
    jail, data_dir: Path
) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    async with service_process(data_dir) as service:
        limits = Path(f"/proc/{service.process.pid}/limits").read_text()
    line = next(row for row in limits.splitlines() if row.startswith("Max open files"))
    assert line.split()[3] == (str(hard) if hard != resource.RLIM_INFINITY else "unlimited")


async def test_a_body_that_stalls_gets_a_408_and_its_connection_closed(
    jail, data_dir: Path
) -> None:
    async with service_process(data_dir, *QUICK) as service:
        head = post(b"")[: -len(b"Content-Length: 0\r\nConnection: close\r\n\r\n")]
        start = time.monotonic()
        status, _ = await exchange(
            service.port, head + b'Content-Length: 100\r\n\r\n{"language":', timeout=10
        )
        assert status == 408 and time.monotonic() - start < 6


async def test_refused_requests_do_not_keep_their_connections(jail, data_dir: Path) -> None:
    async with service_process(data_dir, *QUICK) as service:
        # Three keep-alive requests without a token, sent in one write; read whatever comes
        # back until the server closes (a close with requests unread may arrive as a reset).
        requests = b"GET /healthz HTTP/1.1\r\nHost: sandbox\r\n\r\n" * 3
        data = await asyncio.to_thread(read_until_closed, service.port, requests)
        assert data.count(b"HTTP/1.1 200") == 1  # answered once, then closed


def read_until_closed(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection (EOF or reset)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


async def read_one_response(reader: asyncio.StreamReader) -> bytes:
    """One response of a short result: its head, then the ``Content-Length`` bytes of its body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), 10)


async def test_a_caller_with_the_token_keeps_its_connection_between_blocks(
    jail, data_dir: Path
) -> None:
    request = post(b'{"language":"bash","code":"echo hi"}').replace(
        b"Connection: close", b"Connection: keep-alive"
    )
    async with service_process(data_dir, *QUICK) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        try:
            for _ in range(3):
                writer.write(request)
                assert b'"stdout":"hi\\n"' in await read_one_response(reader)
                await asyncio.sleep(1.5)  # longer than the head deadline, within the idle one
        finally:
            writer.close()
