"""``/healthz``, ``/readyz`` and ``/metrics`` on real HTTP servers on loopback.

The chat side (bot/health.py) with the real application on ``memory:`` and a sandbox
client pointed at a port nobody listens on; the sandbox service (sandbox/service.py) with
a runner held at a gate, so its queue can be seen filling and draining.
"""

from __future__ import annotations

import asyncio
import types

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app.application import ConversationApp
from bot.health import Readiness, routes, service_readiness
from bot.providers.scripted import ScriptedModel
from sandbox.client import SandboxClient
from sandbox.result import RunResult
from tests.replicas import metric
from tests.slack_harness import free_port


async def served(application: web.Application) -> TestServer:
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    return server


def chat_service(app: ConversationApp, sandbox: object) -> object:
    """What ``service_readiness`` reads of a chat service: its app, sandbox and model."""
    runner = types.SimpleNamespace(sandbox=sandbox, model=ScriptedModel(["ok"]))
    return types.SimpleNamespace(app=app, runner=runner, model_name="scripted:inline")


async def test_readyz_names_the_unreachable_sandbox_and_healthz_still_answers(
    memory_app: ConversationApp,
) -> None:
    sandbox = SandboxClient(url=f"http://127.0.0.1:{free_port()}")
    application = web.Application()
    application.add_routes(routes(service_readiness(chat_service(memory_app, sandbox))))
    server = await served(application)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url("/healthz")) as alive:
                assert alive.status == 200
            async with session.get(server.make_url("/readyz")) as ready:
                status, body = ready.status, await ready.json()
    finally:
        await server.close()
        await sandbox.aclose()
    assert status == 503 and body["ready"] is False
    assert body["checks"]["store"] == {"ok": True, "detail": "memory schema v4"}
    assert body["checks"]["model"]["ok"] is True
    assert body["checks"]["sandbox"]["ok"] is False
    assert "cannot reach http://127.0.0.1:" in body["checks"]["sandbox"]["detail"]


async def test_a_check_that_hangs_is_not_ready_within_its_timeout() -> None:
    async def hangs() -> str:
        await asyncio.sleep(60)
        return "never"

    async def fine() -> str:
        return "fine"

    ready, checks = await Readiness({"slow": hangs, "fast": fine}, timeout=0.2).verdict()

    assert not ready
    assert checks == {
        "slow": {"ok": False, "detail": "no answer within 0.2 s"},
        "fast": {"ok": True, "detail": "fine"},
    }


async def test_metrics_count_what_the_application_recorded(memory_app: ConversationApp) -> None:
    from bot.surface import Coordinates

    application = web.Application()
    application.add_routes(routes(Readiness({})))
    server = await served(application)
    try:
        async with aiohttp.ClientSession() as session:

            async def scrape() -> str:
                async with session.get(server.make_url("/metrics")) as response:
                    assert response.headers["Content-Type"].startswith("text/plain")
                    return await response.text()

            before = await scrape()
            where = Coordinates("discord", "", "D1", "D1")
            for n in range(3):
                memory_app.receive_message(
                    coordinates=where, message_key=f"m{n}", author="U1", text="hi"
                )
            memory_app.receive_message(coordinates=where, message_key="m0", author="U1", text="hi")
            after = await scrape()
    finally:
        await server.close()
    name = 'opsloop_messages_total{outcome="received",surface="discord"}'
    assert metric(after, name) - metric(before, name) == 3  # the redelivery is not counted
    assert "opsloop_store_conflicts_total" in after and "opsloop_loops_running" in after


class GatedRunner:
    """A sandbox runner (our port) whose runs wait for a gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0

    async def run(self, **_: object) -> RunResult:
        self.calls += 1
        await self.gate.wait()
        return RunResult(exit_code=0, signal=None, stdout="", stderr="", duration_ms=1)


async def test_the_sandbox_service_shows_its_queue_and_is_not_ready_when_full() -> None:
    from sandbox.service import ServiceOptions, make_app

    runner = GatedRunner()
    server = await served(make_app(runner=runner, options=ServiceOptions(concurrency=1, queue=1)))
    client = SandboxClient(url=str(server.make_url("/")))
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, str]:
                async with session.get(server.make_url(path)) as response:
                    return response.status, await response.text()

            runs = [asyncio.create_task(client.run(language="bash", code="true")) for _ in range(2)]
            while runner.calls == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            busy = await get("/metrics")
            not_ready = await get("/readyz")
            runner.gate.set()
            await asyncio.gather(*runs)
            idle = await get("/metrics")
            ready = await get("/readyz")
    finally:
        await client.aclose()
        await server.close()
    assert metric(busy[1], "opsloop_sandbox_queue_depth") == 1
    assert metric(busy[1], "opsloop_sandbox_running") == 1
    assert not_ready[0] == 503 and '"ready": false' in not_ready[1]
    assert metric(idle[1], "opsloop_sandbox_queue_depth") == 0
    assert metric(idle[1], 'opsloop_sandbox_runs_total{outcome="succeeded"}') >= 2
    assert ready[0] == 200
