"""How the Slack surface meets Slack: the Web API client, HTTP mode and Socket Mode."""

from __future__ import annotations

import asyncio

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import SlackSurface

EVENTS_PATH = "/slack/events"


def build_client(*, token: str, base_url: str, rate_limit_retries: int = 5) -> AsyncWebClient:
    """A Web API client on ``base_url`` (``SLACK_API_URL``) that waits out 429s."""
    if not base_url.endswith("/"):
        base_url += "/"  # slack_sdk joins "base_url + method"
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            # Sleeps for the response's Retry-After, then tries again.
            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ],
    )


def web_application(
    surface: SlackSurface, *, health: list[web.RouteDef] | None = None
) -> web.Application:
    """The aiohttp application of HTTP mode: the Events API and interactivity (button clicks,
    ``payload=`` form posts) both on ``/slack/events``, and ``health``'s routes (bot/health.py:
    ``/healthz``, ``/readyz``, ``/metrics``; a bare ``/healthz`` without them).

    Bolt verifies ``X-Slack-Signature`` of both alike and rejects stale timestamps with 401.
    """

    async def events(request: web.Request) -> web.Response:
        """One Events API or interactivity request: verified and acknowledged by the surface."""
        bolt_response = await surface.dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def alive(_: web.Request) -> web.Response:
        """Liveness for load balancers and orchestrators."""
        return web.Response(text="ok")

    application = web.Application()
    application.add_routes(
        [web.post(EVENTS_PATH, events), *(health or [web.get("/healthz", alive)])]
    )
    return application


async def start_http(
    surface: SlackSurface, *, host: str, port: int, health: list[web.RouteDef] | None = None
) -> web.AppRunner:
    """Start serving HTTP mode on ``host:port``; the caller cleans the runner up."""
    runner = web.AppRunner(web_application(surface, health=health), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host=host, port=port).start()
    return runner


async def serve_http(
    surface: SlackSurface,
    *,
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    health: list[web.RouteDef] | None = None,
) -> None:
    """Serve HTTP mode until ``stop`` is set (or the task is cancelled)."""
    runner = await start_http(surface, host=host, port=port, health=health)
    try:
        await surface.resume_interrupted()
        surface.watch_approvals()
        await (stop or asyncio.Event()).wait()
    finally:
        await surface.close()
        await runner.cleanup()


async def serve_socket_mode(
    surface: SlackSurface, *, app_token: str, stop: asyncio.Event | None = None
) -> None:
    """Serve over Socket Mode (no public URL needed) until ``stop`` is set or cancelled."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(surface.app, app_token, web_client=surface.client)
    await handler.connect_async()
    try:
        await surface.resume_interrupted()
        surface.watch_approvals()
        await (stop or asyncio.Event()).wait()
    finally:
        await surface.close()
        await handler.close_async()
