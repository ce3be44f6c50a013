"""Many processes on one real PostgreSQL (issue 13): a fresh schema, parallel asks, and 32
writers at once. Every process is the real ``opsloop`` command or the real application in a
child process; nothing a person would see may fail, and every record must read well."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from bot.app.application import open_app
from bot.surface import Coordinates
from tests.replicas import (
    assert_coherent_and_verified,
    environment,
    finish,
    fresh_postgres,
    json_line,
    opsloop_command,
    start,
    timeline,
)

__all__ = ["fresh_postgres"]  # the fixture, used by name

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCRIPT = "turns:\n" + "".join(
    f"  - |\n    Checking {n}.\n    <helpers>\n    print({n} * 2)\n    </helpers>\n"
    f"  - Done with check {n}.\n"
    for n in range(40)
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "script.yaml").write_text(SCRIPT, encoding="utf-8")
    return tmp_path


def test_eight_processes_starting_at_once_on_a_fresh_database_all_work_and_migrate_once(
    fresh_postgres: str, home: Path
) -> None:
    env = environment(fresh_postgres, home)
    askers = [start(["ask", f"question {n}", "--json"], env, home) for n in range(8)]
    results = [finish(p) for p in askers]
    for status, out, err in results:
        assert status == 0, err
        assert "Traceback" not in err and "concurrently" not in err
        assert json_line(out)["answer"] == "Done with check 0."
    for _status, out, _ in results:
        assert_coherent_and_verified(fresh_postgres, json_line(out)["conversation_id"], home)
    upgrade = subprocess.run(
        [opsloop_command(), "db", "upgrade", "--json"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert (json_line(upgrade.stdout)["before"], json_line(upgrade.stdout)["after"]) == (4, 4)


def test_opening_a_current_store_runs_no_ddl(fresh_postgres: str) -> None:
    open_app(database_url=fresh_postgres).close()  # the migration: once
    with psycopg.connect(fresh_postgres, autocommit=True) as conn:
        conn.execute("CREATE TABLE ddl_seen (tag TEXT)")
        conn.execute(
            "CREATE FUNCTION note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO ddl_seen VALUES (tg_tag); END $$"
        )
        conn.execute(
            "CREATE EVENT TRIGGER watch_ddl ON ddl_command_start EXECUTE FUNCTION note_ddl()"
        )
    for _ in range(3):  # three more starts
        app = open_app(database_url=fresh_postgres)
        app.receive_message(
            coordinates=Coordinates("cli", "h", "me", "t"),
            message_key=str(_),
            author="me",
            text="hi",
        )
        assert app.schema_version == 4
        app.close()
    with psycopg.connect(fresh_postgres, autocommit=True) as conn:
        seen = conn.execute("SELECT tag FROM ddl_seen").fetchall()
        conn.execute("DROP EVENT TRIGGER watch_ddl")
    assert seen == []


def test_ten_parallel_asks_to_one_conversation_store_every_message_and_settle_every_block(
    fresh_postgres: str, home: Path
) -> None:
    env = environment(fresh_postgres, home)
    status, out, err = finish(start(["ask", "first", "--json"], env, home))
    assert status == 0, err
    cid = json_line(out)["conversation_id"]
    askers = [
        start(["ask", f"parallel {n}", "--conversation", cid, "--json"], env, home)
        for n in range(10)
    ]
    results = [finish(p) for p in askers]
    for status, out, err in results:
        assert status == 0, err
        assert "Traceback" not in err
        assert json_line(out)["answer"]  # each got the answer that covered its message
    events = assert_coherent_and_verified(fresh_postgres, cid, home)
    texts = [e["text"] for e in events if e["type"] == "MessageReceived"]
    assert sorted(texts) == sorted(["first", *(f"parallel {n}" for n in range(10))])
    holders = {e["by"] for e in events if e["type"] == "LoopClaimed"}
    assert len(holders) >= 2  # several processes ran it, one after the other
    assert [e["type"] for e in events][-1] == "Answered"


WRITER = textwrap.dedent(
    """
    import sys, threading
    from bot.app.application import open_app
    from bot.surface import Coordinates
    url, name = sys.argv[1], sys.argv[2]
    app = open_app(database_url=url)
    one = Coordinates("slack", "T1", "C1", "busy-thread")
    failures = []
    def write(n):
        try:
            for m in range(8):
                app.receive_message(coordinates=one, message_key=f"{name}-{n}-{m}",
                                    author=f"{name}{n}", text=f"{name} {n} {m}")
                if m % 4 == 0:
                    app.list_conversations()
        except Exception as exc:
            failures.append(repr(exc))
    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    app.close()
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
    """
)


def test_thirty_two_writers_on_one_conversation_all_succeed(
    fresh_postgres: str, home: Path
) -> None:
    open_app(database_url=fresh_postgres).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, fresh_postgres, f"p{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, out + err
    app = open_app(database_url=fresh_postgres)
    try:
        [summary] = app.list_conversations()
        assert summary.messages == 4 * 8 * 8
    finally:
        app.close()
    events = timeline(fresh_postgres, summary.conversation_id)
    keys = [e["message_key"] for e in events if e["type"] == "MessageReceived"]
    assert len(keys) == len(set(keys)) == 256
    assert_coherent_and_verified(fresh_postgres, summary.conversation_id, home)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each kind, shared by the 'processes' (applications) of a test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.sqlite3"
    return str(request.getfixturevalue("fresh_postgres"))


def test_a_paused_holder_that_lost_its_lease_records_no_step_and_its_result_is_late(
    any_store: str,
) -> None:
    from bot.ports import ModelReply
    from domain.errors import LoopTakenOver
    from tests.port_fakes import run_result

    paused, taker = open_app(database_url=any_store), open_app(database_url=any_store)
    try:
        here = Coordinates("slack", "T1", "C1", "fenced")
        cid, _ = paused.receive_message(coordinates=here, message_key="m1", author="a", text="go")
        assert paused.claim_loop(cid, holder="replica-a", seconds=0.2) is not None
        reply = ModelReply("<helpers>print(1)</helpers>", "p", "m", 1, 1, False, 0.0, True, 1, 1)
        paused.record_model_reply(cid, reply=reply, prompt_fingerprint="f")
        paused.start_block(cid, block_id="t1b1", limits={})
        time.sleep(0.3)  # replica-a hangs past its lease
        lease = taker.claim_loop(cid, holder="replica-b", seconds=30)
        assert lease is not None and lease.taken_from == "replica-a"
        taker.mark_block_unknown(cid, block_id="t1b1", detail="its holder lost the loop")

        paused.finish_block(cid, block_id="t1b1", result=run_result(stdout="2\n"))  # kept
        with pytest.raises(LoopTakenOver):
            paused.record_model_reply(cid, reply=reply, prompt_fingerprint="f")
        assert paused.renew_loop(cid, holder="replica-a", token=1, seconds=30) is None
        kinds = [e["type"] for e in taker.timeline(cid)]
        assert kinds[-3:] == ["LoopClaimed", "BlockOutcomeUnknown", "BlockFinishedLate"]
    finally:
        paused.close()
        taker.close()
