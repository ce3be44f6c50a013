"""Help screens without typer's type noise: ``--port PORT``, not ``--port <int>``.

Typer writes a type after every option (``<bool>`` even after a flag) and braces around a
required argument in the usage line (``{file}``), and reads help text as rich markup, which
swallows ``[sandbox]``. ``tidy`` walks the click command tree once, before it runs, and gives
each parameter a click-style metavar (the option's name in capitals, nothing for a flag) and
each help text an escape, so what we wrote is what is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperOption


class _Option(TyperOption):
    """An option shown as ``--name NAME`` (a flag: just ``--name``)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        """The metavar, or nothing for a flag."""
        if self.is_flag or self.count:
            return None
        return self.metavar or (self.name or "value").upper()


class _Argument(TyperArgument):
    """An argument shown as ``NAME`` (``[NAME]`` when optional), as click does."""

    def display_type_rich(self, ctx: Any) -> str | None:
        """Nothing: the name column already says it."""
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        """``NAME`` when required, ``[NAME]`` when not."""
        name = self.metavar or (self.name or "arg").upper()
        return [name if self.required else f"[{name}]"]


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():  # a group (typer's own click)
        yield from _commands(sub)


class TidyTyper(typer.Typer):
    """A ``typer.Typer`` whose command tree is tidied before it runs."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Build the click command, tidy it, run it."""
        return tidy(typer.main.get_command(self))(*args, **kwargs)


def tidy(command: Any) -> Any:
    """``command`` and its subcommands with plain metavars and escaped help texts."""
    for each in _commands(command):
        for attr in ("help", "short_help", "epilog"):
            text = getattr(each, attr, None)
            if text:
                setattr(each, attr, escape(text))
        help_option = each.get_help_option(typer.Context(each))  # made once, then cached
        for param in [*each.params, *([help_option] if help_option else [])]:
            if isinstance(param, TyperOption):
                param.__class__ = _Option
                param.help = escape(param.help) if param.help else param.help
            elif isinstance(param, TyperArgument):
                param.__class__ = _Argument
                param.metavar = param.metavar or (param.name or "arg").upper()
                param.help = escape(param.help) if param.help else param.help
    return command
