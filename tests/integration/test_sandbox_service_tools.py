# ruff: noqa: F811  (pytest fixtures are imported by name and used as parameters)
"""Runs with tools and mounts through the sandbox service: a real ``opsloop serve sandbox``
with real nsjail, and the client's retry rules against small hand-written services."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sandbox.client import SandboxClient
from sandbox.errors import BadRequest, OutcomeUnknown, SandboxUnavailable
from sandbox.limits import Limits
from sandbox.result import RunResult
from tests.integration.sandbox_fixtures import marker
from tests.integration.sandbox_service_helpers import TOKEN, service_process
from tests.integration.tool_broker_fake import FakeBroker

LIMITS = Limits(wall_seconds=10)
TAGGED = """
import os
os.execv('/usr/bin/python3', [{tag!r}, '-E', '-s', '-S', '-c', '''
import sys, time
sys.path.insert(0, "/opsloop")
import tools
while True:
    tools.noop()
    time.sleep(0.05)
'''])
"""


def tagged(tag: str) -> list[int]:
    """Host processes whose command line carries ``tag``, whatever uid they run as (each
    workspace, and the runs without one, have host uids of their own)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if tag in " ".join(proc.info["cmdline"] or []):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def logs(jail_reachable_dir: Path) -> Path:
    path = jail_reachable_dir / "logs"
    path.mkdir()
    (path / "app.log").write_text("ERROR from the service host\n")
    return path


def config(logs: Path) -> str:
    return f'[sandbox.mounts]\nlogs = "{logs}"\n'


async def test_a_block_calls_tools_through_a_real_service_in_python_and_bash(
    jail_reachable_dir: Path, logs: Path
) -> None:
    broker = FakeBroker()
    async with service_process(jail_reachable_dir, config=config(logs)) as service:
        client = SandboxClient(url=service.url, token=TOKEN)
        try:
            python = await client.run(
                language="python",
                code="import tools\nprint(tools.disk(path='/x'), tools.docs.search(query='q'))",
                limits=LIMITS,
                tools=broker,
            )
            bash = await client.run(
                language="bash",
                code="tool count n=2; tool refused; echo status=$?; head -1 /mnt/logs/app.log",
                limits=LIMITS,
                tools=broker,
                mounts=["logs"],
            )
        finally:
            await client.aclose()
    assert python.stdout == ("disk of /x {'tool': 'docs.search', 'arguments': {'query': 'q'}}\n"), (
        python.stderr
    )
    assert json.loads(bash.stdout.split("status=")[0]) == {"tool": "count", "arguments": {"n": 2}}
    assert bash.stdout.endswith("status=3\nERROR from the service host\n"), bash.stderr
    assert "refused is not allowed" in bash.stderr


async def test_mount_names_go_to_the_service_which_resolves_them_from_its_own_config(
    jail_reachable_dir: Path, logs: Path
) -> None:
    async with service_process(jail_reachable_dir, config=config(logs)) as service:
        client = SandboxClient(url=service.url, token=TOKEN)
        try:
            read = await client.run(
                language="bash", code="cat /mnt/logs/app.log", limits=LIMITS, mounts=["logs"]
            )
            plain = await client.run(language="bash", code="ls /mnt 2>&1", limits=LIMITS)
            for name in ("../../etc", "/etc", "nope"):
                with pytest.raises(BadRequest, match="mount"):
                    await client.run(language="bash", code="true", limits=LIMITS, mounts=[name])
            with pytest.raises(BadRequest, match="unknown mount 'nope'"):
                await client.run(
                    language="bash", code="true", limits=LIMITS, mounts=["nope"], tools=FakeBroker()
                )
        finally:
            await client.aclose()
    assert read.stdout == "ERROR from the service host\n", read.stderr
    assert "No such file" in plain.stdout


async def test_a_caller_that_goes_away_mid_run_gets_its_block_stopped(
    jail_reachable_dir: Path,
) -> None:
    tag = marker()
    request = {
        "language": "python",
        "code": TAGGED.format(tag=tag),
        "limits": {"wall_seconds": 60},
    }
    async with service_process(
        jail_reachable_dir, config="[sandbox]\nwall_seconds = 60\n"
    ) as service:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            ws = await session.ws_connect(f"{service.url}/v1/run/ws")
            await ws.send_bytes(json.dumps(request).encode())
            frames, broker = 0, FakeBroker()
            while frames < 3:  # the block is running and calling
                message = await ws.receive(timeout=20)
                frame = json.loads(message.data)
                assert frame.get("type") == "frame", frame
                frames += 1
                answer = await broker(frame["frame"])
                await ws.send_str(
                    json.dumps({"type": "answer", "id": frame["id"], "frame": answer})
                )
            assert tagged(tag), "the block is not running"
            await ws.close()  # and never come back
            for _ in range(100):
                if not tagged(tag):
                    break
                await asyncio.sleep(0.1)
            assert tagged(tag) == []
            for _ in range(100):  # and its slot is free again once the run is settled
                async with session.get(f"{service.url}/healthz") as response:
                    admitted = (await response.json())["admitted"]
                if admitted == 0:
                    break
                await asyncio.sleep(0.05)
            assert admitted == 0
        log = service.log.read_text()
    assert "a caller went away mid-run: its block was stopped" in log
    assert "Traceback" not in log


async def test_a_wrong_token_on_the_websocket_is_refused_and_not_retried(
    jail_reachable_dir: Path,
) -> None:
    async with service_process(jail_reachable_dir) as service:
        client = SandboxClient(url=service.url, token="wrong")
        try:
            with pytest.raises(SandboxUnavailable, match="token"):
                await client.run(language="python", code="print(1)", tools=FakeBroker())
        finally:
            await client.aclose()


# -- the client's rules, against hand-written services -----------------------------------------


class GatedRunner:
    """A runner that answers one tool frame, then waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0

    async def run(self, *, language, code, limits=None, workspace=None, tools=None, mounts=()):  # type: ignore[no-untyped-def]
        self.calls += 1
        answer = await tools({"op": "call", "tool": "disk", "arguments": {"path": code}})
        await self.gate.wait()
        return RunResult(
            exit_code=0, signal=None, stdout=str(answer["result"]), stderr="", duration_ms=1
        )


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_a_full_queue_answers_429_before_the_upgrade_and_the_client_retries() -> None:
    from sandbox.service import ServiceOptions, make_app

    runner = GatedRunner()
    server = await _serve(make_app(runner=runner, options=ServiceOptions(concurrency=1, queue=0)))
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        first = asyncio.create_task(client.run(language="bash", code="/a", tools=FakeBroker()))
        while runner.calls == 0:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(client.run(language="bash", code="/b", tools=FakeBroker()))
        await asyncio.sleep(0.3)
        runner.gate.set()
        assert (await first).stdout == "disk of /a"
        assert (await second).stdout == "disk of /b"
    finally:
        await client.aclose()
        await server.close()
    assert runner.calls == 2


async def test_a_service_without_the_websocket_endpoint_is_reported_as_too_old() -> None:
    app = web.Application()
    server = await _serve(app)
    client = SandboxClient(url=str(server.make_url("/")), attempts=2)
    try:
        with pytest.raises(SandboxUnavailable, match="upgrade it"):
            await client.run(language="bash", code="true", tools=FakeBroker())
    finally:
        await client.aclose()
        await server.close()


def _scripted_ws(script):  # type: ignore[no-untyped-def]
    """A service whose /v1/run/ws reads the request, then plays ``script(ws)``."""
    calls: list[int] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        calls.append(1)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await script(ws)
        return ws

    app = web.Application()
    app.router.add_get("/v1/run/ws", handler)
    return app, calls


async def test_a_connection_lost_after_the_request_was_sent_is_outcome_unknown_not_retried() -> (
    None
):
    async def drop(ws: web.WebSocketResponse) -> None:
        await ws.close()

    app, calls = _scripted_ws(drop)
    server = await _serve(app)
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        with pytest.raises(OutcomeUnknown, match="mid-run"):
            await client.run(language="bash", code="true", tools=FakeBroker())
    finally:
        await client.aclose()
        await server.close()
    assert calls == [1]


async def test_a_503_after_a_frame_is_outcome_unknown_since_the_block_ran() -> None:
    async def frame_then_503(ws: web.WebSocketResponse) -> None:
        frame = {"op": "call", "tool": "noop", "arguments": {}}
        await ws.send_str(json.dumps({"type": "frame", "id": 1, "frame": frame}))
        await ws.receive()
        await ws.send_str(json.dumps({"type": "error", "status": 503, "error": "gone"}))

    app, calls = _scripted_ws(frame_then_503)
    server = await _serve(app)
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        with pytest.raises(OutcomeUnknown):
            await client.run(language="bash", code="true", tools=FakeBroker())
    finally:
        await client.aclose()
        await server.close()
    assert calls == [1]


async def test_a_broker_that_raises_on_the_client_side_is_answered_as_a_broker_failure() -> None:
    answers: list[dict[str, object]] = []

    async def one_frame(ws: web.WebSocketResponse) -> None:
        frame = {"op": "call", "tool": "boom", "arguments": {}}
        await ws.send_str(json.dumps({"type": "frame", "id": 7, "frame": frame}))
        answers.append(json.loads((await ws.receive()).data))
        result = RunResult(exit_code=0, signal=None, stdout="", stderr="", duration_ms=1)
        await ws.send_bytes(json.dumps(result.to_dict()).encode())
        await ws.send_str('{"type": "done"}')

    app, _ = _scripted_ws(one_frame)
    server = await _serve(app)
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        result = await client.run(language="bash", code="true", tools=FakeBroker())
    finally:
        await client.aclose()
        await server.close()
    assert result.exit_code == 0
    assert answers == [
        {"type": "answer", "id": 7, "frame": {"ok": False, "error": "the tool broker failed"}}
    ]


async def test_the_service_answers_a_block_whose_caller_left_with_a_broker_failure(
    jail_reachable_dir: Path,
) -> None:
    """In-process, to look inside: after the caller leaves, the run's relay refuses at once
    (no frame is sent to nobody), the block is stopped, and no task is left behind."""
    from sandbox.jail import NsjailSandbox
    from sandbox.service import ServiceOptions, make_app
    from sandbox.workspace import Workspaces

    workspaces = Workspaces(
        root=jail_reachable_dir / "ws", quota_bytes=1 << 20, idle_seconds=60, fs="directory"
    )
    sandbox = NsjailSandbox.create(workspaces=workspaces)
    server = await _serve(make_app(runner=sandbox, options=ServiceOptions()))
    tag = marker()
    request = {"language": "python", "code": TAGGED.format(tag=tag), "limits": {"wall_seconds": 9}}
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(server.make_url("/v1/run/ws"))
            await ws.send_str(json.dumps(request))
            first = json.loads((await ws.receive(timeout=20)).data)
            assert first["type"] == "frame"
            await ws.close()  # leave with the frame unanswered
        for _ in range(100):
            if not tagged(tag):
                break
            await asyncio.sleep(0.05)
        assert tagged(tag) == []
        await asyncio.sleep(0.2)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert [t for t in leftover if "run_ws" in repr(t) or "relay" in repr(t)] == []
    finally:
        await server.close()
        await sandbox.aclose()


async def test_a_run_with_tools_goes_over_the_services_unix_socket_too(
    jail_reachable_dir: Path,
) -> None:
    from sandbox.service import ServiceOptions, start_service

    runner = GatedRunner()
    runner.gate.set()
    path = jail_reachable_dir / "sandbox.sock"
    service = await start_service(runner=runner, options=ServiceOptions(), socket_path=path)
    client = SandboxClient(url=f"unix://{path}")
    try:
        result = await client.run(language="bash", code="/over-unix", tools=FakeBroker())
    finally:
        await client.aclose()
        await service.close()
    assert result.stdout == "disk of /over-unix"
