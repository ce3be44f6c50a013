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

from bot.cli.options import (
    SLACK_FIELDS,
    CreateOpt,
    LogFormatOpt,
    ModelOpt,
    ProviderOpt,
    ServeOptions,
    environment_epilog,
)
from bot.errors import ConfigError


def register(serve_app: typer.Typer) -> None:
    """Add this surface's ``serve`` command to ``serve_app``."""

    epilog = environment_epilog(
        without=SLACK_FIELDS, note="Tools' ${env:VAR} secrets (opsloop.toml) are read too."
    )

    @serve_app.command("discord", epilog=epilog)
    def serve_discord(
        shards: str | None = typer.Option(
            None,
            "--shards",
            metavar="N|auto",
            help="Run sharded (discord.py's AutoShardedClient): a shard count, or 'auto' "
            "for the count Discord recommends. Needed from 2,500 servers on.",
        ),
        provider: ProviderOpt = None,
        model: ModelOpt = None,
        create: CreateOpt = False,
        log_format: LogFormatOpt = None,
    ) -> None:
        """Answer DMs (and mentions in enabled servers) on Discord."""
        from bot.cli import logsetup

        sharded, count = parse_shards(shards)
        logsetup.configure(log_format, level=logging.INFO)
        chosen = ServeOptions(provider=provider, model=model, create=create)
        asyncio.run(_serve(sharded=sharded, shard_count=count, chosen=chosen))


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
    *, sharded: bool, shard_count: int | None, chosen: ServeOptions | None = None
) -> None:
    import aiohttp
    import discord

    from adapters.discord.client import make_client
    from adapters.discord.surface import DiscordSurface
    from bot.cli.bootstrap import build_chat_service, load_settings

    settings, policy = load_settings()
    if not settings.discord_token:
        raise ConfigError(
            "DISCORD_TOKEN is not set (the bot token from the Developer Portal's Bot page)"
        )
    chosen = chosen or ServeOptions()
    service = build_chat_service(
        settings=settings,
        policy=policy,
        provider=chosen.provider,
        model=chosen.model,
        create=chosen.create,
    )
    surface = DiscordSurface(service=service, mention_guilds=policy.discord.mention_guilds)
    client = make_client(surface, sharded=sharded, shards=shard_count)
    try:
        async with client:
            await client.start(settings.discord_token)
    except discord.LoginFailure:
        raise ConfigError("Discord refused DISCORD_TOKEN (reset it on the Bot page)") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError("Discord asks for a privileged intent opsloop does not use") from None
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        raise ConfigError(f"cannot reach Discord: {exc}") from None
