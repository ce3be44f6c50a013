"""The switch to the audit key is an event: ``AuditKeyed``, the first sealed event of a
conversation that began unsealed, on real SQLite and real PostgreSQL (docs/audit.md,
"Upgrading an existing store")."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from uuid import UUID

from bot.app.application import ConversationApp, open_app
from domain.conversation import Conversation
from domain.seal import SEAL, key_id
from tests.integration.audit_helpers import KEY, Attacker, run_audit, take_checkpoint
from tests.integration.test_event_store import HERE, conversation, database_url, reply

__all__ = ["database_url"]  # the fixture: a fresh SQLite file or PostgreSQL database


def legacy_conversation(url: str) -> UUID:
    """A conversation of six events, written before the store had an audit key."""
    legacy = open_app(database_url=url)
    cid = conversation(legacy)
    legacy.close()
    return cid


def types(app: ConversationApp, cid: UUID) -> list[str]:
    return [type(e).__name__ for e in app.events.get(cid)]


def test_the_first_change_under_the_key_records_the_switch_ahead_of_itself(
    database_url: str,
) -> None:
    cid = legacy_conversation(database_url)
    keyed = open_app(database_url=database_url, audit_key=KEY)
    keyed.receive_message(coordinates=HERE, message_key="m2", author="alice", text="and now?")
    keyed.record_model_reply(cid, reply=reply("fine now"), prompt_fingerprint="f")
    events = list(keyed.events.get(cid))
    keyed.close()
    switch = events[6]
    assert [type(e).__name__ for e in events[5:]] == [
        "Answered",
        "AuditKeyed",
        "MessageReceived",
        "ModelReplied",
    ]
    assert (switch.originator_version, switch.key_id, switch.unsealed) == (7, key_id(KEY), 6)
    result = run_audit(database_url, "audit", "verify", "--all", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["intact"], report["sealed"], report["unsealed"]) == (True, 3, 6)


def test_the_switch_is_recorded_once_and_never_in_a_conversation_sealed_from_its_start(
    database_url: str,
) -> None:
    old = legacy_conversation(database_url)
    keyed = open_app(database_url=database_url, audit_key=KEY)
    keyed.receive_message(coordinates=HERE, message_key="m2", author="alice", text="and now?")
    keyed.answer(old, text="fine")
    keyed.close()
    again = open_app(database_url=database_url, audit_key=KEY)  # a fresh process
    again.receive_message(coordinates=HERE, message_key="m3", author="bob", text="more?")
    new, _ = again.receive_message(
        coordinates=replace(HERE, thread="1700000000.9"), message_key="n1", author="bob", text="hi"
    )
    again.answer(new, text="hello")
    assert types(again, old).count("AuditKeyed") == 1
    assert "AuditKeyed" not in types(again, new)
    again.close()


def test_the_replay_shows_the_switch_with_its_key_and_the_events_it_vouches_for(
    database_url: str,
) -> None:
    cid = legacy_conversation(database_url)
    keyed = open_app(database_url=database_url, audit_key=KEY)
    keyed.receive_message(coordinates=HERE, message_key="m2", author="alice", text="and now?")
    keyed.close()
    text = run_audit(database_url, "replay", str(cid))
    assert text.returncode == 0, text.stderr
    assert (
        f"sealed with audit key {key_id(KEY)} from here on (events 1 to 6 were written before "
        "the store had one" in text.stdout
    )
    markdown = run_audit(database_url, "replay", str(cid), "--format", "markdown")
    assert f"*Sealed with audit key {key_id(KEY)} from here on" in markdown.stdout


def verify_after_keyed_writer(url: str, change: Callable[[Conversation], None]) -> str:
    """A legacy conversation changed by a keyed writer that skips opsloop's switch (the
    command straight on the aggregate); what ``verify --all`` prints (it must fail)."""
    cid = legacy_conversation(url)
    keyed = open_app(database_url=url, audit_key=KEY)
    conv = keyed._load(cid)
    change(conv)
    keyed.save(conv)
    keyed.close()
    result = run_audit(url, "audit", "verify", "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    return f"conversation {cid}: " + result.stdout.partition(f"conversation {cid}: ")[2]


def test_verify_names_a_sealed_switch_that_counts_the_unsealed_events_wrongly(
    database_url: str,
) -> None:
    """A sealed event cannot be forged without the key; what verify checks here is the
    writer's own promise, so an opsloop that miscounted would not pass unnoticed."""
    out = verify_after_keyed_writer(
        database_url, lambda c: c.record_key_switch(key_id=key_id(KEY), unsealed=5)
    )
    assert "event 7 (AuditKeyed) records 5 unsealed events before it, but there are 6" in out


def test_verify_names_the_unsealed_event_before_a_sealed_one_with_no_switch_between(
    database_url: str,
) -> None:
    out = verify_after_keyed_writer(  # as the version before AuditKeyed wrote
        database_url,
        lambda c: c.receive_message(message_key="m2", author="alice", text="?", redacted={}),
    )
    assert (
        "event 6 (Answered) is not sealed, but event 7 after it is, with no AuditKeyed "
        "between: its seal was stripped" in out
    )


def test_a_seal_stripped_from_the_first_events_of_a_keyed_conversation_is_named(
    database_url: str,
) -> None:
    """Without a checkpoint: the attacker strips the seal of the store's very first sealed
    records, so the store seems keyed only from later on."""
    keyed = open_app(database_url=database_url, audit_key=KEY)
    cid = conversation(keyed)
    keyed.close()
    attacker = Attacker(database_url)
    for version in (1, 2):
        state = attacker.decoded(cid, version)
        del state[SEAL]
        attacker.set_decoded(cid, version, state)
    result = run_audit(database_url, "audit", "verify", "--all")
    assert result.returncode == 1
    assert (
        f"conversation {cid}: event 2 (MessageReceived) is not sealed, but event 3 after it "
        "is, with no AuditKeyed between: its seal was stripped" in result.stdout
    )


def test_removing_the_switch_and_renumbering_the_rest_is_tampering(
    database_url: str, tmp_path: Path
) -> None:
    cid = legacy_conversation(database_url)
    keyed = open_app(database_url=database_url, audit_key=KEY)
    keyed.receive_message(coordinates=HERE, message_key="m2", author="alice", text="and now?")
    keyed.close()
    checkpoint = tmp_path / "checkpoint.json"
    take_checkpoint(database_url, checkpoint)
    attacker = Attacker(database_url)
    message, topic = attacker.state(cid, 8), attacker.topic(cid, 8)
    attacker.delete(cid, 7, 8)
    attacker.insert(cid, 7, topic, message)  # the message moved down over the switch
    result = run_audit(database_url, "audit", "verify", "--all", "--against", str(checkpoint))
    assert result.returncode == 1
    assert f"conversation {cid}: event 7 (MessageReceived) was altered" in result.stdout
