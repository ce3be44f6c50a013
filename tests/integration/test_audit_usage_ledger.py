"""The usage ledger, which the daily budgets read, is checked against the replies it counts:
an operator who edits, deletes or inserts a ledger row to dodge a budget (or to spend someone
else's) is named, and the ledger is blamed, never an intact event. Real SQLite and PostgreSQL;
the store and checkpoint are the tamper suite's."""

from __future__ import annotations

from uuid import uuid4

from tests.integration.test_audit_tamper import Store, database_url, store, tampered

__all__ = ["database_url", "store"]  # fixtures: a keyed store with two conversations, checkpointed


def test_a_cheapened_ledger_row_blames_the_ledger_not_the_reply(store: Store) -> None:
    store.attacker.sql(
        "UPDATE opsloop_usage SET input_tokens = 1 WHERE conversation_id = ? AND version = 3",
        (str(store.a),),
    )
    assert tampered(store.verify()) == [
        f"TAMPERED conversation {store.a}: usage ledger row of event 3 was edited: "
        "input_tokens is 1 but its event says 40 (the event is intact)"
    ]


def test_a_deleted_ledger_row_is_named(store: Store) -> None:
    store.attacker.sql(
        "DELETE FROM opsloop_usage WHERE conversation_id = ? AND version = 3", (str(store.b),)
    )
    assert tampered(store.verify()) == [
        f"TAMPERED conversation {store.b}: usage ledger row of event 3 was deleted "
        "(the event is intact)"
    ]


def test_a_ledger_row_moved_to_someone_else_is_named(store: Store) -> None:
    store.attacker.sql(
        "UPDATE opsloop_usage SET user_id = 'mallory' WHERE conversation_id = ?", (str(store.b),)
    )
    assert tampered(store.verify()) == [
        f"TAMPERED conversation {store.b}: usage ledger row of event 3 was edited: "
        "user_id is 'mallory' but its event says 'bob' (the event is intact)"
    ]


def test_an_inserted_ledger_row_is_named(store: Store) -> None:
    ghost = uuid4()
    store.attacker.sql(
        "INSERT INTO opsloop_usage (conversation_id, version, at, day, platform, channel, "
        "user_id, provider, model, input_tokens, output_tokens, cost) "
        "VALUES (?, 3, 0, '2026-11-30', 'slack', 'C1', 'alice', 'openai', 'gpt', 9999, 0, 5)",
        (str(ghost),),
    )
    assert tampered(store.verify()) == [
        f"TAMPERED conversation {ghost}: usage ledger row of event 3 has no ModelReplied "
        "behind it: it was inserted"
    ]


def test_a_deleted_reply_is_blamed_on_the_event_not_on_its_ledger_row(store: Store) -> None:
    store.attacker.delete(store.b, 3)
    lines = tampered(store.verify())
    assert lines == [
        f"TAMPERED conversation {store.b}: event 3 is missing (the log jumps from version 2 to 4)"
    ]
