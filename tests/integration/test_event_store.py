"""The event log on real stores: the same class runs against SQLite and PostgreSQL.

Each test gets a fresh SQLite file or a fresh PostgreSQL database. Tampering is done the way
an attacker would: by editing, deleting or swapping rows of the library's events table
directly (``stored_events`` on SQLite, ``opsloop_events`` on PostgreSQL), then running
``opsloop audit verify``.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Repository
from eventsourcing.persistence import StoredEvent

from bot.app.application import ConversationApp, open_app
from bot.errors import SchemaTooNew, WrongCipherKey
from bot.ports import ModelReply
from bot.surface import Coordinates
from domain.chain import event_hash

HERE = Coordinates("slack", "T1", "C1", "1700000000.1")
KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()


class RawRows:
    """Direct access to the stored rows, bypassing opsloop and the library."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith("postgres")
        # The library names the PostgreSQL table after the application ("opsloop").
        self.table = "opsloop_events" if self.pg else "stored_events"

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        sql = sql.replace("stored_events", self.table)
        if self.pg:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                cur = conn.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []
        conn = sqlite3.connect(self.url[len("sqlite:///") :])
        try:
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def _id(self, cid: UUID) -> Any:
        return cid if self.pg else cid.hex

    def state(self, cid: UUID, version: int) -> bytes:
        rows = self._run(
            "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            (self._id(cid), version),
        )
        return bytes(rows[0][0])

    def set_state(self, cid: UUID, version: int, state: bytes) -> None:
        self._run(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (state, self._id(cid), version),
        )

    def delete(self, cid: UUID, version: int) -> None:
        self._run(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            (self._id(cid), version),
        )


def run_cli(
    url: str, *args: str, cipher_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``opsloop`` entry point in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env["OPSLOOP_DATABASE_URL"] = url
    if cipher_key:
        env["OPSLOOP_CIPHER_KEY"] = cipher_key
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/events.sqlite3"
        return
    import psycopg

    base = request.getfixturevalue("postgres_url")
    name = f"opsloop_t_{uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def opened(database_url: str) -> Iterator[Callable[..., ConversationApp]]:
    """Opens applications on the test's store and closes them afterwards."""
    apps: list[ConversationApp] = []

    def open_(cipher_key: str | None = None, audit_key: bytes | None = None) -> ConversationApp:
        apps.append(open_app(database_url=database_url, cipher_key=cipher_key, audit_key=audit_key))
        return apps[-1]

    yield open_
    for app in apps:
        app.close()


def reply(text: str) -> ModelReply:
    return ModelReply(
        text=text,
        provider="ollama",
        model="llama3.1",
        input_tokens=40,
        output_tokens=8,
        tokens_estimated=False,
        cost=0.0,
        priced=False,
        latency_ms=250,
        attempts=1,
    )


def conversation(app: ConversationApp) -> UUID:
    cid, _ = app.receive_message(
        coordinates=HERE, message_key="m1", author="alice", text="disk full on ci-3?"
    )
    app.record_model_reply(cid, reply=reply("<helpers>df -h</helpers>"), prompt_fingerprint="f")
    app.refuse_block(cid, block_id="t1b1", reason="policy: no shell")
    app.record_model_reply(cid, reply=reply("probably /var/log"), prompt_fingerprint="f")
    app.answer(cid, text="probably /var/log")
    return cid  # 6 events


class TestEventStore:
    """Behaviour that must hold on every store."""

    def test_an_intact_log_verifies_and_exits_0(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        cid = conversation(opened())
        result = run_cli(database_url, "audit", "verify", str(cid)[:8])
        assert result.returncode == 0, result.stderr
        assert "intact: 1 conversation(s), 6 event(s)" in result.stdout

    def test_an_altered_event_is_named_and_exits_1(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        cid = conversation(opened())
        raw = RawRows(database_url)
        raw.set_state(cid, 2, raw.state(cid, 2).replace(b"ci-3", b"ci-4"))
        result = run_cli(database_url, "audit", "verify", "--all")
        assert result.returncode == 1
        assert f"conversation {cid}: event 2 (MessageReceived) was altered" in result.stdout

    def test_an_altered_last_event_is_detected(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        app = opened()
        cid = conversation(app)
        app.list_conversations()  # the read model has seen the head
        raw = RawRows(database_url)
        raw.set_state(cid, 6, raw.state(cid, 6).replace(b"/var/log", b"/tmp"))
        report = opened().verify(cid)
        assert [(p.version, p.event_type) for p in report.problems] == [(6, "Answered")]

    def test_a_removed_event_is_detected(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        cid = conversation(opened())
        RawRows(database_url).delete(cid, 3)
        result = run_cli(database_url, "audit", "verify", str(cid))
        assert result.returncode == 1
        assert "event 3 is missing" in result.stdout

    def test_reordered_events_are_detected(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        cid = conversation(opened())
        raw = RawRows(database_url)
        third, fifth = raw.state(cid, 3), raw.state(cid, 5)  # both ModelReplied: same topic
        raw.set_state(cid, 3, fifth)
        raw.set_state(cid, 5, third)
        result = run_cli(database_url, "audit", "verify", "--all")
        assert result.returncode == 1
        assert "event 3 (ModelReplied)" in result.stdout

    def test_concurrent_writers_both_get_recorded_in_order(
        self, opened: Callable[..., ConversationApp]
    ) -> None:
        first, second = opened(), opened()
        cid, _ = first.receive_message(coordinates=HERE, message_key="start", author="a", text="go")
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def write(app: ConversationApp, name: str) -> None:
            try:
                barrier.wait()
                for n in range(15):
                    app.receive_message(
                        coordinates=HERE, message_key=f"{name}{n}", author=name, text=f"{name} {n}"
                    )
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(app, name))
            for app, name in ((first, "x"), (second, "y"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        texts = [e["text"] for e in first.timeline(cid) if e["type"] == "MessageReceived"]
        assert len(texts) == 31
        for name in "xy":
            assert [t for t in texts if t.startswith(name)] == [f"{name} {n}" for n in range(15)]
        assert first.verify(cid).intact

    def test_a_conflicting_write_is_retried_by_reloading(
        self, opened: Callable[..., ConversationApp]
    ) -> None:
        mine, theirs = opened(), opened()
        cid, _ = mine.receive_message(coordinates=HERE, message_key="m1", author="a", text="hi")
        calls = []

        def command(conv: Any) -> None:
            calls.append(conv.version)
            if len(calls) == 1:  # another replica appends between our load and our save
                theirs.receive_message(
                    coordinates=HERE, message_key="m2", author="b", text="me too"
                )
            conv.record_model_failure(provider="p", model="m", error="timeout", attempts=1)

        mine._update(cid, command)
        assert calls == [2, 3]
        assert [e["type"] for e in mine.timeline(cid)][-2:] == ["MessageReceived", "ModelFailed"]
        assert mine.verify(cid).intact

    def test_loading_from_a_snapshot_gives_the_same_state(
        self, opened: Callable[..., ConversationApp]
    ) -> None:
        app = opened(audit_key=b"k" * 32)  # only sealed snapshots are used
        cid, _ = app.receive_message(coordinates=HERE, message_key="m0", author="a", text="t")
        for n in range(1, 150):
            app.receive_message(coordinates=HERE, message_key=f"m{n}", author="a", text="t")
        assert app.snapshots is not None and len(list(app.snapshots.get(cid))) == 1
        # Uncached repositories, so both really load from the store.
        with_snapshot = Repository(event_store=app.events, snapshot_store=app.snapshots).get(cid)
        without = Repository(event_store=app.events).get(cid)
        assert vars(with_snapshot).keys() == vars(without).keys()
        assert (with_snapshot.version, with_snapshot.last_hash, with_snapshot.counts) == (
            without.version,
            without.last_hash,
            without.counts,
        )

    def test_events_are_encrypted_at_rest_and_a_wrong_key_is_one_line(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        cid = conversation(opened(cipher_key=KEY_A))
        assert b"ci-3" not in RawRows(database_url).state(cid, 2)
        assert opened(cipher_key=KEY_A).timeline(cid)[1]["text"] == "disk full on ci-3?"
        assert_one_line_error(
            run_cli(database_url, "replay", str(cid), cipher_key=KEY_B),
            "cannot be decrypted with OPSLOOP_CIPHER_KEY",
        )
        assert_one_line_error(run_cli(database_url, "replay", str(cid)), "OPSLOOP_CIPHER_KEY")
        with pytest.raises(WrongCipherKey):
            opened(cipher_key=KEY_B).get(cid)

    def test_an_old_event_version_is_upcast_and_its_chain_still_verifies(
        self, opened: Callable[..., ConversationApp]
    ) -> None:
        app = opened()
        cid, _ = app.receive_message(coordinates=HERE, message_key="m1", author="a", text="hi")
        # A ModelFailed as the first schema wrote it: no "model" field, no class_version.
        v1 = {
            "timestamp": datetime.now(UTC),
            "prev_hash": app.get(cid).last_hash,
            "provider": "groq",
            "error": "HTTP 503",
            "attempts": 2,
        }
        app.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=cid,
                    originator_version=3,
                    topic="domain.events:ModelFailed",
                    state=app.mapper.transcoder.encode(v1),
                )
            ]
        )
        upcast = app.timeline(cid)[2]
        assert (upcast["type"], upcast["model"], upcast["provider"]) == ("ModelFailed", "", "groq")
        as_v2 = event_hash(
            type_name="ModelFailed",
            version=3,
            timestamp=v1["timestamp"],
            payload={**v1, "model": ""},
        )
        assert app.get(cid).last_hash != as_v2  # the chain uses the stored (v1) form
        app.answer(cid, text="fell back")
        assert app.verify(cid).intact

    def test_a_store_written_by_a_newer_schema_is_refused_in_one_line(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        app = opened()
        cid, _ = app.receive_message(coordinates=HERE, message_key="m1", author="a", text="hi")
        future = {
            "timestamp": datetime.now(UTC),
            "prev_hash": app.get(cid).last_hash,
            "provider": "groq",
            "model": "m",
            "error": "e",
            "attempts": 1,
            "region": "eu",
            "class_version": 3,
        }
        app.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=cid,
                    originator_version=3,
                    topic="domain.events:ModelFailed",
                    state=app.mapper.transcoder.encode(future),
                )
            ]
        )
        assert_one_line_error(run_cli(database_url, "replay", str(cid)), "newer opsloop")
        app.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=cid,
                    originator_version=4,
                    topic="domain.events:Teleported",
                    state=app.mapper.transcoder.encode({"timestamp": datetime.now(UTC)}),
                )
            ]
        )
        with pytest.raises(SchemaTooNew):
            app.timeline(cid)

    def test_ids_that_are_unknown_malformed_or_ambiguous_get_one_line(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        app = opened()
        ids = [
            app.receive_message(
                coordinates=Coordinates("cli", "", "c", str(n)),
                message_key="k",
                author="a",
                text="t",
            )[0]
            for n in range(17)
        ]
        heads = [i.hex[0] for i in ids]
        shared = next(h for h in heads if heads.count(h) > 1)
        assert_one_line_error(run_cli(database_url, "replay", shared), "more than one")
        assert_one_line_error(run_cli(database_url, "replay", "xyz!"), "not a conversation id")
        assert_one_line_error(run_cli(database_url, "replay", str(uuid4())), "no conversation")

    def test_the_cli_lists_and_replays_a_conversation(
        self, opened: Callable[..., ConversationApp], database_url: str
    ) -> None:
        cid = conversation(opened())
        listed = run_cli(database_url, "conversations", "--platform", "slack", "--user", "alice")
        assert listed.returncode == 0 and str(cid) in listed.stdout
        text = run_cli(database_url, "replay", str(cid)[:6])
        assert text.returncode == 0 and "alice said:" in text.stdout
        assert "block t1b1 refused: policy: no shell" in text.stdout
        lines = run_cli(database_url, "replay", str(cid), "--format", "json").stdout.splitlines()
        assert len(lines) == 6


def test_an_unreachable_database_or_malformed_url_is_one_line() -> None:
    assert_one_line_error(
        run_cli("postgresql://u:p@127.0.0.1:1/nothing", "conversations"),
        "cannot connect to PostgreSQL",
    )
    assert_one_line_error(run_cli("mysql://somewhere/db", "conversations"), "malformed")
    assert_one_line_error(run_cli("sqlite:////proc/no/such/dir/x.db", "conversations"), "SQLite")
