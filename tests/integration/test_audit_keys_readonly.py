"""The audit as an auditor runs it: read-only, with the right keys or a clear key problem.

Verify and checkpoint work with a SELECT-only PostgreSQL role and on a SQLite file on a
read-only mount, creating and writing nothing; a wrong or missing cipher key or audit key is
reported as a key problem (exit 2, one line), never as tampering; opsloop refuses to make a
mixed store; and a store written before the audit key existed keeps verifying once keyed.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from bot.app.application import open_app
from tests.conftest import require_real
from tests.integration.audit_helpers import KEY, Attacker, run_audit, take_checkpoint
from tests.integration.test_event_store import HERE, conversation, database_url, reply

__all__ = ["database_url"]
CIPHER = base64.b64encode(b"c" * 32).decode()
OTHER = base64.b64encode(b"o" * 32).decode()


def keyed_store(url: str, **keys: str) -> object:
    app = open_app(database_url=url, audit_key=KEY, **keys)  # type: ignore[arg-type]
    try:
        cid = conversation(app)
        app.list_conversations()
    finally:
        app.close()
    return cid


def key_problem(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "TAMPERED" not in result.stdout and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    for fragment in fragments:
        assert fragment in line, line


def test_a_wrong_or_missing_cipher_key_is_a_key_problem(database_url: str) -> None:
    keyed_store(database_url, cipher_key=CIPHER)
    verify = ("audit", "verify", "--all")
    assert run_audit(database_url, *verify, OPSLOOP_CIPHER_KEY=CIPHER).returncode == 0
    key_problem(
        run_audit(database_url, *verify, OPSLOOP_CIPHER_KEY=OTHER),
        "cannot be decrypted with OPSLOOP_CIPHER_KEY",
        "a key problem",
    )
    key_problem(run_audit(database_url, *verify), "set OPSLOOP_CIPHER_KEY", "a key problem")


def test_a_wrong_or_missing_audit_key_is_a_key_problem(database_url: str) -> None:
    keyed_store(database_url)
    assert run_audit(database_url, "audit", "verify", "--all").returncode == 0  # the right key
    other = base64.b64encode(b"x" * 32).decode()
    key_problem(
        run_audit(database_url, "audit", "verify", "--all", OPSLOOP_AUDIT_KEY=other),
        "wrong OPSLOOP_AUDIT_KEY",
    )
    key_problem(
        run_audit(database_url, "audit", "verify", "--all", OPSLOOP_AUDIT_KEY=""),
        "set OPSLOOP_AUDIT_KEY",
    )


def test_the_audit_key_can_come_from_a_file(database_url: str, tmp_path: Path) -> None:
    keyed_store(database_url)
    key_file = tmp_path / "audit.key"
    key_file.write_text(base64.b64encode(KEY).decode() + "\n")
    result = run_audit(
        database_url,
        "audit",
        "verify",
        "--all",
        OPSLOOP_AUDIT_KEY="",
        OPSLOOP_AUDIT_KEY_FILE=str(key_file),
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_verify_checkpoint_and_replay_work_with_a_select_only_role(
    database_url: str, tmp_path: Path
) -> None:
    cid = keyed_store(database_url)
    import psycopg

    role = f"auditor_{uuid4().hex[:8]}"
    dbname = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
        conn.execute(f"GRANT CONNECT ON DATABASE {dbname} TO {role}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    host = database_url.split("@", 1)[1]
    auditor = f"postgresql://{role}:pw@{host}"
    try:
        checkpoint = tmp_path / "cp.json"
        take_checkpoint(auditor, checkpoint)
        result = run_audit(auditor, "audit", "verify", "--all", "--against", str(checkpoint))
        assert result.returncode == 0, result.stderr
        Attacker(database_url).edit_json(cid, 6, text="forged")  # type: ignore[arg-type]
        result = run_audit(auditor, "audit", "verify", "--all", "--against", str(checkpoint))
        assert result.returncode == 1 and "event 6 (Answered) was altered" in result.stdout
        replay = run_audit(auditor, "replay", str(cid)[:8])
        assert replay.returncode == 0, replay.stderr
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory mounted read-only (root cannot write there either: a full disk's worst)."""
    where = tmp_path / "ro"
    where.mkdir()
    yield where
    subprocess.run(["umount", str(where)], capture_output=True, check=False)


def test_verify_checkpoint_and_replay_work_on_a_read_only_sqlite_file(
    tmp_path: Path, read_only_dir: Path
) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    cid = keyed_store(url)
    shutil.copy(tmp_path / "events.sqlite3", read_only_dir / "events.sqlite3")
    mounted = subprocess.run(
        f"mount --bind {read_only_dir} {read_only_dir} && mount -o remount,bind,ro {read_only_dir}",
        shell=True,
        capture_output=True,
        check=False,
    )
    require_real(mounted.returncode == 0, f"cannot mount read-only: {mounted.stderr!r}")
    ro_url = f"sqlite:///{read_only_dir}/events.sqlite3"
    checkpoint = tmp_path / "cp.json"
    take_checkpoint(ro_url, checkpoint)
    result = run_audit(ro_url, "audit", "verify", "--all", "--against", str(checkpoint))
    assert result.returncode == 0, result.stderr
    replay = run_audit(ro_url, "replay", str(cid)[:8])
    assert replay.returncode == 0 and "probably /var/log" in replay.stdout, replay.stderr


def test_verify_and_replay_create_and_write_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.sqlite3"
    cid = keyed_store(url)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert run_audit(url, "audit", "verify", "--all").returncode == 0
    assert run_audit(url, "replay", str(cid)).returncode == 0
    assert run_audit(url, "audit", "checkpoint").returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_mixed_store_is_refused_until_db_encrypt(database_url: str, tmp_path: Path) -> None:
    cid = keyed_store(database_url)
    checkpoint = tmp_path / "cp.json"
    take_checkpoint(database_url, checkpoint)
    refused = run_audit(database_url, "conversations", OPSLOOP_CIPHER_KEY=CIPHER)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == (
        "opsloop: the event store holds unencrypted events: OPSLOOP_CIPHER_KEY would mix "
        "encrypted ones into it; run `opsloop db encrypt` once to encrypt it, or unset the key"
    )
    done = run_audit(database_url, "db", "encrypt", OPSLOOP_CIPHER_KEY=CIPHER)
    assert done.returncode == 0 and "encrypted 6 record(s)" in done.stdout, done.stderr
    assert b"alice" not in Attacker(database_url).state(cid, 2)  # type: ignore[arg-type]
    unkeyed = run_audit(database_url, "conversations")
    assert unkeyed.returncode == 2 and "set OPSLOOP_CIPHER_KEY" in unkeyed.stderr
    result = run_audit(
        database_url,
        "audit",
        "verify",
        "--all",
        "--against",
        str(checkpoint),
        OPSLOOP_CIPHER_KEY=CIPHER,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_store_from_before_the_audit_key_keeps_verifying_once_keyed(database_url: str) -> None:
    legacy = open_app(database_url=database_url)  # no key: today's stores
    cid = conversation(legacy)
    legacy.close()
    keyed = open_app(database_url=database_url, audit_key=KEY)
    keyed.receive_message(coordinates=HERE, message_key="m2", author="alice", text="and now?")
    keyed.record_model_reply(cid, reply=reply("fine now"), prompt_fingerprint="f")
    keyed.close()
    result = run_audit(database_url, "audit", "verify", "--all", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # The switch (AuditKeyed) and the two changes are sealed; the six old events are not.
    assert (report["intact"], report["sealed"], report["unsealed"]) == (True, 3, 6)
    # An old, unsealed event is still vouched for: the first sealed event covers its hash.
    Attacker(database_url).edit_json(cid, 6, text="forged")  # type: ignore[arg-type]
    result = run_audit(database_url, "audit", "verify", "--all")
    assert result.returncode == 1
    assert f"conversation {cid}: event 6 (Answered) was altered" in result.stdout
