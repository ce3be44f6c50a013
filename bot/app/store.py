"""The event store: ``OPSLOOP_DATABASE_URL`` to the eventsourcing library's environment.

- ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's convention): the
  library's SQLite recorder, WAL mode. The default is ``<data dir>/opsloop.sqlite3``, where the
  data dir is ``platformdirs.user_data_dir("opsloop")`` -- ``~/.local/share/opsloop`` on Linux.
- ``postgresql://user:pass@host:port/db`` (``postgres://`` too; ``?schema=name`` picks a schema).
- ``memory:``: an in-memory SQLite database private to this process, for unit tests. It runs
  the same SQL as the file store, so the read model has one implementation.

With ``OPSLOOP_CIPHER_KEY`` (base64 of 16, 24 or 32 random bytes) events are compressed with
zlib and encrypted with the library's AES-GCM cipher.

``CheckedMapper`` turns the library's failures into opsloop's errors (wrong key, schema too
new) and records the stored form's chain hash on upcast events (see ``domain.chain``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import uuid4

from eventsourcing.persistence import (
    Mapper,
    PersistenceError,
    StoredEvent,
)
from eventsourcing.utils import TopicError, resolve_topic

from bot.app import sqlite_file
from bot.errors import ConfigError, SchemaTooNew, StoreUnreachable, WrongCipherKey
from domain.chain import STORED_HASH, event_hash

P = ParamSpec("P")
T = TypeVar("T")

_KEY_SIZES = (16, 24, 32)
_SCHEMES = "sqlite:///path, postgresql://user:pass@host:port/db or memory:"


def store_env(
    database_url: str, *, cipher_key: str | None = None, create: bool = False
) -> dict[str, str]:
    """The library environment for ``database_url`` (and encryption when a key is given).

    A SQLite file is checked and created private first; ``create`` allows making its missing
    directory (see ``bot.app.sqlite_file``)."""
    url = (database_url or "").strip()
    env: dict[str, str] = {}
    if url in ("memory:", "memory://"):
        env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
        # A named shared-cache memory database: one per store, visible to every pooled
        # connection of this process (a plain ":memory:" would be one database per connection).
        env["SQLITE_DBNAME"] = f"file:opsloop-{uuid4().hex}?mode=memory&cache=shared"
    elif url.startswith("sqlite:"):
        env.update(_sqlite_env(url, create=create))
    elif url.startswith(("postgresql:", "postgres:")):
        env.update(_postgres_env(url))
    else:
        raise StoreUnreachable(f"malformed OPSLOOP_DATABASE_URL {url!r}: expected {_SCHEMES}")
    if cipher_key:
        _check_key(cipher_key)
        env["CIPHER_TOPIC"] = "eventsourcing.cipher:AESCipher"
        env["CIPHER_KEY"] = cipher_key
        env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    return env


def _sqlite_env(url: str, *, create: bool) -> dict[str, str]:
    if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
        raise StoreUnreachable(
            f"malformed SQLite URL {url!r}: expected sqlite:///relative/path or "
            "sqlite:////absolute/path"
        )
    path = Path(unquote(url[len("sqlite:///") :]))
    sqlite_file.prepare(path, create=create)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def _postgres_env(url: str) -> dict[str, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise StoreUnreachable(f"malformed PostgreSQL URL: {exc}") from None
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname or not parts.username:
        raise StoreUnreachable(
            "malformed PostgreSQL URL: expected postgresql://user:pass@host:port/db"
        )
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(port or 5432),
        "POSTGRES_USER": unquote(parts.username),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": "5",
    }
    schema = parse_qs(parts.query).get("schema")
    if schema:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema[0]):
            raise StoreUnreachable(f"malformed PostgreSQL URL: bad schema name {schema[0]!r}")
        env["POSTGRES_SCHEMA"] = schema[0]
    return env


def _check_key(key: str) -> None:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) not in _KEY_SIZES:
        raise ConfigError(
            "OPSLOOP_CIPHER_KEY must be the base64 of 16, 24 or 32 random bytes "
            '(make one with: python -c "import os,base64;'
            'print(base64.b64encode(os.urandom(32)).decode())")'
        )


def probe(env: dict[str, str]) -> None:
    """Connect once to a PostgreSQL store, so an unreachable one fails fast and says why."""
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        return
    import psycopg

    where = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}/{env['POSTGRES_DBNAME']}"
    try:
        conn = psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT", "5")),
        )
    except psycopg.Error as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[0].removeprefix("connection failed: ") if lines else type(exc).__name__
        raise StoreUnreachable(f"cannot connect to PostgreSQL at {where}: {detail}") from None
    conn.close()


def describe(database_url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", database_url)


@contextlib.contextmanager
def translated(database_url: str = "") -> Iterator[None]:
    """Turn the library's persistence failures into opsloop's one-line errors."""
    try:
        yield
    except (PersistenceError, sqlite3.Error) as exc:  # the library lets some driver errors out
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f" at {describe(database_url)}" if database_url else ""
        raise StoreUnreachable(f"cannot use the event store{where}: {detail}") from None


def boundary(method: Callable[P, T]) -> Callable[P, T]:
    """Translate the library's persistence failures into opsloop's errors."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        app = args[0]
        with translated(getattr(app, "database_url", "")):
            return method(*args, **kwargs)

    return wrapper


class CheckedMapper(Mapper):
    """The library's mapper, with opsloop's errors and stored-form hashes for upcasts."""

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """Decode one stored event (decrypt, decompress, upcast)."""
        cls, state = self.to_state(stored_event)
        domain_event: Any = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event

    def to_state(self, stored_event: StoredEvent) -> tuple[type, dict[str, Any]]:
        """The event class and the upcast state of one stored event (no object is built)."""
        try:
            cls = resolve_topic(stored_event.topic)
        except TopicError:
            raise SchemaTooNew(
                f"the event store holds an event type this opsloop does not know "
                f"({stored_event.topic}); upgrade opsloop"
            ) from None
        state = self.decode_state(stored_event)
        stored_version = int(state.get("class_version", 1))
        known = int(getattr(cls, "class_version", 1))
        if stored_version > known:
            raise SchemaTooNew(
                f"the event store was written by a newer opsloop ({cls.__name__} "
                f"version {stored_version}, this one knows {known}); upgrade opsloop"
            )
        if stored_version < known and "prev_hash" in getattr(cls, "__dataclass_fields__", {}):
            # Remember the hash of the form that was stored, before the upcast changes it.
            state[STORED_HASH] = event_hash(
                type_name=cls.__name__,
                version=stored_event.originator_version,
                timestamp=state["timestamp"],
                payload=state,
            )
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        state.pop("class_version", None)
        while stored_version < known:
            getattr(cls, f"upcast_v{stored_version}_v{stored_version + 1}")(state)
            stored_version += 1
        return cls, state

    def decode_state(self, stored_event: StoredEvent) -> dict[str, Any]:
        """The stored state as a dict, exactly as written (no upcast)."""
        data = stored_event.state
        if isinstance(data, str):  # a row edited by hand may come back as text
            data = data.encode("utf-8")
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
        except Exception:
            raise WrongCipherKey(
                "stored events cannot be decrypted with OPSLOOP_CIPHER_KEY (wrong key, or "
                "the events were written without encryption)"
            ) from None
        try:
            if self.compressor:
                data = self.compressor.decompress(data)
            state: dict[str, Any] = self.transcoder.decode(data)
        except Exception:
            if self.cipher:
                raise WrongCipherKey(
                    f"event {stored_event.originator_version} of {stored_event.originator_id} "
                    "decrypts but cannot be decoded"
                ) from None
            if data[:1] == b"{":
                raise WrongCipherKey(
                    f"event {stored_event.originator_version} of {stored_event.originator_id} "
                    "is damaged: it cannot be decoded"
                ) from None
            raise WrongCipherKey(
                "stored events cannot be read: they look encrypted or compressed; "
                "set OPSLOOP_CIPHER_KEY to the key they were written with"
            ) from None
        if not isinstance(state, dict):
            raise WrongCipherKey("stored events cannot be read with this configuration")
        return state
