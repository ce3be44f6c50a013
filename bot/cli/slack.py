"""``opsloop serve slack [--http] [--port 3000]``: the Slack surface.

Socket Mode when ``SLACK_APP_TOKEN`` is set (no public URL needed); HTTP mode with
``--http`` on ``/slack/events``, requests verified with ``SLACK_SIGNING_SECRET``. Every Web
API call goes to ``SLACK_API_URL``. Conversations a killed process left running are resumed
at start, and approval requests expire on time while it serves. This module is part of the
composition root, so it may pick the adapter.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

import typer

from bot.cli.options import (
    DISCORD_FIELDS,
    CreateOpt,
    LogFormatOpt,
    ModelOpt,
    ProviderOpt,
    ServeOptions,
    environment_epilog,
)
from bot.errors import ConfigError

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.config import Policy
    from bot.ports import ChatService
    from bot.settings import Settings


def register(serve_app: typer.Typer) -> None:
    """Add this surface's ``serve`` command to ``serve_app``."""
    epilog = environment_epilog(
        without=DISCORD_FIELDS,
        note="SLACK_APP_TOKEN is for Socket Mode, SLACK_SIGNING_SECRET for --http; tools' "
        "${env:VAR} secrets (opsloop.toml) are read too.",
    )

    @serve_app.command("slack", epilog=epilog)
    def serve_slack(
        http: bool = typer.Option(
            False, "--http", help="Serve the Events API over HTTP instead of Socket Mode."
        ),
        port: int = typer.Option(3000, "--port", help="HTTP mode: port to listen on."),
        host: str = typer.Option("0.0.0.0", "--host", help="HTTP mode: address to listen on."),
        metrics_port: int | None = typer.Option(
            None,
            "--metrics-port",
            help="Serve /healthz, /readyz and /metrics on this port (on --host); HTTP mode "
            "also serves them beside /slack/events.",
        ),
        provider: ProviderOpt = None,
        model: ModelOpt = None,
        create: CreateOpt = False,
        log_format: LogFormatOpt = None,
    ) -> None:
        """Answer mentions and DMs in Slack; each thread is one conversation."""
        from bot.cli import logsetup

        logsetup.configure(log_format, level=logging.INFO)
        chosen = ServeOptions(provider=provider, model=model, create=create)
        asyncio.run(
            _serve(http=http, host=host, port=port, chosen=chosen, metrics_port=metrics_port)
        )


async def _serve(
    *, http: bool, host: str, port: int, chosen: ServeOptions, metrics_port: int | None = None
) -> None:
    from adapters.slack.app import SlackSurface
    from adapters.slack.server import build_client, serve_http, serve_socket_mode
    from adapters.slack.tokens import token_problem
    from bot.cli.bootstrap import load_settings
    from bot.cli.checkpoints import checkpoints_every
    from bot.health import routes, service_readiness, start_server

    settings, policy = load_settings()
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the app's xoxb- bot token)")
    if http and not settings.slack_signing_secret:
        raise ConfigError(
            "HTTP mode needs SLACK_SIGNING_SECRET (Basic Information > App Credentials)"
        )
    if not http and not settings.slack_app_token:
        raise ConfigError(
            "set SLACK_APP_TOKEN (an xapp- token with connections:write) for Socket Mode, "
            "or pass --http to receive events over HTTP"
        )
    problem = token_problem(
        bot_token=settings.slack_bot_token, app_token=None if http else settings.slack_app_token
    )
    if problem:
        raise ConfigError(problem)
    service = _build_service(settings=settings, policy=policy, chosen=chosen)
    client = build_client(token=settings.slack_bot_token, base_url=settings.slack_api_url)
    surface = SlackSurface(
        service=service,
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        resume_every=settings.lease_seconds,
        suggested_prompts=policy.slack.suggested_prompts,
    )
    await _check_token(client, url=settings.slack_api_url)
    stop = asyncio.Event()  # SIGTERM/SIGINT: stop taking events, give running loops a grace period
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    readiness = service_readiness(service)
    health = await start_server(readiness, host=host, port=metrics_port) if metrics_port else None
    try:
        async with checkpoints_every(settings, policy):
            if http:
                logging.getLogger(__name__).info(
                    "serving Slack events on http://%s:%d/slack/events", host, port
                )
                await serve_http(surface, host=host, port=port, stop=stop, health=routes(readiness))
            else:
                logging.getLogger(__name__).info("connecting to Slack in Socket Mode")
                await serve_socket_mode(
                    surface, app_token=settings.slack_app_token or "", stop=stop
                )
    finally:
        if health is not None:
            await health.cleanup()


async def _check_token(client: AsyncWebClient, *, url: str) -> None:
    """Fail early, in one sentence, on a bad token or an unreachable ``SLACK_API_URL``."""
    from aiohttp import ClientError
    from slack_sdk.errors import SlackApiError

    try:
        await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN: {exc.response.get('error')}") from None
    except (TimeoutError, ClientError, OSError) as exc:
        raise ConfigError(f"cannot reach Slack's Web API at {url}: {exc}") from None


def _build_service(*, settings: Settings, policy: Policy, chosen: ServeOptions) -> ChatService:
    from bot.cli.bootstrap import build_chat_service

    return build_chat_service(
        settings=settings,
        policy=policy,
        provider=chosen.provider,
        model=chosen.model,
        create=chosen.create,
    )
