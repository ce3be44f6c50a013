"""Leases on conversations' loops, in the shared store: one row per conversation.

Why a row and not a lock: a lock dies with its connection, but a process's connections come
from a pool and a loop's steps run on many of them; a row with an expiry works the same on
PostgreSQL and on SQLite (every process of one host), outlives nothing but its expiry, and is
renewed while its holder works. Each claim is one atomic statement (an upsert whose update
applies only when the row is free, expired or already ours), so two processes can never both
get it. ``token`` grows with every claim that is not a renewal: it is the fencing token the
aggregate checks (``LoopClaimed``), so a holder that paused past its expiry and came back can
record nothing more. Time is the database's clock, so replicas' clocks need not agree.

Releasing sets the expiry to 0 and keeps the holder, so the next claim can tell a released
lease (``taken_from`` is empty) from one whose holder died (``taken_from`` names it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

_PG_NOW = "extract(epoch from clock_timestamp())"
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


@dataclass(frozen=True)
class Lease:
    """A claimed lease: its fencing token, expiry (epoch seconds, the database's clock) and
    the holder whose expired lease this one replaced (``""`` if it was free)."""

    token: int
    until: float
    taken_from: str = ""


class LeaseTable:
    """``opsloop_loop_leases``: who runs which conversation's loop, until when."""

    def __init__(self, *, datastore: Any, postgres: bool, prefix: str = "") -> None:
        self._datastore = datastore
        self._pg = postgres
        self.table = f"{prefix}opsloop_loop_leases"
        self._now = _PG_NOW if postgres else _SQLITE_NOW

    def create_statements(self) -> list[str]:
        """DDL of the table (run by the schema migration, never at start)."""
        real = "DOUBLE PRECISION" if self._pg else "REAL"
        big = "BIGINT" if self._pg else "INTEGER"
        return [
            f"CREATE TABLE IF NOT EXISTS {self.table} (conversation_id TEXT PRIMARY KEY, "
            f"holder TEXT NOT NULL, token {big} NOT NULL, lease_until {real} NOT NULL, "
            "taken_from TEXT NOT NULL DEFAULT '')"
        ]

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._pg else statement

    def claim(self, conversation_id: UUID, *, holder: str, seconds: float) -> Lease | None:
        """The lease for ``holder`` (renewed if already its own), or None while another
        holder's lease runs."""
        t, now = self.table, self._now
        mine_live = f"{t}.holder = excluded.holder AND {t}.lease_until > {now}"
        statement = (
            f"INSERT INTO {t} (conversation_id, holder, token, lease_until, taken_from) "
            f"VALUES (?, ?, 1, {now} + ?, '') "
            "ON CONFLICT (conversation_id) DO UPDATE SET "
            f"token = CASE WHEN {mine_live} THEN {t}.token ELSE {t}.token + 1 END, "
            f"taken_from = CASE WHEN {mine_live} THEN {t}.taken_from "
            f"WHEN {t}.lease_until > 0 AND {t}.holder <> excluded.holder THEN {t}.holder "
            "ELSE '' END, "
            "holder = excluded.holder, lease_until = excluded.lease_until "
            f"WHERE {t}.holder = excluded.holder OR {t}.lease_until <= {now} "
            "RETURNING token, lease_until, taken_from"
        )
        with self._datastore.transaction(commit=True) as c:
            c.execute(self._sql(statement), (str(conversation_id), holder, float(seconds)))
            row = c.fetchone()
        if row is None:
            return None
        return Lease(int(row["token"]), float(row["lease_until"]), str(row["taken_from"]))

    def renew(
        self, conversation_id: UUID, *, holder: str, token: int, seconds: float
    ) -> float | None:
        """Extend a lease still held; its new expiry, or None when it was lost."""
        statement = (
            f"UPDATE {self.table} SET lease_until = {self._now} + ? "
            "WHERE conversation_id = ? AND holder = ? AND token = ? "
            f"AND lease_until > {self._now} RETURNING lease_until"
        )
        with self._datastore.transaction(commit=True) as c:
            c.execute(self._sql(statement), (float(seconds), str(conversation_id), holder, token))
            row = c.fetchone()
        return None if row is None else float(row["lease_until"])

    def release(self, conversation_id: UUID, *, holder: str, token: int) -> None:
        """Give the lease up (a no-op when it was already taken over)."""
        statement = (
            f"UPDATE {self.table} SET lease_until = 0 "
            "WHERE conversation_id = ? AND holder = ? AND token = ?"
        )
        with self._datastore.transaction(commit=True) as c:
            c.execute(self._sql(statement), (str(conversation_id), holder, token))

    def holders(self) -> dict[UUID, str]:
        """Conversations whose lease is running now, and who holds each."""
        statement = (
            f"SELECT conversation_id, holder FROM {self.table} WHERE lease_until > {self._now}"
        )
        with self._datastore.transaction(commit=False) as c:
            c.execute(statement)
            return {UUID(r["conversation_id"]): str(r["holder"]) for r in c.fetchall()}
