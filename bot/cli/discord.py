"""``opsloop serve discord [--shards N|auto]``: the Discord surface.

Reads ``DISCORD_TOKEN``, builds the service in ``bot.cli.bootstrap`` and connects to Discord's
gateway: one connection by default, or discord.py's ``AutoShardedClient`` with ``--shards``.
Discord loops a killed process left unfinished are resumed once connected, so their answers
still arrive in the DM (or thread), and approval requests expire on time while it runs. This
module is part of the composition root, so it may pick the adapter.
"""

from __future__ import annotations

import asyncio
import logging

import typer

from bot.errors import ConfigError


def register(serve_app: typer.Typer) -> None:
    """Add this surface's ``serve`` command to ``serve_app``."""

    @serve_app.command("discord")
    def serve_discord(
        shards: str | None = typer.Option(
            None,
            "--shards",
            help="Run sharded (discord.py's AutoShardedClient): a shard count, or 'auto' "
            "for the count Discord recommends. Needed from 2,500 servers on.",
        ),
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", help="Serve /healthz, /readyz and /metrics on this port."
        ),
        host: str = typer.Option("0.0.0.0", "--host", help="Address of --metrics-port."),
    ) -> None:
        """Answer DMs (and mentions in enabled servers) on Discord."""
        sharded, count = parse_shards(shards)
        from bot.visible import visible_stderr

        log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
        logging.basicConfig(level=logging.INFO, handlers=[visible_stderr(log_format)])
        asyncio.run(_serve(sharded=sharded, shard_count=count, metrics=(host, metrics_port)))


def parse_shards(value: str | None) -> tuple[bool, int | None]:
    """``--shards``: (sharded?, fixed count or None for Discord's recommendation)."""
    if value is None:
        return False, None
    if value.strip().lower() == "auto":
        return True, None
    try:
        count = int(value)
    except ValueError:
        raise ConfigError(f"--shards must be a number or 'auto', not {value!r}") from None
    if count < 1:
        raise ConfigError("--shards must be at least 1")
    return True, count


async def _serve(
    *, sharded: bool, shard_count: int | None, metrics: tuple[str, int | None] = ("", None)
) -> None:
    import aiohttp
    import discord

    from adapters.discord.client import make_client
    from adapters.discord.surface import DiscordSurface
    from bot.cli.bootstrap import build_chat_service, load_settings
    from bot.cli.checkpoints import checkpoints_every
    from bot.health import service_readiness, start_server

    settings, policy = load_settings()
    if not settings.discord_token:
        raise ConfigError(
            "DISCORD_TOKEN is not set (the bot token from the Developer Portal's Bot page)"
        )
    service = build_chat_service(settings=settings, policy=policy)
    surface = DiscordSurface(service=service, mention_guilds=policy.discord.mention_guilds)
    client = make_client(surface, sharded=sharded, shards=shard_count)
    host, port = metrics
    health = await start_server(service_readiness(service), host=host, port=port) if port else None
    try:
        async with client, checkpoints_every(settings, policy):
            await client.start(settings.discord_token)
    except discord.LoginFailure:
        raise ConfigError("Discord refused DISCORD_TOKEN (reset it on the Bot page)") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError("Discord asks for a privileged intent opsloop does not use") from None
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        raise ConfigError(f"cannot reach Discord: {exc}") from None
    finally:
        if health is not None:
            await health.cleanup()
