"""``/healthz``, ``/readyz`` and ``/metrics`` of ``opsloop serve slack|discord|sandbox``.

- ``/healthz``: the process is alive and its event loop answers (200, always).
- ``/readyz``: each part it needs answers -- the event store (one query), the sandbox (the
  service's ``/healthz``, or the in-process jail), the model (its heartbeat) -- 200 with
  ``{"ready": true, "checks": {...}}``, or 503 saying which part is not and why. Results
  are kept ``ttl`` seconds, so a probe every few seconds does not ping the model each time.
- ``/metrics``: bot/metrics.py's registry in the Prometheus text format.

Slack's HTTP mode adds these routes to the server of ``/slack/events``; Socket Mode and
Discord, which have no server of their own, serve them on ``--metrics-port``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot import metrics
from bot.errors import one_line

Check = Callable[[], Awaitable[str]]  # what it found; raises when the part is not ready


@dataclass
class Readiness:
    """Named checks, run together with a timeout each, their verdict kept ``ttl`` seconds."""

    checks: dict[str, Check]
    ttl: float = 10.0
    timeout: float = 5.0
    _verdict: tuple[float, bool, dict[str, Any]] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def verdict(self) -> tuple[bool, dict[str, Any]]:
        """(ready, {name: {"ok": bool, "detail": str}})."""
        async with self._lock:
            now = time.monotonic()
            if self._verdict is not None and now - self._verdict[0] < self.ttl:
                return self._verdict[1], self._verdict[2]
            names = list(self.checks)
            found = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
            checks = dict(zip(names, found, strict=True))
            ready = all(c["ok"] for c in checks.values())
            self._verdict = (time.monotonic(), ready, checks)
            return ready, checks

    async def _one(self, check: Check) -> dict[str, Any]:
        try:
            detail = await asyncio.wait_for(check(), self.timeout)
        except TimeoutError:
            return {"ok": False, "detail": f"no answer within {self.timeout:g} s"}
        except Exception as exc:  # noqa: BLE001 - every failure is one sentence here
            return {"ok": False, "detail": one_line(exc)}
        return {"ok": True, "detail": detail}


def routes(readiness: Readiness) -> list[web.RouteDef]:
    """The three routes, to add to a server."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        ready, checks = await readiness.verdict()
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def scrape(_: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", scrape)]


async def start_server(readiness: Readiness, *, host: str, port: int) -> web.AppRunner:
    """Serve the three routes alone on ``host:port`` (``--metrics-port``); the caller cleans
    the runner up."""
    application = web.Application()
    application.add_routes(routes(readiness))
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port).start()
    return runner


def service_readiness(service: Any) -> Readiness:
    """The checks of a chat service (``bot.loop.service.OpsloopService``): its store, its
    sandbox and its model."""
    app, runner = service.app, service.runner

    async def store() -> str:
        version = await asyncio.to_thread(app.schema.version)
        return f"{app.database_url.partition(':')[0] or 'store'} schema v{version}"

    async def sandbox() -> str:
        ping = _find(runner.sandbox, "ping")
        if ping is None:
            return "in process"
        return await ping()

    async def model() -> str:
        ping = getattr(runner.model, "ping", None)
        if ping is None:
            return "no heartbeat for this provider"
        return f"{service.model_name} answered in {await ping():.0f} ms"

    return Readiness({"store": store, "sandbox": sandbox, "model": model})


def _find(sandbox: Any, name: str, *, depth: int = 4) -> Any:
    """``name`` on the sandbox or on the sandbox it wraps (``inner``), if any."""
    for _ in range(depth):
        if sandbox is None:
            return None
        found = getattr(sandbox, name, None)
        if found is not None:
            return found
        sandbox = getattr(sandbox, "inner", None)
    return None
