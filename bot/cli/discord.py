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
from typing import Annotated

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


def register(serve_app: typer.Typer, app: typer.Typer | None = None) -> None:
    """Add this surface's ``serve`` command to ``serve_app``, and ``opsloop discord …`` to
    ``app``."""
    if app is not None:
        discord_app = typer.Typer(help="Set up the Discord surface.", no_args_is_help=True)
        app.add_typer(discord_app, name="discord")
        discord_app.command("register-commands")(register_commands)

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
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", help="Serve /healthz, /readyz and /metrics on this port."
        ),
        host: str = typer.Option("0.0.0.0", "--host", help="Address of --metrics-port."),
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
        metrics = (host, metrics_port)
        asyncio.run(_serve(sharded=sharded, shard_count=count, chosen=chosen, metrics=metrics))


def register_commands(
    guild: Annotated[
        list[str] | None,
        typer.Option(
            "--guild",
            help="A server id to register the commands in (repeatable; default: every "
            "server of [discord] mention_guilds).",
        ),
    ] = None,
) -> None:
    """Register the slash commands /ask, /stop, /cost, /replay and /new in servers.

    Per server, so they show at once (global commands take up to an hour). Reads
    DISCORD_TOKEN; needs the bot invited with the applications.commands scope."""
    from bot.cli.bootstrap import load_settings

    settings, policy = load_settings()
    ids = parse_guilds(guild or policy.discord.mention_guilds)
    if not settings.discord_token:
        raise ConfigError(
            "DISCORD_TOKEN is not set (the bot token from the Developer Portal's Bot page)"
        )
    names = asyncio.run(register_in(settings.discord_token, ids))
    print(f"registered /{', /'.join(names)} in {len(ids)} server(s)")


def parse_guilds(values: list[str]) -> list[int]:
    """Server ids as numbers; none, or one that is not a number, is a one-line error."""
    if not values:
        raise ConfigError("name a server: --guild ID, or list it in [discord] mention_guilds")
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"a server id is a number, not one of {values!r}") from None


async def register_in(token: str, guild_ids: list[int]) -> list[str]:
    """Log in over REST only (no gateway) and register the commands in each server."""
    import discord

    from adapters.discord.slash import command_tree, register

    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token)
        return await register(command_tree(client, None), guild_ids)
    except discord.LoginFailure:
        raise ConfigError("Discord refused DISCORD_TOKEN (reset it on the Bot page)") from None
    except discord.Forbidden as exc:
        raise ConfigError(
            f"Discord refused to register commands ({exc.text}); invite the bot with the "
            "applications.commands scope"
        ) from None
    finally:
        await client.close()


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
    *,
    sharded: bool,
    shard_count: int | None,
    chosen: ServeOptions | None = None,
    metrics: tuple[str, int | None] = ("", None),
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
