"""``opsloop db encrypt``: migrations of the store itself (see bot/app/encrypt.py)."""

from __future__ import annotations

import typer


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
        audit_key=settings.audit_key_bytes(),
        allow_mixed=True,
    )
    try:
        done = encrypt_store(app)
    finally:
        app.close()
    print(f"encrypted {done} record(s)")


def register(app: typer.Typer) -> None:
    """Add ``opsloop db``."""
    db_app = typer.Typer(help="Migrations of the event store.", no_args_is_help=True)
    db_app.command("encrypt")(encrypt)
    app.add_typer(db_app, name="db")
