"""``opsloop db``: migrations of the event store.

- ``db upgrade`` brings the store's schema to this opsloop's version. Opening the store does
  the same on first use (under a lock, so many processes starting at once migrate once);
  operators who migrate as a deploy step, before the replicas start, run this. It prints
  where the schema was and where it is now (``--json``: one object).
- ``db encrypt`` encrypts a plaintext store with OPSLOOP_CIPHER_KEY (bot/app/encrypt.py).
"""

from __future__ import annotations

import json

import typer


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


def encrypt() -> None:
    """Encrypt a plaintext store with OPSLOOP_CIPHER_KEY (once, with opsloop stopped)."""
    from bot.app.application import open_app
    from bot.app.encrypt import encrypt_store
    from bot.errors import ConfigError
    from bot.settings import read_settings

    settings = read_settings()
    if not settings.cipher_key:
        raise ConfigError("set OPSLOOP_CIPHER_KEY to the key to encrypt the store with")
    app = open_app(
        database_url=settings.resolved_database_url(),
        cipher_key=settings.cipher_key,
        pool=settings.pool_sizes(),
        audit_key=settings.audit_key_bytes(),
        allow_mixed=True,
    )
    try:
        done = encrypt_store(app)
    finally:
        app.close()
    print(f"encrypted {done} record(s)")


def register(app: typer.Typer) -> None:
    """Add the ``db`` group to ``app``."""
    db_app = typer.Typer(help="Migrations of the event store.", no_args_is_help=True)
    db_app.command("upgrade")(upgrade)
    db_app.command("encrypt")(encrypt)
    app.add_typer(db_app, name="db")
