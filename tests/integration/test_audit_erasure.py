"""Erasure without breaking the proof: ``opsloop audit erase --user`` destroys one person's
key; their words replay as ``[erased]``, nobody else's do, ``UserErased`` is recorded, and the
chain and a checkpoint taken before still verify -- on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from bot.app.application import open_app
from bot.surface import Coordinates
from tests.integration.audit_helpers import KEY, Attacker, run_audit, take_checkpoint
from tests.integration.test_event_store import HERE, conversation, database_url, reply

__all__ = ["database_url"]
THERE = Coordinates("slack", "T1", "C2", "1700000000.2")


def test_erasing_a_person_keeps_the_proof_and_shows_erased(
    database_url: str, tmp_path: Path
) -> None:
    app = open_app(database_url=database_url, audit_key=KEY)
    try:
        alice, _ = app.receive_message(
            coordinates=HERE, message_key="m1", author="alice", text="disk full on ci-3?"
        )
        for n in range(100):  # long enough for a snapshot (it holds her words in clear)
            app.record_model_reply(alice, reply=reply(f"ci-3 turn {n}"), prompt_fingerprint="f")
        app.answer(alice, text="probably /var/log on ci-3")
        bob, _ = app.receive_message(
            coordinates=THERE, message_key="b1", author="bob", text="is ci-9 up?"
        )
        app.answer(bob, text="yes, ci-9 is up")
        app.list_conversations()
    finally:
        app.close()
    attacker = Attacker(database_url)
    stored = attacker.sql("SELECT state FROM {events}")
    assert not any(b"ci-3" in bytes(row[0]) for row in stored)  # never stored in clear
    checkpoint = tmp_path / "cp.json"
    assert take_checkpoint(database_url, checkpoint)["snapshots"]

    done = run_audit(database_url, "audit", "erase", "--user", "slack:alice")
    assert done.returncode == 0, done.stderr
    assert "erased slack:alice: their key destroyed; UserErased recorded in 1 conversation(s)" in (
        done.stdout
    )

    snapshots = attacker.sql("SELECT state FROM {snapshots}")
    assert not any(b"ci-3" in bytes(row[0]) for row in snapshots)  # the caches went too
    result = run_audit(database_url, "audit", "verify", "--all", "--against", str(checkpoint))
    assert result.returncode == 0, result.stdout + result.stderr
    replay = run_audit(database_url, "replay", str(alice))
    assert replay.returncode == 0, replay.stderr
    assert "ci-3" not in replay.stdout and "[erased]" in replay.stdout
    assert "the words of slack:alice were erased" in replay.stdout
    assert "alice said:" in replay.stdout  # who spoke is kept: only what they said is erased
    other = run_audit(database_url, "replay", str(bob))
    assert "is ci-9 up?" in other.stdout and "yes, ci-9 is up" in other.stdout

    again = open_app(database_url=database_url, audit_key=KEY)  # and the bot goes on
    try:
        assert again.get(alice).answer_text == "[erased]"
        again.receive_message(coordinates=HERE, message_key="m9", author="alice", text="hi again")
        assert again.timeline(alice)[-1]["text"] == "hi again"  # a new key for new words
    finally:
        again.close()
    final = run_audit(database_url, "audit", "verify", "--all", "--against", str(checkpoint))
    assert final.returncode == 0, final.stdout + final.stderr


def test_erasing_someone_unknown_says_so(database_url: str) -> None:
    app = open_app(database_url=database_url, audit_key=KEY)
    try:
        conversation(app)
    finally:
        app.close()
    done = run_audit(database_url, "audit", "erase", "--user", "slack:nobody")
    assert done.returncode == 0, done.stderr
    assert "no key of theirs was stored; UserErased recorded in 0 conversation(s)" in done.stdout
    bad = run_audit(database_url, "audit", "erase", "--user", "alice")
    assert bad.returncode == 2 and "give the person as platform:id" in bad.stderr
