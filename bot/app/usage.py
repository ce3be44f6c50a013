"""Model spend per person, channel, model and day: a ledger that follows the event log.

The daily budgets (``domain.budgets``) and ``opsloop usage`` read it. Like the conversation
listing (bot/app/readmodel.py) it is a pair of plain tables in the events' database, brought up
to date from the notification log before every read, so it sees the spend of every
conversation, channel and replica, and costs nothing between reads:

- ``opsloop_usage``: one row per ``ModelReplied`` -- its conversation and version, time and UTC
  day, the platform and channel of its conversation, the author of the latest
  ``MessageReceived`` before it (the person the model worked for), provider, model, tokens and
  cost. Sums are computed when read, with indexed range queries.
- ``opsloop_usage_authors``: per conversation, its platform and channel (from ``Started``) and
  the author of its latest message, with the version that said so.

Why a row per reply instead of running totals: a row is keyed by (conversation, version), so
two processes catching up at once insert it once (``ON CONFLICT DO NOTHING``); a total would
need every catch-up serialised to never count a reply twice. The attribution is safe too: a
process that reads an author row newer than a reply it folds can only have read it after the
process that wrote that row had inserted the reply's row (rows and authors are written in one
transaction, in log order), so its own insert of that reply changes nothing.

The position is kept in ``opsloop_readmodel_position`` under the name ``usage``: a database from
before this table gains it by schema migration 3 and folds its whole log on the first read.
Only ``Started``, ``MessageReceived`` and ``ModelReplied`` notifications are fetched, so block
outputs are never read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, get_args

from eventsourcing.persistence import ApplicationRecorder, Mapper
from eventsourcing.utils import get_topic

from bot.app.follower import LogFollower
from domain import events as ev
from domain.budgets import Spend, day_of

UsageBy = Literal["user", "channel", "model", "day"]
USAGE_BY: tuple[str, ...] = get_args(UsageBy)
_GROUPS: dict[str, tuple[str, ...]] = {
    "user": ("platform", "user_id"),
    "channel": ("platform", "channel"),
    "model": ("provider", "model"),
    "day": ("day",),
}
_BATCH = 500
_NAME = "usage"  # this follower's row in opsloop_readmodel_position
_COLUMNS = (
    "conversation_id",
    "version",
    "at",
    "day",
    "platform",
    "channel",
    "user_id",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cost",
)


@dataclass(frozen=True)
class UsageRow:
    """One line of ``opsloop usage``: the spend of one person, channel, model or day."""

    by: UsageBy
    key: str  # "slack:U012AB", "slack:C012AB", "openai:gpt-4o-mini" or "2026-11-25"
    turns: int  # model replies
    input_tokens: int
    output_tokens: int
    cost: float  # USD

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "by": self.by,
            "key": self.key,
            "turns": self.turns,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
        }


def fold(authors: dict[str, dict[str, Any]], e: Any) -> tuple[Any, ...] | None:
    """Fold one event: a ``Started`` or ``MessageReceived`` updates its conversation's author
    (unless the row already saw a later version); a ``ModelReplied`` gives its ledger row."""
    key = str(e.originator_id)
    row = authors.get(key)
    if isinstance(e, ev.Started):
        if row is None:
            authors[key] = {
                "conversation_id": key,
                "platform": e.platform,
                "channel": e.channel,
                "author": e.started_by,
                "version": e.originator_version,
            }
        return None
    if isinstance(e, ev.MessageReceived):
        if row is not None and row["version"] < e.originator_version:
            row.update(author=e.author, version=e.originator_version)
        return None
    if isinstance(e, ev.ModelReplied):
        where = row or {"platform": "", "channel": "", "author": ""}  # its start is missing
        at, day = e.timestamp.timestamp(), day_of(e.timestamp).isoformat()
        who = (where["platform"], where["channel"], where["author"])
        return (
            key,
            e.originator_version,
            at,
            day,
            *who,
            e.provider,
            e.model,
            e.input_tokens,
            e.output_tokens,
            e.cost,
        )
    return None


class UsageLog(LogFollower):
    """The spend ledger: caught up from the notification log, summed when read."""

    def __init__(
        self, *, recorder: ApplicationRecorder, mapper: Mapper, datastore: Any, postgres: bool
    ) -> None:
        super().__init__(recorder=recorder, mapper=mapper, datastore=datastore, postgres=postgres)
        self._table = f"{self._prefix}opsloop_usage"
        self._authors = f"{self._prefix}opsloop_usage_authors"
        self._topics = [get_topic(c) for c in (ev.Started, ev.MessageReceived, ev.ModelReplied)]

    def create_statements(self) -> list[str]:
        """DDL of the tables (run once by the schema migration, bot/app/schema.py)."""
        real = "DOUBLE PRECISION" if self._pg else "REAL"
        big = "BIGINT" if self._pg else "INTEGER"
        return [
            f"CREATE TABLE IF NOT EXISTS {self._table} (conversation_id TEXT NOT NULL, "
            f"version INTEGER NOT NULL, at {real} NOT NULL, day TEXT NOT NULL, "
            "platform TEXT NOT NULL, channel TEXT NOT NULL, user_id TEXT NOT NULL, "
            f"provider TEXT NOT NULL, model TEXT NOT NULL, input_tokens {big} NOT NULL, "
            f"output_tokens {big} NOT NULL, cost {real} NOT NULL, "
            "PRIMARY KEY (conversation_id, version))",
            *(
                f"CREATE INDEX IF NOT EXISTS {name} ON {self._table} ({columns})"
                for name, columns in (
                    ("opsloop_usage_user", "platform, user_id, day"),
                    ("opsloop_usage_channel", "platform, channel, day"),
                    ("opsloop_usage_at", "at"),
                )
            ),
            f"CREATE TABLE IF NOT EXISTS {self._authors} (conversation_id TEXT PRIMARY KEY, "
            "platform TEXT NOT NULL, channel TEXT NOT NULL, author TEXT NOT NULL, "
            "version INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self._position} "
            f"(name TEXT PRIMARY KEY, position {big} NOT NULL)",
        ]

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._pg else statement

    # -- following the log -----------------------------------------------------------------
    def position(self) -> int:
        """The notification id folded so far."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(self._sql(f"SELECT position FROM {self._position} WHERE name = ?"), (_NAME,))
            row = c.fetchone()
        return int(row["position"]) if row else 0

    def catch_up(self) -> int:
        """Fold every relevant notification after the stored position; returns how many."""
        done = 0
        position = self.position()
        while True:
            notes = self._recorder.select_notifications(
                start=position, limit=_BATCH, topics=self._topics, inclusive_of_start=False
            )
            if not notes:
                return done
            events = [self._mapper.to_domain_event(n) for n in notes]
            authors = self._read_authors(sorted({str(e.originator_id) for e in events}))
            rows = [r for r in (fold(authors, e) for e in events) if r is not None]
            position = notes[-1].id
            self._write(authors.values(), rows, position)
            done += len(notes)
            if len(notes) < _BATCH:
                return done

    def _read_authors(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        marks = ",".join("?" * len(ids))
        with self._datastore.transaction(commit=False) as c:
            c.execute(
                self._sql(f"SELECT * FROM {self._authors} WHERE conversation_id IN ({marks})"),
                list(ids),
            )
            names = ("conversation_id", "platform", "channel", "author", "version")
            return {r["conversation_id"]: {k: r[k] for k in names} for r in c.fetchall()}

    def _write(
        self, authors: Iterable[dict[str, Any]], rows: list[tuple[Any, ...]], position: int
    ) -> None:
        insert = (
            f"INSERT INTO {self._table} ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))}) "
            "ON CONFLICT (conversation_id, version) DO NOTHING"
        )
        author = (
            f"INSERT INTO {self._authors} (conversation_id, platform, channel, author, version) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET "
            "author = excluded.author, version = excluded.version "
            f"WHERE {self._authors}.version < excluded.version"
        )
        moved = (
            f"INSERT INTO {self._position} (name, position) VALUES (?, ?) "
            f"ON CONFLICT (name) DO UPDATE SET position = excluded.position "
            f"WHERE {self._position}.position < excluded.position"
        )
        names = ("conversation_id", "platform", "channel", "author", "version")
        with self._datastore.transaction(commit=True) as c:
            if rows:
                c.executemany(self._sql(insert), rows)
            # Usage rows go first, in log order, then authors by id: every catch-up takes its
            # row locks in one global order, so two of them on PostgreSQL cannot deadlock.
            ordered = sorted(authors, key=lambda a: str(a["conversation_id"]))
            c.executemany(self._sql(author), [tuple(a[k] for k in names) for a in ordered])
            c.execute(self._sql(moved), (_NAME, position))

    # -- queries -------------------------------------------------------------------------
    def raw_rows(self) -> list[dict[str, Any]]:
        """Every ledger row as stored (for the audit, which trusts none of them)."""
        with self._datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {', '.join(_COLUMNS)} FROM {self._table}")
            return [{k: r[k] for k in _COLUMNS} for r in c.fetchall()]

    def spend(
        self, *, platform: str, day: date, user: str | None = None, channel: str | None = None
    ) -> Spend:
        """What one person (``user``) or one channel spent on ``platform`` in a UTC day."""
        column, value = ("user_id", user) if user is not None else ("channel", channel)
        statement = (
            "SELECT COALESCE(SUM(cost), 0) AS spent, "
            "COALESCE(SUM(input_tokens + output_tokens), 0) AS tokens "
            f"FROM {self._table} WHERE platform = ? AND {column} = ? AND day = ?"
        )
        with self._datastore.transaction(commit=False) as c:
            c.execute(self._sql(statement), (platform, value, day.isoformat()))
            row = c.fetchone()
        return Spend(cost=float(row["spent"]), tokens=int(row["tokens"]))

    def rows(self, *, by: UsageBy, since: datetime | None = None) -> list[UsageRow]:
        """The spend grouped ``by`` person, channel, model or day, since ``since`` (or ever):
        the largest cost first (days in order)."""
        keys = ", ".join(_GROUPS[by])
        where, params = ("WHERE at >= ?", [since.timestamp()]) if since else ("", [])
        order = keys if by == "day" else f"total_cost DESC, {keys}"
        statement = (
            f"SELECT {keys}, COUNT(*) AS turns, SUM(input_tokens) AS total_in, "
            f"SUM(output_tokens) AS total_out, SUM(cost) AS total_cost "
            f"FROM {self._table} {where} GROUP BY {keys} ORDER BY {order}"
        )
        with self._datastore.transaction(commit=False) as c:
            c.execute(self._sql(statement), params)
            found = c.fetchall()
        return [
            UsageRow(
                by=by,
                key=":".join(str(r[k]) for k in _GROUPS[by]),
                turns=int(r["turns"]),
                input_tokens=int(r["total_in"]),
                output_tokens=int(r["total_out"]),
                cost=float(r["total_cost"]),
            )
            for r in found
        ]
