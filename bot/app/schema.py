"""The store's schema: numbered migrations, applied once, under a lock, never on every start.

``opsloop_schema`` holds the version the database is at. Opening the application reads it
(one query): at the current version nothing else happens; below it, the missing steps run
under a lock (``pg_advisory_lock`` on PostgreSQL, SQLite's write lock), each step's DDL
idempotent, and the version is written; above it, opsloop refuses with "upgrade opsloop".
``opsloop db upgrade`` runs the same for operators who migrate as a deploy step.

PostgreSQL runs with the library's ``CREATE_TABLE=no``: its tables, composite types and
insert function are created by step 1 here, so many processes starting at once on a fresh
database wait for one migration instead of racing each other's DDL (which failed with
"tuple concurrently updated").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.errors import SchemaTooNew

ADVISORY_KEY = 0x6F70736C6F6F70  # "opsloop": the lock every migrating process takes


@dataclass(frozen=True)
class Step:
    """One migration: the version it brings the database to, and what it does."""

    version: int
    what: str
    run: Callable[[], None]


@dataclass(frozen=True)
class Upgrade:
    """What ``ensure`` found and did."""

    before: int
    after: int


def migrations(app: Any, *, postgres: bool) -> list[Step]:
    """The steps of ``bot.app.application.ConversationApp``'s store, oldest first; each
    step's DDL is idempotent, so a step cut short by a crash runs again whole."""

    def library_tables() -> None:
        if postgres:  # (the library creates SQLite's itself: SQLite serializes DDL anyway)
            app.recorder.create_table()
            if app.snapshots is not None:
                app.snapshots.recorder.create_table()
        app.schema.run(app.readmodel.create_statements())

    return [
        Step(1, "events, snapshots and the conversation listing", library_tables),
        Step(2, "loop leases", lambda: app.schema.run(app.leases.create_statements())),
        Step(3, "the usage ledger", lambda: app.schema.run(app.usage_log.create_statements())),
        Step(4, "per-user keys", lambda: app.schema.run(app.user_keys.create_statements())),
    ]


class Schema:
    """Reads and advances the schema version of one store."""

    def __init__(self, *, datastore: Any, postgres: bool, prefix: str = "") -> None:
        self._datastore = datastore
        self._pg = postgres
        self.table = f"{prefix}opsloop_schema"
        self._bare = "opsloop_schema"
        self._schema = getattr(datastore, "schema", "public") if postgres else ""

    def version(self) -> int:
        """The version the database is at (0 before any migration of opsloop's)."""
        with self._datastore.transaction(commit=False) as c:
            if self._pg:
                c.execute("SELECT to_regclass(%s) AS t", (f"{self._schema}.{self._bare}",))
                row = c.fetchone()
                exists = row is not None and row["t"] is not None
            else:
                c.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (self._bare,),
                )
                exists = c.fetchone() is not None
            if not exists:
                return 0
            c.execute(f"SELECT version FROM {self.table} WHERE name = 'opsloop'")
            found = c.fetchone()
        return int(found["version"]) if found else 0

    def run(self, statements: list[str]) -> None:
        """DDL in one transaction."""
        with self._datastore.transaction(commit=True) as c:
            for statement in statements:
                c.execute(statement)

    def ensure(self, steps: list[Step]) -> Upgrade:
        """Bring the database to the last step's version (nothing to do: one query)."""
        latest = steps[-1].version
        before = self.version()
        if before > latest:
            raise SchemaTooNew(
                f"the database schema is at version {before}, and this opsloop knows up to "
                f"{latest}; upgrade opsloop"
            )
        if before == latest:
            return Upgrade(before, before)
        with self._locked():
            found = self.version()  # another process may have migrated while we waited
            for step in steps:
                if step.version > found:
                    step.run()
                    self._write(step.version)
        return Upgrade(before, latest)

    def _write(self, version: int) -> None:
        mark = "%s" if self._pg else "?"
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            c.execute(
                f"INSERT INTO {self.table} (name, version) VALUES ('opsloop', {mark}) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                (version,),
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One migrating process at a time, across hosts (PostgreSQL) or on one (SQLite,
        whose write lock already serializes each step's transaction)."""
        if not self._pg:
            yield
            return
        with self._datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
