"""The attacker of the audit tests: write access to the database, no audit key.

``Attacker`` edits the stored rows the way an operator with a database shell would -- the
library's events and snapshots tables (``stored_*`` on SQLite, ``opsloop_*`` on PostgreSQL)
and opsloop's listing table -- decoding and re-encoding a row's JSON when the edit needs it,
and recomputing the unkeyed ``prev_hash`` chain, which anyone can do.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from bot.audit.reader import mapper_for
from domain.chain import event_hash
from domain.seal import SEAL

KEY = b"K" * 32
KEY_B64 = "S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s="  # base64 of KEY


def run_audit(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real ``opsloop`` entry point, in a child process, with the audit key by default."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    child["OPSLOOP_DATABASE_URL"] = url
    child.setdefault("OPSLOOP_AUDIT_KEY", KEY_B64)
    child.update(env)
    child = {k: v for k, v in child.items() if v}
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=child,
        timeout=120,
        check=False,
    )


class Attacker:
    """Direct access to the stored rows, bypassing opsloop and the library."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith("postgres")
        self.events = "opsloop_events" if self.pg else "stored_events"
        self.snapshots = "opsloop_snapshots" if self.pg else "stored_snapshots"
        self.mapper = mapper_for(None, None)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        statement = statement.replace("{events}", self.events)
        statement = statement.replace("{snapshots}", self.snapshots)
        if self.pg:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                cur = conn.execute(statement.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []
        conn = sqlite3.connect(self.url[len("sqlite:///") :])
        try:
            rows = conn.execute(statement, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def oid(self, cid: UUID) -> Any:
        return cid if self.pg else cid.hex

    def state(self, cid: UUID, version: int, table: str = "{events}") -> bytes:
        rows = self.sql(
            f"SELECT state FROM {table} WHERE originator_id = ? AND originator_version = ?",
            (self.oid(cid), version),
        )
        return bytes(rows[0][0])

    def set_state(self, cid: UUID, version: int, state: bytes, table: str = "{events}") -> None:
        self.sql(
            f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (state, self.oid(cid), version),
        )

    def decoded(self, cid: UUID, version: int, table: str = "{events}") -> dict[str, Any]:
        return self.mapper.transcoder.decode(self.state(cid, version, table))

    def set_decoded(
        self, cid: UUID, version: int, state: dict[str, Any], table: str = "{events}"
    ) -> None:
        self.set_state(cid, version, self.mapper.transcoder.encode(state), table)

    def edit_json(self, cid: UUID, version: int, **fields: Any) -> None:
        state = self.decoded(cid, version)
        state.update(fields)
        self.set_decoded(cid, version, state)

    def delete(self, cid: UUID, *versions: int) -> None:
        for version in versions:
            self.sql(
                "DELETE FROM {events} WHERE originator_id = ? AND originator_version = ?",
                (self.oid(cid), version),
            )

    def delete_conversation(self, cid: UUID) -> None:
        self.sql("DELETE FROM {events} WHERE originator_id = ?", (self.oid(cid),))
        self.sql("DELETE FROM opsloop_conversations WHERE conversation_id = ?", (str(cid),))

    def topic(self, cid: UUID, version: int) -> str:
        rows = self.sql(
            "SELECT topic FROM {events} WHERE originator_id = ? AND originator_version = ?",
            (self.oid(cid), version),
        )
        return str(rows[0][0])

    def insert(self, cid: UUID, version: int, topic: str, state: bytes) -> None:
        self.sql(
            "INSERT INTO {events} (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)",
            (self.oid(cid), version, topic, state),
        )

    def recompute_chain(self, cid: UUID, start: int, last: int) -> None:
        """Set every ``prev_hash`` after ``start`` to the hash of the (edited) event before it,
        as the unkeyed chain would have it (seals left as they were: the key is unknown)."""
        for version in range(start + 1, last + 1):
            before = self.decoded(cid, version - 1)
            topic = self.topic(cid, version - 1)
            prev = event_hash(
                type_name=topic.rsplit(":", 1)[-1],
                version=version - 1,
                timestamp=before["timestamp"],
                payload=before,
            )
            state = self.decoded(cid, version)
            seal = state.pop(SEAL, None)
            state["prev_hash"] = prev
            if seal:
                state[SEAL] = seal
            self.set_decoded(cid, version, state)

    def listing(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self.sql(statement, params)


def take_checkpoint(url: str, path: Path) -> dict[str, Any]:
    """``opsloop audit checkpoint --out path`` (asserting it worked)."""
    done = run_audit(url, "audit", "checkpoint", "--out", str(path))
    assert done.returncode == 0, done.stderr
    return json.loads(path.read_text())
