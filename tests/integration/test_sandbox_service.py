# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""The sandbox service and its client over real HTTP on loopback.

Most tests serve a hand-written fake runner (the HTTP contract is what is tested); one runs
the real nsjail sandbox behind the service end to end.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sandbox.client import SandboxClient
from sandbox.errors import BadRequest, OutcomeUnknown, SandboxUnavailable
from sandbox.limits import Limits
from sandbox.service import ServiceOptions, check_bind, make_app
from tests.integration.sandbox_fixtures import data_dir, jail, workspaces  # noqa: F401
from tests.integration.sandbox_service_helpers import TOKEN, FakeRunner


async def serve(runner, **options) -> TestServer:  # type: ignore[no-untyped-def]
    server = TestServer(
        make_app(runner=runner, options=ServiceOptions(**options)), host="127.0.0.1"
    )
    await server.start_server()
    return server


@pytest.fixture
async def client_and_runner() -> AsyncIterator[tuple[SandboxClient, FakeRunner]]:
    runner = FakeRunner()
    server = await serve(runner, token=TOKEN)
    client = SandboxClient(url=str(server.make_url("/")), token=TOKEN)
    yield client, runner
    await client.aclose()
    await server.close()


async def test_the_client_runs_a_block_through_the_service(client_and_runner) -> None:
    client, runner = client_and_runner
    limits = Limits(wall_seconds=3, memory_mb=64)
    result = await client.run(language="python", code="print(1)", limits=limits, workspace="w1")
    assert result.stdout == "ran print(1)"
    assert runner.calls == [
        {"language": "python", "code": "print(1)", "limits": limits, "workspace": "w1"}
    ]


async def test_bad_requests_come_back_as_bad_request(client_and_runner) -> None:
    client, _ = client_and_runner
    with pytest.raises(BadRequest, match="unknown language"):
        await client.run(language="cobol", code="x")


async def test_a_wrong_token_is_refused_and_not_retried() -> None:
    runner = FakeRunner()
    server = await serve(runner, token=TOKEN)
    client = SandboxClient(url=str(server.make_url("/")), token="wrong")
    try:
        with pytest.raises(SandboxUnavailable, match="token"):
            await client.run(language="python", code="print(1)")
    finally:
        await client.aclose()
        await server.close()
    assert runner.calls == []


async def test_a_full_queue_answers_429_with_retry_after_and_the_client_retries() -> None:
    gate = asyncio.Event()
    runner = FakeRunner(gate=gate)
    server = await serve(runner, concurrency=1, queue=0)
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        first = asyncio.create_task(client.run(language="python", code="first"))
        while not runner.calls:
            await asyncio.sleep(0.01)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                server.make_url("/v1/run"), json={"language": "python", "code": "second"}
            ) as response,
        ):
            assert response.status == 429 and response.headers["Retry-After"] == "1"
        second = asyncio.create_task(client.run(language="python", code="second"))
        await asyncio.sleep(0.2)
        gate.set()  # the first block finishes; the client's retry of the second gets in
        assert (await first).stdout == "ran first"
        assert (await second).stdout == "ran second"
    finally:
        await client.aclose()
        await server.close()
    assert [c["code"] for c in runner.calls] == ["first", "second"]


async def test_oversized_requests_are_refused() -> None:
    server = await serve(FakeRunner(), max_body_bytes=1024)
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        with pytest.raises(BadRequest, match="larger"):
            await client.run(language="python", code="x" * 4096)
    finally:
        await client.aclose()
        await server.close()


async def test_connection_refused_is_retried_then_reported_as_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SandboxClient(url=f"http://127.0.0.1:{port}", attempts=3)
    with pytest.raises(SandboxUnavailable, match="after 3 attempts"):
        await client.run(language="python", code="print(1)")
    await client.aclose()


async def test_a_connection_dropped_mid_request_is_not_retried() -> None:
    hits = []

    async def drop(request: web.Request) -> web.StreamResponse:
        hits.append(1)
        assert request.transport is not None
        request.transport.close()  # the block may have run: the client must not run it again
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/run", drop)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        with pytest.raises(OutcomeUnknown, match="may have run"):
            await client.run(language="python", code="print(1)")
    finally:
        await client.aclose()
        await server.close()
    assert hits == [1]


async def test_a_server_error_is_not_retried() -> None:
    hits = []

    async def fail(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.router.add_post("/v1/run", fail)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        with pytest.raises(OutcomeUnknown):
            await client.run(language="python", code="print(1)")
    finally:
        await client.aclose()
        await server.close()
    assert hits == [1]


async def test_healthz_answers_without_a_token() -> None:
    server = await serve(FakeRunner(), token=TOKEN)
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/healthz")) as response,
    ):
        assert response.status == 200 and (await response.json())["ok"] is True
    await server.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "::1", "localhost"])
def test_the_service_refuses_any_tcp_address_without_a_token(host: str) -> None:
    with pytest.raises(SandboxUnavailable, match="without a token"):
        check_bind(host=host, token=None)
    with pytest.raises(SandboxUnavailable, match="without a token"):
        check_bind(host=host, token="")
    check_bind(host=host, token="t")


async def test_a_real_jail_behind_the_service_runs_a_block(jail) -> None:
    server = await serve(jail, token=TOKEN)
    client = SandboxClient(url=str(server.make_url("/")), token=TOKEN)
    try:
        result = await client.run(
            language="bash", code="echo hi from $(id -u)", limits=Limits(wall_seconds=5)
        )
    finally:
        await client.aclose()
        await server.close()
    assert result.stdout == "hi from 65534\n" and result.exit_code == 0


@pytest.mark.parametrize(
    ("stdout", "streamed"), [("short", False), ("é" * 40_000, True)], ids=["short", "long"]
)
async def test_a_short_result_comes_with_its_length_and_a_long_one_streamed(
    stdout: str, streamed: bool
) -> None:
    server = await serve(FakeRunner(stdout=stdout), token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    client = SandboxClient(url=str(server.make_url("/")), token=TOKEN)
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            body = {"language": "python", "code": "print(1)"}
            async with session.post(server.make_url("/v1/run"), json=body) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "application/json; charset=utf-8"
                assert ("Transfer-Encoding" in response.headers) is streamed
                assert (response.content_length is None) is streamed
                assert (await response.json())["stdout"] == stdout
        result = await client.run(language="python", code="print(1)")
    finally:
        await client.aclose()
        await server.close()
    assert result.stdout == stdout
