"""The event store: ``OPSLOOP_DATABASE_URL`` to the eventsourcing library's environment.

- ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (SQLAlchemy's convention): the
  library's SQLite recorder, WAL mode. The default is ``<data dir>/opsloop.sqlite3``, where the
  data dir is ``platformdirs.user_data_dir("opsloop")`` -- ``~/.local/share/opsloop`` on Linux.
- ``postgresql://user:pass@host:port/db`` (``postgres://`` too; ``?schema=name`` picks a schema).
- ``memory:``: an in-memory SQLite database private to this process, for unit tests. It runs
  the same SQL as the file store, so the read model has one implementation.

With ``OPSLOOP_CIPHER_KEY`` (base64 of 16, 24 or 32 random bytes) events are compressed with
zlib and encrypted with the library's AES-GCM cipher.

How a record is encoded and checked (``CheckedMapper``, ``SealedSnapshots``) is in
bot/app/mapper.py.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import uuid4

from eventsourcing.persistence import (
    IntegrityError,
    PersistenceError,
)
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from bot.app import sqlite_file
from bot.errors import (
    ConfigError,
    StoreError,
    StoreUnreachable,
)

P = ParamSpec("P")
T = TypeVar("T")

_KEY_SIZES = (16, 24, 32)
_SCHEMES = "sqlite:///path, postgresql://user:pass@host:port/db or memory:"


PROBE_SECONDS = 5  # an unreachable PostgreSQL at start is one line after this long
RETRY_SECONDS = 60.0  # how long a write keeps retrying concurrent-write conflicts


@dataclass(frozen=True)
class PoolSizes:
    """PostgreSQL connections of one process: ``size`` kept open, up to ``size + overflow``
    under load, and how long a caller waits for one (``OPSLOOP_POSTGRES_POOL_*``)."""

    size: int = 5
    overflow: int = 10
    timeout_seconds: float = 30.0


def retrying(attempt: Callable[[], T], *, on_conflict: Callable[[], None] = lambda: None) -> T:
    """Run ``attempt`` until it is not refused by a concurrent write (another process appended
    to the same conversation first: it reloads and reapplies), waiting a random, growing time
    between tries (exponential backoff with full jitter) so writers do not collide in step."""

    def conflict(_: Any) -> None:
        on_conflict()

    retry = Retrying(
        retry=retry_if_exception_type(IntegrityError),
        wait=wait_random_exponential(multiplier=0.004, max=0.5),
        stop=stop_after_delay(RETRY_SECONDS),
        before_sleep=conflict,
    )
    try:
        return retry(attempt)
    except RetryError:
        raise StoreError(
            f"gave up recording after {RETRY_SECONDS:g} s of concurrent-write conflicts"
        ) from None


def store_env(
    database_url: str,
    *,
    cipher_key: str | None = None,
    pool: PoolSizes | None = None,
    create: bool = False,
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
        env.update(_postgres_env(url, pool or PoolSizes()))
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


def _postgres_env(url: str, pool: PoolSizes) -> dict[str, str]:
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
        # The library's pool waits this long for a free connection (it calls it the connect
        # timeout); the probe at start has its own, short one.
        "POSTGRES_CONNECT_TIMEOUT": str(max(1, round(pool.timeout_seconds))),
        "POSTGRES_POOL_SIZE": str(pool.size),
        "POSTGRES_MAX_OVERFLOW": str(pool.overflow),
        # Tables are created by opsloop's migration (bot/app/schema.py), never on start.
        "CREATE_TABLE": "no",
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
            connect_timeout=PROBE_SECONDS,
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


class InFlight:
    """The application's calls under way, in any thread, so that closing waits for them:
    SQLite crashes the whole process when a connection is closed under a running statement
    (a lease keeper's last look at the log, say, still in its worker thread)."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        """Count one call while it runs."""
        with self._changed:
            self._count += 1
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is under way (False: still some after ``timeout`` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


def boundary(method: Callable[P, T]) -> Callable[P, T]:
    """Translate the library's persistence failures into opsloop's errors, and count the call
    as under way (``InFlight``) while it runs."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        app = args[0]
        calls = getattr(app, "calls", None)
        counted = calls.counted() if isinstance(calls, InFlight) else contextlib.nullcontext()
        with counted, translated(getattr(app, "database_url", "")):
            return method(*args, **kwargs)

    return wrapper
