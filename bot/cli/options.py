"""Options several commands share, each defined once: the model, ``--create``, and the list of
environment variables a ``serve`` command reads (its help's epilog)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Annotated

import typer

from bot.settings import env_names

ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider",
        metavar="PROVIDER",
        help="ollama | openai | groq | scripted (default: OPSLOOP_PROVIDER, else ollama).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="MODEL",
        help="Model name; for scripted, a script file or demo, the built-in demo model.",
    ),
]
CreateOpt = Annotated[
    bool,
    typer.Option(
        "--create",
        help="Create the SQLite event store's directory when it does not exist (the default "
        "data directory is always created).",
    ),
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        metavar="FORMAT",
        help="text or json (one object per line); default: opsloop --log-format's.",
    ),
]


@dataclass(frozen=True)
class ServeOptions:
    """What a ``serve`` command passes on to the service it builds."""

    provider: str | None = None
    model: str | None = None
    create: bool = False


# Fields of bot.settings.Settings that belong to one surface only.
SLACK_FIELDS = ("slack_bot_token", "slack_signing_secret", "slack_app_token", "slack_api_url")
DISCORD_FIELDS = ("discord_token",)


def environment_epilog(
    *, only: tuple[str, ...] = (), without: tuple[str, ...] = (), note: str = ""
) -> str:
    """The help epilog naming the environment variables a command reads."""
    names = ", ".join(env_names(only=only, without=without))
    listed = "\n".join(textwrap.wrap(names, width=76, break_on_hyphens=False))
    extra = f"\n\n{note}" if note else ""
    return f"Environment variables it reads (a .env file here counts too):\n\n{listed}{extra}"
