"""Serve command of this chat surface; filled in by the issue that owns it."""

from __future__ import annotations

import typer


def register(serve_app: typer.Typer) -> None:
    """Add this surface's ``serve`` command to ``serve_app``."""
