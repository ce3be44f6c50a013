"""Process settings from the environment (and a ``.env`` file).

Secrets and deployment wiring live here, under each ecosystem's own variable names
(``SLACK_BOT_TOKEN``, ``OLLAMA_HOST``, ``OPENAI_API_KEY`` …); opsloop's own start with
``OPSLOOP_``. Policy that is not a secret (who may use the bot, limits, budgets, prices)
lives in ``opsloop.toml`` and is read by ``bot.config``.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.app.store import PoolSizes
from bot.errors import ConfigError

SYSTEM_DATA_DIR = Path("/var/lib/opsloop")
SECRET_SETTINGS = {  # attribute -> the variable it is read from
    "openai_api_key": "OPENAI_API_KEY",
    "groq_api_key": "GROQ_API_KEY",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "discord_token": "DISCORD_TOKEN",
    "cipher_key": "OPSLOOP_CIPHER_KEY",
    "audit_key": "OPSLOOP_AUDIT_KEY",
    "audit_signing_key": "OPSLOOP_AUDIT_SIGNING_KEY",
    "sandbox_token": "OPSLOOP_SANDBOX_TOKEN",
}


def default_data_dir() -> Path:
    """Where opsloop keeps its SQLite file and sandbox workspaces by default.

    For a normal user, ``platformdirs.user_data_dir("opsloop")``: ``~/.local/share/opsloop``
    on Linux (``$XDG_DATA_HOME/opsloop`` when that is set), ``~/Library/Application
    Support/opsloop`` on macOS. For root, ``/var/lib/opsloop``, where system services keep
    their state: root's home is mode 0700, so the sandbox's unprivileged jail user could
    never reach workspaces kept under it.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return SYSTEM_DATA_DIR
    return Path(platformdirs.user_data_dir("opsloop", appauthor=False))


class Settings(BaseSettings):
    """Everything opsloop reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="OPSLOOP_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # -- opsloop's own ------------------------------------------------------------------
    data_dir: Path = Field(default_factory=default_data_dir)
    config: Path | None = None  # opsloop.toml; default: ./opsloop.toml when present
    database_url: str | None = None  # sqlite:///path | postgresql://… | memory:
    cipher_key: str | None = None  # base64 AES key; enables encryption at rest
    audit_key: str | None = None  # base64 HMAC key; seals every stored record
    audit_key_file: Path | None = None  # a file holding it (instead of the variable)
    audit_signing_key: str | None = None  # base64 Ed25519 seed; also signs checkpoints
    provider: str = "ollama"
    model: str | None = None
    fallback: str = ""  # "ollama:llama3.1,groq:llama-3.3-70b-versatile"
    sandbox: str = "nsjail"  # nsjail | unsafe-local
    sandbox_url: str | None = None  # use the sandbox service instead of in-process nsjail
    sandbox_token: str | None = None  # bearer token of the sandbox service
    nsjail: Path | None = None  # override the nsjail binary
    # -- many processes on one store (docs/replicas.md) ----------------------------------
    replica_id: str | None = None  # names this process in LoopClaimed; default host:pid
    lease_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)  # a dead holder's loop
    # is taken over this long after its last renewal
    postgres_pool_size: int = Field(default=5, ge=1, le=1000)  # connections kept open
    postgres_max_overflow: int = Field(default=10, ge=0, le=1000)  # more under load
    postgres_pool_timeout: float = Field(default=30.0, gt=0)  # wait for a free connection

    # -- other ecosystems' names ---------------------------------------------------------
    ollama_host: str = Field(
        default="http://127.0.0.1:11434", validation_alias=AliasChoices("OLLAMA_HOST")
    )
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    groq_api_key: str | None = Field(default=None, validation_alias="GROQ_API_KEY")
    slack_bot_token: str | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(default=None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    discord_token: str | None = Field(default=None, validation_alias="DISCORD_TOKEN")

    def pool_sizes(self) -> PoolSizes:
        """The PostgreSQL connection pool of this process."""
        return PoolSizes(
            size=self.postgres_pool_size,
            overflow=self.postgres_max_overflow,
            timeout_seconds=self.postgres_pool_timeout,
        )

    @field_validator("ollama_host")
    @classmethod
    def _ollama_url(cls, value: str) -> str:
        """``http(s)://host[:port]`` or ``host:port``, as the Ollama client takes it; a word
        alone (``notaurl``) is a mistake the client would turn into ``http://notaurl:11434``."""
        if not ollama_host_ok(value):
            raise ValueError(
                f"{value!r} is not an Ollama server URL (expected http://host:port, "
                "e.g. http://127.0.0.1:11434)"
            )
        return value

    def secrets(self) -> dict[str, str]:
        """opsloop's own secrets that are set, by their variable's name (for redaction)."""
        found = {
            name: value for attr, name in SECRET_SETTINGS.items() if (value := getattr(self, attr))
        }
        try:
            password = urlsplit(self.database_url or "").password
        except ValueError:  # a malformed URL is the store's to report
            password = None
        if password:
            found["OPSLOOP_DATABASE_URL"] = unquote(password)
        return found

    def audit_key_bytes(self) -> bytes | None:
        """The audit key (``OPSLOOP_AUDIT_KEY`` or ``OPSLOOP_AUDIT_KEY_FILE``), or None."""
        text, where = self.audit_key, "OPSLOOP_AUDIT_KEY"
        if text and self.audit_key_file:
            raise ConfigError("set OPSLOOP_AUDIT_KEY or OPSLOOP_AUDIT_KEY_FILE, not both")
        if self.audit_key_file:
            where = f"the audit key file {self.audit_key_file}"
            try:
                text = self.audit_key_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not text"
                raise ConfigError(f"cannot read {where}: {reason}") from None
        if not text:
            return None
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) < 16:
            raise ConfigError(
                f"{where} must be the base64 of at least 16 random bytes (make one with: "
                'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())")'
            )
        return key

    def resolved_database_url(self) -> str:
        """The event store URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'opsloop.sqlite3'}"


def ollama_host_ok(value: str) -> bool:
    """``http(s)://host[:port][/path]`` or ``host:port`` (pure)."""
    text = value.strip()
    if "://" not in text:
        host, _, port = text.rpartition(":")
        return bool(host) and port.isdigit()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def env_name(field: str) -> str:
    """The environment variable of a ``Settings`` field (``OLLAMA_HOST``, ``OPSLOOP_MODEL``)."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return str(alias) if alias else f"OPSLOOP_{field.upper()}"


def env_names(*, only: tuple[str, ...] = (), without: tuple[str, ...] = ()) -> list[str]:
    """The environment variables of the fields ``only`` (default: all) but ``without``."""
    fields = only or tuple(Settings.model_fields)
    return [env_name(f) for f in fields if f not in without]


def read_settings() -> Settings:
    """The settings of this process; an invalid one is a one-line ``ConfigError``."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {where}: {message}") from None
