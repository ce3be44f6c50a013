"""The conversation listing: a table kept up to date by following the notification log.

Why this design: the library's ``ProjectionRunner`` needs a recorder with ``subscribe``, which
its SQLite recorder lacks, and listing must not load every aggregate. So the read model is a
plain table (``opsloop_conversations``) in the same database as the events, plus the
notification id it has caught up to (``opsloop_readmodel_position``). Every query first
*catches up*: it reads the notifications after that position (an indexed range scan of the
events table, in batches), folds them into the rows and stores rows and position in one
transaction. That works the same on SQLite and PostgreSQL, sees events written by any
process or replica (unlike an in-process hook after ``save``), and costs nothing between
queries.

Folding is idempotent: a row remembers the version of the last event folded into it and
ignores older ones, and both the row upsert and the position only move forward, so two
processes catching up at once cannot double-count. On PostgreSQL the library inserts events
under a table lock, so notification ids become visible in order and the follower never skips
one that commits late.

With ``OPSLOOP_CIPHER_KEY`` the events are encrypted, but these rows are not: they hold ids,
platform coordinates, author names and counts in clear so they can be filtered. Message
texts, code and outputs exist only in the (encrypted) events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper

from bot.app.follower import LogFollower
from bot.app.summary import COLUMNS, ConversationSummary, fold, summary_from_row

_BATCH = 500


class ReadModel(LogFollower):
    """Listing, prefix lookup and open conversations without loading aggregates."""

    def __init__(
        self, *, recorder: ApplicationRecorder, mapper: Mapper, datastore: Any, postgres: bool
    ) -> None:
        super().__init__(recorder=recorder, mapper=mapper, datastore=datastore, postgres=postgres)
        self._table = f"{self._prefix}opsloop_conversations"

    # -- schema --------------------------------------------------------------------------
    def create_statements(self) -> list[str]:
        """DDL of the tables (run by the schema migration, bot/app/schema.py)."""
        real = "DOUBLE PRECISION" if self._pg else "REAL"
        big = "BIGINT" if self._pg else "INTEGER"
        cols = (
            "conversation_id TEXT PRIMARY KEY, id_hex TEXT NOT NULL, platform TEXT, "
            "workspace TEXT, channel TEXT, thread TEXT, generation INTEGER, started_by TEXT, "
            f"authors TEXT, status TEXT, messages INTEGER, model_turns INTEGER, "
            f"input_tokens {big}, output_tokens {big}, cost {real}, blocks INTEGER, "
            f"started_at {real}, last_at {real}, successor_id TEXT, version INTEGER, "
            "head_hash TEXT"
        )
        return [
            f"CREATE TABLE IF NOT EXISTS {self._table} ({cols})",
            f"CREATE INDEX IF NOT EXISTS opsloop_conversations_where "
            f"ON {self._table} (platform, channel, last_at)",
            f"CREATE TABLE IF NOT EXISTS {self._position} "
            f"(name TEXT PRIMARY KEY, position {big} NOT NULL)",
        ]

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._pg else statement

    # -- following the log -----------------------------------------------------------------
    def position(self) -> int:
        """The notification id folded so far."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                self._sql(f"SELECT position FROM {self._position} WHERE name = ?"),
                ("conversations",),
            )
            row = c.fetchone()
        return int(row["position"]) if row else 0

    def catch_up(self) -> int:
        """Fold every notification after the stored position; returns how many."""
        done = 0
        position = self.position()
        while True:
            notes = self._recorder.select_notifications(
                start=position, limit=_BATCH, inclusive_of_start=False
            )
            if not notes:
                return done
            events = [self._mapper.to_domain_event(n) for n in notes]
            ids = sorted({str(e.originator_id) for e in events})
            rows = self._rows(ids)
            for e in events:
                fold(rows, e)
            position = notes[-1].id
            self._write(list(rows.values()), position)
            done += len(notes)
            if len(notes) < _BATCH:
                return done

    def _rows(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        marks = ",".join("?" * len(ids))
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                self._sql(f"SELECT * FROM {self._table} WHERE conversation_id IN ({marks})"),
                list(ids),
            )
            return {r["conversation_id"]: {k: r[k] for k in COLUMNS} for r in c.fetchall()}

    def _write(self, rows: list[dict[str, Any]], position: int) -> None:
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" * len(COLUMNS))
        updates = ", ".join(f"{k} = excluded.{k}" for k in COLUMNS[1:])
        upsert = (
            f"INSERT INTO {self._table} ({cols}) VALUES ({marks}) "
            f"ON CONFLICT (conversation_id) DO UPDATE SET {updates} "
            f"WHERE {self._table}.version < excluded.version"
        )
        moved = (
            f"INSERT INTO {self._position} (name, position) VALUES (?, ?) "
            f"ON CONFLICT (name) DO UPDATE SET position = excluded.position "
            f"WHERE {self._position}.position < excluded.position"
        )
        with self._datastore.transaction(commit=True) as c:
            ordered = sorted(
                (r for r in rows if r.get("id_hex")), key=lambda r: r["conversation_id"]
            )
            # One order for the row locks, so two processes catching up never deadlock.
            c.executemany(self._sql(upsert), [tuple(r[k] for k in COLUMNS) for r in ordered])
            c.execute(self._sql(moved), ("conversations", position))

    # -- queries -------------------------------------------------------------------------
    def search(
        self,
        *,
        platform: str | None = None,
        channel: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[ConversationSummary]:
        """Conversations matching every given filter, most recently active first.

        ``since``/``until`` select conversations active in that range (last event at or
        after ``since``, started at or before ``until``); ``user`` matches anyone who
        started or wrote in it.
        """
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        for col, value in (("platform", platform), ("channel", channel)):
            if value:
                where.append(f"{col} = ?")
                params.append(value)
        if user:
            where.append("authors LIKE ? ESCAPE '!'")
            params.append(f"%\x1f{_escape_like(user)}\x1f%")
        if since:
            where.append("last_at >= ?")
            params.append(since.timestamp())
        if until:
            where.append("started_at <= ?")
            params.append(until.timestamp())
        statement = (
            f"SELECT * FROM {self._table} WHERE {' AND '.join(where)} "
            f"ORDER BY last_at DESC, conversation_id"
        )
        with self._datastore.transaction(commit=False) as c:
            c.execute(self._sql(statement), params)
            return [summary_from_row(r) for r in c.fetchall()]

    def with_prefix(self, hex_prefix: str, *, limit: int = 2) -> list[UUID]:
        """Ids whose hex starts with ``hex_prefix`` (at most ``limit``)."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                self._sql(
                    f"SELECT conversation_id FROM {self._table} WHERE id_hex LIKE ? "
                    f"ORDER BY conversation_id LIMIT {int(limit)}"
                ),
                (hex_prefix + "%",),
            )
            return [UUID(r["conversation_id"]) for r in c.fetchall()]

    def summary(self, conversation_id: UUID) -> ConversationSummary | None:
        """The row of one conversation, if folded."""
        rows = self._rows([str(conversation_id)])
        row = rows.get(str(conversation_id))
        return summary_from_row(row) if row else None

    def raw_rows(self) -> dict[UUID, dict[str, Any]]:
        """Every row as stored, by conversation (for the audit, which trusts none of them)."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(f"SELECT * FROM {self._table}")
            return {UUID(r["conversation_id"]): {k: r[k] for k in COLUMNS} for r in c.fetchall()}

    def all_ids(self) -> list[UUID]:
        """Every conversation folded so far."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(f"SELECT conversation_id FROM {self._table} ORDER BY started_at")
            return [UUID(r["conversation_id"]) for r in c.fetchall()]

    def open_ones(self) -> list[ConversationSummary]:
        """Conversations with a message being worked on (and not replaced by ``new``)."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT * FROM {self._table} WHERE status = 'open' AND successor_id IS NULL "
                "ORDER BY last_at"
            )
            return [summary_from_row(r) for r in c.fetchall()]


def _escape_like(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
