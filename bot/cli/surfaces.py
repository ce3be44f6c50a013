"""``opsloop serve slack`` and ``opsloop serve discord``: each surface registers its own."""

from __future__ import annotations

import typer

from bot.cli import discord as cli_discord
from bot.cli import slack as cli_slack


def register(serve_app: typer.Typer, app: typer.Typer | None = None) -> None:
    """Add the chat surfaces' serve commands to ``serve_app`` (and their set-up commands,
    such as ``opsloop discord register-commands``, to ``app``)."""
    cli_slack.register(serve_app)
    cli_discord.register(serve_app, app)
