"""``opsloop db upgrade``: bring the event store's schema to this opsloop's version.

Opening the store does the same on first use (under a lock, so many processes starting at
once migrate once); operators who migrate as a deploy step, before the replicas start, run
this. It prints where the schema was and where it is now (``--json``: one object).
"""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    """Add the ``db`` group to ``app``."""
    db_app = typer.Typer(help="The event store's schema.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def upgrade(
        as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead."),
    ) -> None:
        """Create or migrate the store's tables (a no-op when they are current)."""
        from bot.app.store import describe
        from bot.cli.bootstrap import load_settings, open_app

        settings, _ = load_settings()
        store = open_app(settings)
        try:
            before, after = store.upgrade.before, store.upgrade.after
        finally:
            store.close()
        where = describe(settings.resolved_database_url())
        if as_json:
            print(json.dumps({"store": where, "before": before, "after": after}))
        elif before == after:
            print(f"{where}: schema already at version {after}")
        else:
            print(f"{where}: schema upgraded from version {before} to {after}")
