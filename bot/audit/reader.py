"""Read-only access to a store's records, for the audit commands.

An auditor may hold a SELECT-only PostgreSQL role, or a copy of the SQLite file on a full or
read-only disk: so the audit never opens the application (which creates tables and catches
its read model up). ``open_reader`` opens its own connection -- SQLite with ``mode=ro`` (or
``immutable=1`` when even the lock files cannot be made), PostgreSQL in a read-only,
repeatable-read transaction, so that a verify or a checkpoint sees one consistent log --
and issues nothing but SELECTs. ``AppSource`` reads the same records through a running
application (``ConversationApp.verify``), for the in-memory store of unit tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote
from uuid import UUID

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    StoredEvent,
    UUIDAsHex,
)
from eventsourcing.utils import Environment

from bot.app.mapper import CheckedMapper
from bot.app.store import store_env
from bot.errors import AmbiguousId, NotFound, StoreUnreachable

if TYPE_CHECKING:
    from bot.app.readmodel import ReadModel
    from bot.app.usage import UsageLog

_BATCH = 1000


@dataclass(frozen=True)
class Note:
    """One record of the notification log: its position and the stored event."""

    position: int
    stored: StoredEvent


class Source(Protocol):
    """What the audit reads."""

    mapper: CheckedMapper

    def notifications(self) -> Iterator[Note]:
        """Every record of every conversation, in log order."""
        ...

    def listing(self) -> dict[UUID, dict[str, Any]] | None:
        """The listing table's rows (None when the table does not exist)."""
        ...

    def snapshots(self, ids: Iterable[UUID]) -> Iterator[StoredEvent]:
        """The stored snapshots (of ``ids`` at least)."""
        ...

    def ids(self) -> list[UUID]:
        """Every conversation with an event."""
        ...

    def events(self, conversation_id: UUID) -> list[StoredEvent]:
        """One conversation's records, in version order."""
        ...

    def listing_position(self) -> int:
        """The notification position the listing says it has folded."""
        ...

    def usage(self) -> tuple[dict[tuple[UUID, int], dict[str, Any]], int] | None:
        """The usage ledger's rows by (conversation, version), and the position it says it
        has folded (None when the ledger does not exist)."""
        ...


def mapper_for(cipher_key: str | None, audit_key: bytes | None) -> CheckedMapper:
    """A mapper decoding what the application encodes, without opening a store."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    cipher = compressor = None
    if cipher_key:
        from eventsourcing.cipher import AESCipher
        from eventsourcing.compressor import ZlibCompressor

        env = store_env("memory:", cipher_key=cipher_key)  # checks the key's form
        cipher = AESCipher(Environment("opsloop", {"CIPHER_KEY": env["CIPHER_KEY"]}))
        compressor = ZlibCompressor()
    mapper = CheckedMapper(transcoder=transcoder, compressor=compressor, cipher=cipher)
    mapper.audit_key = audit_key
    return mapper


class RawReader:
    """SELECTs over a DB-API connection (sqlite3 or psycopg)."""

    def __init__(self, conn: Any, *, pg: bool, schema: str, mapper: CheckedMapper) -> None:
        self.conn = conn
        self.pg = pg
        self.mapper = mapper
        prefix = f"{schema}." if schema else ""
        events = "opsloop_events" if pg else "stored_events"
        self.events_table = prefix + events
        self.snapshots_table = prefix + events.replace("events", "snapshots")
        self.listing_table = prefix + "opsloop_conversations"
        self.position_table = prefix + "opsloop_readmodel_position"
        self.position_column = "notification_id" if pg else "rowid"
        self.keys_table = prefix + "opsloop_user_keys"
        self._keys: dict[str, bytes | None] = {}
        mapper.user_key = self.user_key

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self.pg:
            sql = sql.replace("?", "%s")
        cur = self.conn.execute(sql, params)
        return list(cur.fetchall())

    def _exists(self, table: str) -> bool:
        name = table.rsplit(".", 1)[-1]
        if self.pg:
            rows = self._rows("SELECT 1 FROM pg_tables WHERE tablename = ?", (name,))
        else:
            rows = self._rows("SELECT 1 FROM sqlite_master WHERE name = ?", (name,))
        return bool(rows)

    def notifications(self) -> Iterator[Note]:
        """Every record, in log order, in batches."""
        if not self._exists(self.events_table):
            return
        col, position = self.position_column, 0
        while True:
            rows = self._rows(
                f"SELECT {col}, originator_id, originator_version, topic, state "
                f"FROM {self.events_table} WHERE {col} > ? ORDER BY {col} LIMIT {_BATCH}",
                (position,),
            )
            for pos, *record in rows:
                yield Note(int(pos), _stored(*record))
            if len(rows) < _BATCH:
                return
            position = int(rows[-1][0])

    def ids(self) -> list[UUID]:
        """Every conversation with an event."""
        if not self._exists(self.events_table):
            return []
        return [
            UUID(str(r[0]))
            for r in self._rows(f"SELECT DISTINCT originator_id FROM {self.events_table}")
        ]

    def events(self, conversation_id: UUID) -> list[StoredEvent]:
        """One conversation's records, in version order."""
        if not self._exists(self.events_table):
            return []
        oid: Any = conversation_id if self.pg else conversation_id.hex
        rows = self._rows(
            f"SELECT originator_id, originator_version, topic, state FROM {self.events_table} "
            "WHERE originator_id = ? ORDER BY originator_version",
            (oid,),
        )
        return [_stored(*r) for r in rows]

    def snapshots(self, ids: Iterable[UUID]) -> Iterator[StoredEvent]:
        """Every stored snapshot."""
        if not self._exists(self.snapshots_table):
            return
        for record in self._rows(
            f"SELECT originator_id, originator_version, topic, state FROM "
            f"{self.snapshots_table} ORDER BY originator_id, originator_version"
        ):
            yield _stored(*record)

    def listing(self) -> dict[UUID, dict[str, Any]] | None:
        """The listing rows by conversation."""
        if not self._exists(self.listing_table):
            return None
        cur = self.conn.execute(f"SELECT * FROM {self.listing_table}")
        names = [d[0] for d in cur.description]
        return {UUID(str(r[0])): dict(zip(names, r, strict=True)) for r in cur.fetchall()}

    def user_key(self, user: str) -> bytes | None:
        """A person's key for their encrypted text (None: erased, or never made)."""
        if user not in self._keys:
            rows = (
                self._rows(f"SELECT key FROM {self.keys_table} WHERE user_id = ?", (user,))
                if self._exists(self.keys_table)
                else []
            )
            self._keys[user] = bytes(rows[0][0]) if rows else None
        return self._keys[user]

    def listing_position(self) -> int:
        """The listing's folded position (0 when never caught up)."""
        if not self._exists(self.position_table):
            return 0
        rows = self._rows(
            f"SELECT position FROM {self.position_table} WHERE name = ?", ("conversations",)
        )
        return int(rows[0][0]) if rows else 0

    def usage(self) -> tuple[dict[tuple[UUID, int], dict[str, Any]], int] | None:
        """The usage ledger's rows and folded position."""
        table = self.listing_table.replace("opsloop_conversations", "opsloop_usage")
        if not self._exists(table) or not self._exists(self.position_table):
            return None
        cur = self.conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        at = self._rows(f"SELECT position FROM {self.position_table} WHERE name = ?", ("usage",))
        return ledger_by_event(rows), int(at[0][0]) if at else 0

    def close(self) -> None:
        """Close the connection (ending the read-only transaction)."""
        self.conn.close()


def _stored(oid: Any, version: Any, topic: str, state: Any) -> StoredEvent:
    return StoredEvent(
        originator_id=UUID(str(oid)),
        originator_version=int(version),
        topic=topic,
        state=state.encode() if isinstance(state, str) else bytes(state),
    )


def open_reader(database_url: str, *, cipher_key: str | None, audit_key: bytes | None) -> RawReader:
    """A read-only reader of the store at ``database_url``."""
    env = store_env(database_url, cipher_key=None) if database_url.startswith("post") else {}
    mapper = mapper_for(cipher_key, audit_key)
    if database_url.startswith(("postgresql:", "postgres:")):
        return RawReader(
            _pg_connect(env), pg=True, schema=env.get("POSTGRES_SCHEMA", ""), mapper=mapper
        )
    if not database_url.startswith("sqlite:///"):
        raise StoreUnreachable("the audit reads sqlite:/// or postgresql:// stores")
    return RawReader(
        _sqlite_connect(database_url[len("sqlite:///") :]), pg=False, schema="", mapper=mapper
    )


def _sqlite_connect(path: str) -> sqlite3.Connection:
    from pathlib import Path

    if not Path(path).is_file():
        raise StoreUnreachable(f"no SQLite store at {path}")
    last = ""
    live = Path(path + "-wal").exists() or Path(path + "-shm").exists()
    # With no writer's WAL beside it, ``immutable`` reads without making lock files (so it
    # creates nothing, even on a full or read-only disk); with one, ``mode=ro`` shares it.
    modes = ("mode=ro", "immutable=1") if live else ("immutable=1", "mode=ro")
    for mode in modes:
        try:
            conn = sqlite3.connect(f"file:{quote(path)}?{mode}", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return conn
        except sqlite3.Error as exc:
            last = str(exc)
    raise StoreUnreachable(f"cannot read the SQLite store {path}: {last}")


def _pg_connect(env: dict[str, str]) -> Any:
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
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    except psycopg.Error as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreUnreachable(f"cannot connect to PostgreSQL at {where}: {detail}") from None
    return conn


class AppSource:
    """The same records, read through a running application's recorder and read model."""

    def __init__(
        self,
        *,
        recorder: Any,
        mapper: CheckedMapper,
        readmodel: ReadModel,
        snapshot_recorder: Any = None,
        usage_log: UsageLog | None = None,
    ) -> None:
        self.usage_log = usage_log
        self.recorder = recorder
        self.snapshot_recorder = snapshot_recorder
        self.mapper = mapper
        self.readmodel = readmodel

    def notifications(self) -> Iterator[Note]:
        """Every record, in log order."""
        position = 0
        while True:
            notes = self.recorder.select_notifications(
                start=position, limit=_BATCH, inclusive_of_start=False
            )
            for n in notes:
                stored = StoredEvent(
                    originator_id=UUID(str(n.originator_id)),
                    originator_version=n.originator_version,
                    topic=n.topic,
                    state=n.state,
                )
                yield Note(n.id, stored)
            if len(notes) < _BATCH:
                return
            position = notes[-1].id

    def listing(self) -> dict[UUID, dict[str, Any]] | None:
        """The listing rows by conversation."""
        return self.readmodel.raw_rows()

    def listing_position(self) -> int:
        """The listing's folded position."""
        return self.readmodel.position()

    def usage(self) -> tuple[dict[tuple[UUID, int], dict[str, Any]], int] | None:
        """The usage ledger's rows and folded position."""
        if self.usage_log is None:
            return None
        return ledger_by_event(self.usage_log.raw_rows()), self.usage_log.position()

    def snapshots(self, ids: Iterable[UUID]) -> Iterator[StoredEvent]:
        """The snapshots of ``ids``."""
        if self.snapshot_recorder is None:
            return
        for cid in ids:
            yield from self.snapshot_recorder.select_events(cid)

    def ids(self) -> list[UUID]:
        """Every conversation with an event."""
        return list(dict.fromkeys(n.stored.originator_id for n in self.notifications()))  # type: ignore[misc]

    def events(self, conversation_id: UUID) -> list[StoredEvent]:
        """One conversation's records, in version order."""
        return list(self.recorder.select_events(conversation_id))


def ledger_by_event(rows: Iterable[dict[str, Any]]) -> dict[tuple[UUID, int], dict[str, Any]]:
    """Usage ledger rows keyed by the event they say they come from."""
    return {(UUID(str(r["conversation_id"])), int(r["version"])): r for r in rows}


def resolve_id(text: str, known: Iterable[UUID]) -> UUID:
    """A full id, or a unique prefix of one among ``known`` (as git does)."""
    digits = text.strip().lower().replace("-", "")
    if not digits or len(digits) > 32 or any(ch not in "0123456789abcdef" for ch in digits):
        raise NotFound(f"{text!r} is not a conversation id (expected hex digits of a UUID)")
    found = sorted({c for c in known if c.hex.startswith(digits)}, key=str)
    if not found:
        if len(digits) == 32:
            raise NotFound(f"no conversation {UUID(hex=digits)}")
        raise NotFound(f"no conversation id starts with {text!r}")
    if len(found) > 1:
        raise AmbiguousId(
            f"{text!r} matches more than one conversation "
            f"({found[0]}, {found[1]}, ...); give more digits"
        )
    return found[0]
