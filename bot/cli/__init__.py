"""The ``opsloop`` command line: the composition root for terminal use.

Each group of commands lives in its own module and registers itself here. ``main``
turns every error of opsloop's own into one line on stderr and a non-zero exit status,
never a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from bot.cli import audit as cli_audit
from bot.cli import db as cli_db
from bot.cli import log as cli_log
from bot.cli import logsetup
from bot.cli import loop as cli_loop
from bot.cli import sandbox as cli_sandbox
from bot.cli import surfaces as cli_surfaces
from bot.cli import tools as cli_tools
from bot.cli import usage as cli_usage
from bot.cli.help import TidyTyper
from bot.errors import OpsloopError
from bot.visible import VisibleFormatter, visible

app = TidyTyper(
    name="opsloop",
    help="An event-sourced chat-ops bot: a model answers, runs code in an nsjail sandbox, "
    "and every step is an auditable event.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
serve_app = typer.Typer(help="Run a long-lived service.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


def version() -> str:
    """The installed opsloop's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("opsloop")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"opsloop {version()}")
        raise typer.Exit()


@app.callback()
def root(
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            metavar="FORMAT",
            help="text (one line per record) or json (one object per line).",
        ),
    ] = "text",
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options of every command."""
    logsetup.configure(log_format)


cli_log.register(app)
cli_audit.register(app)
cli_db.register(app)
cli_sandbox.register(app, serve_app)
cli_loop.register(app)
cli_surfaces.register(serve_app, app)
cli_tools.register(app)
cli_usage.register(app)


def main() -> None:
    """Entry point of the ``opsloop`` console script."""
    from sandbox.errors import SandboxError

    if logging.lastResort is not None:  # a record logged before the handler is set up
        logging.lastResort.setFormatter(VisibleFormatter())
    try:
        app()
    except (OpsloopError, SandboxError) as exc:
        print(visible(f"opsloop: {exc}"), file=sys.stderr)  # its text may come from a server
        sys.exit(2)
    except KeyboardInterrupt:
        print("opsloop: interrupted", file=sys.stderr)
        sys.exit(130)
